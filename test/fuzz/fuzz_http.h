/*
 * fuzz_http.h - the checks fuzz_http_request.c and fuzz_http_response.c
 * share: parse the whole input and its prefixes, each from a heap block of
 * exactly its length, and hold the parser to hc_http.h.
 */
#ifndef FUZZ_HTTP_H
#define FUZZ_HTTP_H

#include "fuzz_common.h"
#include "hc_err.h"
#include "hc_http.h"
#include "hc_log.h"

typedef int (*fuzz_http_parse_fn)(const char *buf, size_t len,
                                  struct hc_http_head *h);

static inline int fuzz_http_rc_ok(int rc)
{
    return rc == 0 || rc == HC_EAGAIN || rc == HC_ESYNTAX || rc == HC_ETOOBIG;
}

/* What every successful parse of buf (len bytes) must satisfy. */
static inline void fuzz_http_check_head(const struct hc_http_head *h,
                                        const char *buf, size_t len)
{
    FUZZ_CHECK(h->head_len >= 4 && h->head_len <= len);
    FUZZ_CHECK(memcmp(buf + h->head_len - 4, "\r\n\r\n", 4) == 0);
    FUZZ_CHECK(h->minor_version >= 0 && h->minor_version <= 9);
    FUZZ_CHECK(h->nheaders <= HC_HTTP_MAX_HEADERS);
    for (size_t i = 0; i < h->nheaders; i++) {
        const struct hc_http_header *f = &h->headers[i];
        FUZZ_CHECK(f->name_len > 0);
        FUZZ_CHECK(fuzz_within(f->name, f->name_len, buf, h->head_len));
        FUZZ_CHECK(fuzz_within(f->value, f->value_len, buf, h->head_len));
        FUZZ_CHECK(memchr(f->name, ':', f->name_len) == NULL);
        for (size_t j = 0; j < f->value_len; j++) {
            unsigned char c = (unsigned char)f->value[j];
            FUZZ_CHECK(c == '\t' || c >= 0x20);
            FUZZ_CHECK(c != 0x7f);
        }
        if (f->value_len > 0) {
            FUZZ_CHECK(f->value[0] != ' ' && f->value[0] != '\t');
            FUZZ_CHECK(f->value[f->value_len - 1] != ' ' &&
                       f->value[f->value_len - 1] != '\t');
        }
        /* hc_http_find gives the first header of that name. */
        {
            char name[256];
            size_t n = f->name_len < sizeof(name) ? f->name_len : 0;
            if (n > 0) {
                const struct hc_http_header *g;
                memcpy(name, f->name, n);
                name[n] = '\0';
                g = hc_http_find(h, name);
                FUZZ_CHECK(g != NULL && g <= f);
                FUZZ_CHECK(g->name_len == n);
            }
        }
        /* Token lists over every value. */
        FUZZ_CHECK(hc_http_has_token(f->value, f->value_len, "") == 0);
        (void)hc_http_has_token(f->value, f->value_len, "upgrade");
        (void)hc_http_has_token(f->value, f->value_len, "websocket");
    }
}

/* Escape into a heap block of exactly cap bytes (what the logs do). */
static inline void fuzz_http_escape(const char *p, size_t len, size_t cap)
{
    char *out = malloc(cap > 0 ? cap : 1);
    if (out == NULL)
        abort();
    hc_log_escape(out, cap, p, len);
    if (cap > 0)
        FUZZ_CHECK(memchr(out, '\0', cap) != NULL);
    free(out);
}

/* Parse len bytes of data copied into a block of exactly len bytes. */
static inline int fuzz_http_parse_copy(fuzz_http_parse_fn parse,
                                       const uint8_t *data, size_t len,
                                       size_t *head_len)
{
    struct hc_http_head h;
    char *buf = fuzz_dup(data, len);
    int rc = parse(buf, len, &h);

    FUZZ_CHECK(fuzz_http_rc_ok(rc));
    if (rc == 0) {
        fuzz_http_check_head(&h, buf, len);
        *head_len = h.head_len;
    }
    free(buf);
    return rc;
}

/*
 * The parsers keep no state, so each prefix stands for the bytes received
 * so far. Given the result for the whole input:
 *  - a complete head stays complete, with the same length, whatever follows;
 *  - a shorter prefix of a complete head is HC_EAGAIN;
 *  - an error in a prefix (bytes already invalid) stays an error.
 * Checked on the first 64 and the last 32 prefixes, to bound the cost.
 */
static inline void fuzz_http_prefixes(fuzz_http_parse_fn parse,
                                      const uint8_t *data, size_t size,
                                      int full_rc, size_t full_head_len)
{
    for (size_t k = 0; k < size; k++) {
        size_t hl = 0;
        int rc;
        if (k > 64 && k + 32 < size)
            k = size - 32;
        rc = fuzz_http_parse_copy(parse, data, k, &hl);
        if (rc == 0) {
            FUZZ_CHECK(full_rc == 0 && hl == full_head_len);
        } else if (rc == HC_EAGAIN) {
            FUZZ_CHECK(full_rc != 0 || k < full_head_len);
        } else {
            FUZZ_CHECK(full_rc == HC_ESYNTAX || full_rc == HC_ETOOBIG);
        }
        if (full_rc == 0 && k < full_head_len)
            FUZZ_CHECK(rc == HC_EAGAIN);
    }
}

#endif
