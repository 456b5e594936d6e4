/*
 * fuzz_http_request.c - hc_http_parse_request on any bytes (what a client
 * sends the relay before the upgrade), on its prefixes (the HC_EAGAIN
 * paths), and then what the relay does with a parsed head: split the target
 * at '?', percent-decode the path, read sb-hc-* query parameters, parse a
 * SAS token from a header or the query, compute Sec-WebSocket-Accept and
 * escape bytes for the log.
 *
 * Checks: see fuzz_http.h; also the method is a non-empty token and the
 * target starts with '/', both within the head.
 */
#include "fuzz_http.h"
#include "hc_mem.h"
#include "hc_sas.h"
#include "hc_url.h"

static void decode_param(const char *q, size_t qlen, const char *name,
                         int plus_is_space)
{
    const char *v;
    size_t vlen;

    if (hc_query_get(q, qlen, name, &v, &vlen)) {
        char *out = malloc(vlen + 1);
        ssize_t n;
        if (out == NULL)
            abort();
        FUZZ_CHECK(fuzz_within(v, vlen, q, qlen));
        n = hc_url_decode(out, v, vlen, plus_is_space);
        FUZZ_CHECK(n == HC_ESYNTAX || (n >= 0 && (size_t)n <= vlen));
        if (n >= 0) {
            struct hc_sas_token t;
            FUZZ_CHECK(out[n] == '\0');
            (void)hc_sas_parse(out, (size_t)n, &t);
        }
        free(out);
    }
}

static void relay_like(const struct hc_http_head *h)
{
    const char *target = h->target, *qm;
    size_t plen = h->target_len, qlen = 0;
    const char *q = "";
    const struct hc_http_header *f;
    char *path;

    qm = memchr(target, '?', h->target_len);
    if (qm != NULL) {
        plen = (size_t)(qm - target);
        q = qm + 1;
        qlen = h->target_len - plen - 1;
    }
    path = malloc(plen + 1);
    if (path == NULL)
        abort();
    if (hc_url_decode(path, target, plen, 0) >= 0)
        FUZZ_CHECK(strlen(path) <= plen);
    free(path);
    decode_param(q, qlen, "sb-hc-action", 0);
    decode_param(q, qlen, "sb-hc-id", 0);
    decode_param(q, qlen, "sb-hc-token", 1);
    decode_param(q, qlen, "api-version", 0);

    f = hc_http_find(h, "ServiceBusAuthorization");
    if (f == NULL)
        f = hc_http_find(h, "Authorization");
    if (f != NULL) {
        struct hc_sas_token t;
        char *tok = fuzz_dup(f->value, f->value_len);
        (void)hc_sas_parse(tok, f->value_len, &t);
        free(tok);
    }
    f = hc_http_find(h, "Sec-WebSocket-Key");
    if (f != NULL) {
        char accept[29];
        hc_http_ws_accept(f->value, f->value_len, accept);
        FUZZ_CHECK(strlen(accept) == 28);
    }
    fuzz_http_escape(h->target, h->target_len, 120);
    fuzz_http_escape(h->method, h->method_len, 7);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct hc_http_head h;
    char *buf = fuzz_dup(data, size);
    size_t head_len = 0;
    int rc = hc_http_parse_request(buf, size, &h);

    FUZZ_CHECK(fuzz_http_rc_ok(rc));
    if (rc == 0) {
        fuzz_http_check_head(&h, buf, size);
        head_len = h.head_len;
        FUZZ_CHECK(h.method_len > 0);
        FUZZ_CHECK(fuzz_within(h.method, h.method_len, buf, h.head_len));
        FUZZ_CHECK(h.target_len > 0 && h.target[0] == '/');
        FUZZ_CHECK(fuzz_within(h.target, h.target_len, buf, h.head_len));
        relay_like(&h);
    }
    fuzz_http_prefixes(hc_http_parse_request, data, size, rc, head_len);
    free(buf);
    return 0;
}
