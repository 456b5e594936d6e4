/*
 * fuzz_url.c - the URL helpers on any bytes: hc_url_parse (the input up to
 * its first NUL) and hc_url_free; hc_url_decode in both modes, into a
 * separate buffer of size+1 bytes and in place; hc_url_encode; and
 * hc_query_next / hc_query_get over the input taken as a raw query.
 *
 * Checks:
 *  - parse returns 0, HC_ESYNTAX or UV_ENOMEM; on success the scheme is
 *    lower-case, the host non-empty, lower-case and at most 255 bytes, the
 *    port in range, the path starts with '/', no control byte is kept;
 *    on error path and query are NULL; free is idempotent;
 *  - decode returns HC_ESYNTAX or a length <= size, NUL-terminated, with no
 *    NUL inside; in place gives the same as out of place;
 *    decode(encode(x)) == x for every x without NUL;
 *  - every query parameter lies within the input, the cursor only moves
 *    forward, and hc_query_get finds the first parameter of a name.
 */
#include <uv.h>

#include "fuzz_common.h"
#include "hc_err.h"
#include "hc_mem.h"
#include "hc_url.h"

static void check_parse(const uint8_t *data, size_t size)
{
    char *s = fuzz_cstr(data, size);
    struct hc_url u;
    int rc;

    memset(&u, 0x5a, sizeof(u));
    rc = hc_url_parse(s, &u);
    FUZZ_CHECK(rc == 0 || rc == HC_ESYNTAX || rc == UV_ENOMEM);
    if (rc == 0) {
        size_t hl = strnlen(u.host, sizeof(u.host));
        FUZZ_CHECK(strnlen(u.scheme, sizeof(u.scheme)) < sizeof(u.scheme));
        FUZZ_CHECK(u.scheme[0] >= 'a' && u.scheme[0] <= 'z');
        for (const char *c = u.scheme; *c; c++)
            FUZZ_CHECK(!(*c >= 'A' && *c <= 'Z'));
        FUZZ_CHECK(hl > 0 && hl < sizeof(u.host));
        for (const char *c = u.host; *c; c++)
            FUZZ_CHECK(!(*c >= 'A' && *c <= 'Z') && *c != '[' && *c != ']');
        FUZZ_CHECK(u.port >= 0 && u.port <= 65535);
        if (u.port_explicit)
            FUZZ_CHECK(u.port >= 1);
        FUZZ_CHECK(u.path != NULL && u.path[0] == '/');
        FUZZ_CHECK(u.query != NULL);
        for (const char *c = u.path; *c; c++)
            FUZZ_CHECK((unsigned char)*c > 0x20 && *c != 0x7f);
        for (const char *c = u.query; *c; c++)
            FUZZ_CHECK((unsigned char)*c > 0x20 && *c != 0x7f);
        FUZZ_CHECK(strchr(u.query, '#') == NULL);
        FUZZ_CHECK(strpbrk(u.path, "?#") == NULL);
        hc_url_free(&u);
        FUZZ_CHECK(u.path == NULL && u.query == NULL);
        hc_url_free(&u);
    } else {
        FUZZ_CHECK(u.path == NULL && u.query == NULL);
        hc_url_free(&u);
    }
    free(s);
}

static void check_decode(const uint8_t *data, size_t size, int plus)
{
    char *in = fuzz_dup(data, size);
    char *out = malloc(size + 1);
    char *inplace = malloc(size + 1);
    ssize_t n, n2;

    if (out == NULL || inplace == NULL)
        abort();
    n = hc_url_decode(out, in, size, plus);
    FUZZ_CHECK(n == HC_ESYNTAX || (n >= 0 && (size_t)n <= size));
    if (n >= 0) {
        FUZZ_CHECK(out[n] == '\0');
        FUZZ_CHECK(memchr(out, '\0', (size_t)n) == NULL);
        if (plus)
            FUZZ_CHECK(memchr(out, '+', (size_t)n) == NULL ||
                       memchr(in, '%', size) != NULL);
    }
    /* In place (out == s), in a block with room for the NUL. */
    memcpy(inplace, data, size);
    n2 = hc_url_decode(inplace, inplace, size, plus);
    FUZZ_CHECK(n2 == n);
    if (n >= 0)
        FUZZ_CHECK(memcmp(inplace, out, (size_t)n + 1) == 0);
    free(inplace);
    free(out);
    free(in);
}

static void check_encode(const uint8_t *data, size_t size)
{
    char *enc = hc_url_encode((const char *)data, size);
    size_t elen;
    char *dec;
    ssize_t n;

    FUZZ_CHECK(enc != NULL);
    elen = strlen(enc);
    FUZZ_CHECK(elen >= size && elen <= 3 * size);
    for (const char *c = enc; *c; c++)
        FUZZ_CHECK((unsigned char)*c > 0x20 && (unsigned char)*c < 0x7f);
    dec = malloc(elen + 1);
    if (dec == NULL)
        abort();
    n = hc_url_decode(dec, enc, elen, 0);
    if (memchr(data, '\0', size) != NULL) {
        FUZZ_CHECK(n == HC_ESYNTAX);
    } else {
        FUZZ_CHECK(n >= 0 && (size_t)n == size);
        FUZZ_CHECK(memcmp(dec, data, size) == 0);
        /* Encoding never makes a '+', so form decoding agrees. */
        FUZZ_CHECK(hc_url_decode(dec, enc, elen, 1) == n);
        FUZZ_CHECK(memcmp(dec, data, size) == 0);
    }
    free(dec);
    hc_free(enc);
}

static void check_query(const uint8_t *data, size_t size)
{
    char *q = fuzz_dup(data, size);
    const char *cur = q, *end = q + size, *prev = q;
    struct hc_query_param p;
    size_t count = 0;

    while (hc_query_next(&cur, end, &p)) {
        const char *v;
        size_t vlen;
        char name[64];

        FUZZ_CHECK(count++ <= size);
        FUZZ_CHECK(cur > prev && cur <= end);
        FUZZ_CHECK(fuzz_within(p.name, p.name_len, q, size));
        FUZZ_CHECK(fuzz_within(p.value, p.value_len, q, size));
        FUZZ_CHECK(p.name >= prev);
        FUZZ_CHECK(memchr(p.name, '&', p.name_len) == NULL);
        FUZZ_CHECK(memchr(p.name, '=', p.name_len) == NULL);
        FUZZ_CHECK(memchr(p.value, '&', p.value_len) == NULL);
        FUZZ_CHECK(p.name_len > 0 || p.value_len > 0 ||
                   (p.value > q && p.value[-1] == '='));
        prev = cur;

        /* hc_query_get finds this parameter, or an earlier one. */
        if (p.name_len > 0 && p.name_len < sizeof(name) &&
            memchr(p.name, '\0', p.name_len) == NULL) {
            memcpy(name, p.name, p.name_len);
            name[p.name_len] = '\0';
            FUZZ_CHECK(hc_query_get(q, size, name, &v, &vlen) == 1);
            FUZZ_CHECK(v <= p.value);
            FUZZ_CHECK(fuzz_within(v, vlen, q, size));
        }
    }
    FUZZ_CHECK(cur == end);
    free(q);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_parse(data, size);
    check_decode(data, size, 0);
    check_decode(data, size, 1);
    check_encode(data, size);
    check_query(data, size);
    return 0;
}
