/*
 * test_http.c - unit tests for the HTTP head parser and the WebSocket key
 * helpers (src/http.c).
 *
 * Run one test alone: build/test/test_http <name-glob>.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <mbedtls/base64.h>

#include "hc_err.h"
#include "hc_http.h"

/* An upgrade request as hyco-ws (ws 1.x) sends it. */
static const char hyco_request[] =
    "GET /$hc/myhc?sb-hc-action=connect&sb-hc-id=8f3e2c1a HTTP/1.1\r\n"
    "Connection: Upgrade\r\n"
    "Upgrade: websocket\r\n"
    "Host: localhost:9443\r\n"
    "Sec-WebSocket-Version: 13\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
    "ServiceBusAuthorization: SharedAccessSignature "
    "sr=http%3a%2f%2flocalhost%2fmyhc&sig=abc%3d&se=1700000000&skn=root\r\n"
    "X-Custom:   spaced value \t\r\n"
    "X-Empty:\r\n"
    "\r\n";

static const char ws_response[] =
    "HTTP/1.1 101 Switching Protocols\r\n"
    "Upgrade: websocket\r\n"
    "Connection: Upgrade\r\n"
    "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
    "Sec-WebSocket-Protocol: proto-a\r\n"
    "\r\n";

/* hdr's value equals s. */
static void assert_value(const struct hc_http_head *h, const char *name,
                         const char *s)
{
    const struct hc_http_header *hdr = hc_http_find(h, name);

    assert_non_null(hdr);
    assert_int_equal(hdr->value_len, strlen(s));
    assert_memory_equal(hdr->value, s, strlen(s));
}

/*
 * Parse exactly len bytes from a heap copy, so that ASan catches any read
 * past the end. Offsets in h are rebased onto base, so results from different
 * copies compare equal.
 */
static int parse_copy(int response, const char *base, size_t len,
                      struct hc_http_head *h)
{
    char *copy = malloc(len ? len : 1);
    ptrdiff_t d;
    size_t i;
    int rc;

    assert_non_null(copy);
    memcpy(copy, base, len);
    rc = response ? hc_http_parse_response(copy, len, h)
                  : hc_http_parse_request(copy, len, h);
    d = base - copy;
    /* Rebase every pointer that was set, then drop the copy. */
    if (h->method)
        h->method += d;
    if (h->target)
        h->target += d;
    if (h->reason)
        h->reason += d;
    for (i = 0; i < h->nheaders; i++) {
        h->headers[i].name += d;
        h->headers[i].value += d;
    }
    free(copy);
    return rc;
}

static void check_hyco_request(const struct hc_http_head *h, const char *buf)
{
    assert_int_equal(h->method_len, 3);
    assert_memory_equal(h->method, "GET", 3);
    assert_ptr_equal(h->method, buf);
    assert_int_equal(
        h->target_len,
        strlen("/$hc/myhc?sb-hc-action=connect&sb-hc-id=8f3e2c1a"));
    assert_memory_equal(h->target, "/$hc/myhc?sb-hc-action=connect", 30);
    assert_int_equal(h->minor_version, 1);
    assert_int_equal(h->nheaders, 9);
    assert_int_equal(h->head_len, sizeof(hyco_request) - 1);
    assert_int_equal(h->headers[0].name_len, strlen("Connection"));
    assert_memory_equal(h->headers[0].name, "Connection", 10);
    assert_value(h, "upgrade", "websocket");
    assert_value(h, "HOST", "localhost:9443");
    assert_value(h, "Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==");
    assert_value(h, "sec-websocket-extensions",
                 "permessage-deflate; client_max_window_bits");
    assert_value(h, "ServiceBusAuthorization",
                 "SharedAccessSignature sr=http%3a%2f%2flocalhost%2fmyhc&"
                 "sig=abc%3d&se=1700000000&skn=root");
    assert_value(h, "X-Custom", "spaced value");
    assert_value(h, "X-Empty", "");
}

static void test_request_whole(void **state)
{
    struct hc_http_head h;
    char buf[sizeof(hyco_request) + 16];

    (void)state;
    assert_int_equal(
        hc_http_parse_request(hyco_request, sizeof(hyco_request) - 1, &h), 0);
    check_hyco_request(&h, hyco_request);

    /* Bytes after the head (an early frame) are not part of it. */
    memcpy(buf, hyco_request, sizeof(hyco_request) - 1);
    memcpy(buf + sizeof(hyco_request) - 1, "\x81\x85junk", 7);
    assert_int_equal(hc_http_parse_request(buf, sizeof(hyco_request) + 6, &h),
                     0);
    check_hyco_request(&h, buf);
}

static void test_request_bytewise(void **state)
{
    struct hc_http_head h;
    size_t len = sizeof(hyco_request) - 1, k;

    (void)state;
    for (k = 0; k < len; k++) {
        int rc = parse_copy(0, hyco_request, k, &h);

        if (rc != HC_EAGAIN)
            fail_msg("prefix of %zu bytes gave %d", k, rc);
    }
    assert_int_equal(parse_copy(0, hyco_request, len, &h), 0);
    check_hyco_request(&h, hyco_request);
}

static void check_ws_response(const struct hc_http_head *h)
{
    assert_int_equal(h->status, 101);
    assert_int_equal(h->minor_version, 1);
    assert_int_equal(h->reason_len, strlen("Switching Protocols"));
    assert_memory_equal(h->reason, "Switching Protocols", h->reason_len);
    assert_int_equal(h->nheaders, 4);
    assert_int_equal(h->head_len, sizeof(ws_response) - 1);
    assert_value(h, "Sec-WebSocket-Accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    assert_value(h, "sec-websocket-protocol", "proto-a");
    assert_true(hc_http_has_token(hc_http_find(h, "connection")->value,
                                  hc_http_find(h, "connection")->value_len,
                                  "upgrade"));
}

static void test_response_whole(void **state)
{
    struct hc_http_head h;

    (void)state;
    assert_int_equal(
        hc_http_parse_response(ws_response, sizeof(ws_response) - 1, &h), 0);
    check_ws_response(&h);
    assert_ptr_equal(h.reason, ws_response + 13);
}

static void test_response_bytewise(void **state)
{
    struct hc_http_head h;
    size_t len = sizeof(ws_response) - 1, k;

    (void)state;
    for (k = 0; k < len; k++) {
        int rc = parse_copy(1, ws_response, k, &h);

        if (rc != HC_EAGAIN)
            fail_msg("prefix of %zu bytes gave %d", k, rc);
    }
    assert_int_equal(parse_copy(1, ws_response, len, &h), 0);
    check_ws_response(&h);
}

static void test_response_variants(void **state)
{
    struct hc_http_head h;
    static const char no_reason[] = "HTTP/1.0 404\r\n\r\n";
    static const char empty_reason[] = "HTTP/1.1 410 \r\nA: b\r\n\r\n";
    static const char long_reason[] =
        "HTTP/1.1 404 Endpoint does not exist. TrackingId:ab_G1, "
        "SystemTracker:ns/$hc/x, Timestamp:2024 caf\xc3\xa9\t!\r\n\r\n";

    (void)state;
    assert_int_equal(
        hc_http_parse_response(no_reason, sizeof(no_reason) - 1, &h), 0);
    assert_int_equal(h.status, 404);
    assert_int_equal(h.minor_version, 0);
    assert_int_equal(h.reason_len, 0);
    assert_int_equal(h.nheaders, 0);
    assert_int_equal(h.head_len, sizeof(no_reason) - 1);

    assert_int_equal(
        hc_http_parse_response(empty_reason, sizeof(empty_reason) - 1, &h), 0);
    assert_int_equal(h.status, 410);
    assert_int_equal(h.reason_len, 0);
    assert_int_equal(h.nheaders, 1);

    assert_int_equal(
        hc_http_parse_response(long_reason, sizeof(long_reason) - 1, &h), 0);
    assert_int_equal(h.status, 404);
    assert_int_equal(h.reason_len, sizeof(long_reason) - 1 - 13 - 4);

    /* Each parser refuses the other kind of start line. */
    assert_int_equal(
        hc_http_parse_request(ws_response, sizeof(ws_response) - 1, &h),
        HC_ESYNTAX);
    assert_int_equal(
        hc_http_parse_response(hyco_request, sizeof(hyco_request) - 1, &h),
        HC_ESYNTAX);
}

/*
 * Malformed input, split at its first bad byte: every prefix up to and
 * including good must give HC_EAGAIN, and every longer one HC_ESYNTAX, so the
 * error is reported at that byte, long before the end of the head.
 */
struct bad_case {
    const char *good;
    const char *bad;
};

static void check_bad(int response, const struct bad_case *c)
{
    struct hc_http_head h;
    char buf[256];
    size_t glen = strlen(c->good), len = glen + strlen(c->bad), k;

    assert_true(len < sizeof(buf));
    memcpy(buf, c->good, glen);
    memcpy(buf + glen, c->bad, strlen(c->bad));
    for (k = 0; k <= len; k++) {
        int want = k <= glen ? HC_EAGAIN : HC_ESYNTAX;
        int rc = parse_copy(response, buf, k, &h);

        if (rc != want)
            fail_msg("\"%s\" + \"%s\": prefix of %zu bytes gave %d, want %d",
                     c->good, c->bad, k, rc, want);
    }
}

static void test_bad_request_lines(void **state)
{
    static const struct bad_case cases[] = {
        {"GET /x HTTP/", "2.0\r\n\r\n"},
        {"GET /x HTTP/1.1", " \r\n\r\n"},
        {"GET /x HTTP/1.1", "1\r\n\r\n"},
        {"GET / ", "http/1.1\r\n\r\n"},
        {"G", "@T / HTTP/1.1\r\n\r\n"},
        {"", " GET / HTTP/1.1\r\n\r\n"},
        {"GET ", " / HTTP/1.1\r\n\r\n"},
        {"GET ", "http://h/ HTTP/1.1\r\n\r\n"},
        {"GET ", "* HTTP/1.1\r\n\r\n"},
        {"GET /a", "\x01 HTTP/1.1\r\n\r\n"},
        {"GET /a", "\x7f HTTP/1.1\r\n\r\n"},
        {"GET /a", "\tb HTTP/1.1\r\n\r\n"},
        {"GET\r", "\n\r\n"},
        {"GET /\r", "\n\r\n"},
        {"\r", "\nGET / HTTP/1.1\r\n\r\n"},
        {"GET / HTTP/1.1", "\n\n"},
        {"GET / HTTP/1.1\r", "X\r\n\r\n"},
        {"", "\nGET / HTTP/1.1\r\n\r\n"},
    };
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        check_bad(0, &cases[i]);
}

static void test_bad_status_lines(void **state)
{
    static const struct bad_case cases[] = {
        {"", "<html>\r\n\r\n"},
        {"HTTP/", "2 200 OK\r\n\r\n"},
        {"HTTP/1.", "x 200 OK\r\n\r\n"},
        {"HTTP/1.1", "\t101 X\r\n\r\n"},
        {"HTTP/1.1 ", " 101 X\r\n\r\n"},
        {"HTTP/1.1 ", "099 X\r\n\r\n"},
        {"HTTP/1.1 10", "x Switching\r\n\r\n"},
        {"HTTP/1.1 101", "2 X\r\n\r\n"},
        {"HTTP/1.1 101", "x\r\n\r\n"},
        {"HTTP/1.1 101 Sw", "\x7fitching\r\n\r\n"},
        {"HTTP/1.1 101 Sw", "\x1bitching\r\n\r\n"},
        {"HTTP/1.1 101\r", "\r\n"},
        {"HTTP/1.1\r", "\n\r\n"},
        {"HTTP/1.1 101 OK", "\n\r\n"},
    };
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        check_bad(1, &cases[i]);
}

static void test_bad_headers(void **state)
{
    static const struct bad_case cases[] = {
        /* no colon at all */
        {"GET / HTTP/1.1\r\nHost\r", "\n\r\n"},
        {"GET / HTTP/1.1\r\nHost", " example.com\r\n\r\n"},
        /* whitespace before the colon */
        {"GET / HTTP/1.1\r\nHost", " : x\r\n\r\n"},
        {"GET / HTTP/1.1\r\nHost", "\t: x\r\n\r\n"},
        /* obs-fold */
        {"GET / HTTP/1.1\r\nA: b\r\n", " folded\r\n\r\n"},
        {"GET / HTTP/1.1\r\nA: b\r\n", "\tfolded\r\n\r\n"},
        /* empty or non-token name */
        {"GET / HTTP/1.1\r\n", ": novalue\r\n\r\n"},
        {"GET / HTTP/1.1\r\nX", "(y): z\r\n\r\n"},
        /* control bytes in a value */
        {"GET / HTTP/1.1\r\nX: a", "\x01z\r\n\r\n"},
        {"GET / HTTP/1.1\r\nX: a", "\x7f\r\n\r\n"},
        /* line ends */
        {"GET / HTTP/1.1\r\nX: a", "\nY: b\r\n\r\n"},
        {"GET / HTTP/1.1\r\nX: a\r\n", "\n"},
        {"GET / HTTP/1.1\r\nX: a\r\n\r", "x"},
        {"HTTP/1.1 101 OK\r\nUpgrade", "; websocket\r\n\r\n"},
    };
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        check_bad(cases[i].good[0] == 'H', &cases[i]);
}

/* NUL cannot go through the string table above. */
static void test_nul_bytes(void **state)
{
    static const char in_value[] = "GET / HTTP/1.1\r\nX: a\0b\r\n\r\n";
    static const char in_target[] = "GET /a\0 HTTP/1.1\r\n\r\n";
    static const char in_name[] = "GET / HTTP/1.1\r\nX\0: b\r\n\r\n";
    struct hc_http_head h;

    (void)state;
    assert_int_equal(hc_http_parse_request(in_value, 20, &h), HC_EAGAIN);
    assert_int_equal(hc_http_parse_request(in_value, 21, &h), HC_ESYNTAX);
    assert_int_equal(hc_http_parse_request(in_value, sizeof(in_value) - 1, &h),
                     HC_ESYNTAX);
    assert_int_equal(hc_http_parse_request(in_target, 6, &h), HC_EAGAIN);
    assert_int_equal(
        hc_http_parse_request(in_target, sizeof(in_target) - 1, &h),
        HC_ESYNTAX);
    assert_int_equal(hc_http_parse_request(in_name, sizeof(in_name) - 1, &h),
                     HC_ESYNTAX);
}

static void test_obs_text_value(void **state)
{
    static const char req[] = "GET /caf\xc3\xa9 HTTP/1.1\r\n"
                              "X-Name: caf\xc3\xa9 \xff\r\n"
                              "\r\n";
    struct hc_http_head h;

    (void)state;
    assert_int_equal(hc_http_parse_request(req, sizeof(req) - 1, &h), 0);
    assert_int_equal(h.target_len, 6);
    assert_value(&h, "x-name", "caf\xc3\xa9 \xff");
}

/* A request with n headers "Hk: k" into buf; returns its length. */
static size_t many_headers(char *buf, size_t cap, int n)
{
    size_t len = 0;
    int k;

    len += (size_t)snprintf(buf + len, cap - len, "GET / HTTP/1.1\r\n");
    for (k = 0; k < n; k++)
        len += (size_t)snprintf(buf + len, cap - len, "H%d: %d\r\n", k, k);
    len += (size_t)snprintf(buf + len, cap - len, "\r\n");
    assert_true(len < cap);
    return len;
}

static void test_too_many_headers(void **state)
{
    static char buf[4096];
    struct hc_http_head h;
    size_t len, first65;

    (void)state;
    len = many_headers(buf, sizeof(buf), HC_HTTP_MAX_HEADERS);
    assert_int_equal(hc_http_parse_request(buf, len, &h), 0);
    assert_int_equal(h.nheaders, HC_HTTP_MAX_HEADERS);
    assert_value(&h, "H63", "63");

    len = many_headers(buf, sizeof(buf), HC_HTTP_MAX_HEADERS + 1);
    assert_int_equal(hc_http_parse_request(buf, len, &h), HC_ETOOBIG);
    /* It is reported as soon as the 65th line starts. */
    first65 = (size_t)(strstr(buf, "H64:") - buf);
    assert_int_equal(hc_http_parse_request(buf, first65, &h), HC_EAGAIN);
    assert_int_equal(hc_http_parse_request(buf, first65 + 1, &h), HC_ETOOBIG);

    len = many_headers(buf, sizeof(buf), 200);
    assert_int_equal(hc_http_parse_request(buf, len, &h), HC_ETOOBIG);
}

static void test_find(void **state)
{
    static const char req[] = "GET / HTTP/1.1\r\n"
                              "Host: a\r\n"
                              "X-Dup: one\r\n"
                              "x-dup: two\r\n"
                              "\r\n";
    struct hc_http_head h;
    const struct hc_http_header *hdr;

    (void)state;
    assert_int_equal(hc_http_parse_request(req, sizeof(req) - 1, &h), 0);
    hdr = hc_http_find(&h, "X-DUP");
    assert_non_null(hdr);
    assert_ptr_equal(hdr, &h.headers[1]);
    assert_memory_equal(hdr->value, "one", 3);
    assert_null(hc_http_find(&h, "Hos"));
    assert_null(hc_http_find(&h, "Hostx"));
    assert_null(hc_http_find(&h, "Upgrade"));
    assert_non_null(hc_http_find(&h, "host"));
}

static int has(const char *value, const char *token)
{
    return hc_http_has_token(value, strlen(value), token);
}

static void test_has_token(void **state)
{
    (void)state;
    assert_true(has("keep-alive, Upgrade", "upgrade"));
    assert_true(has("Upgrade", "upgrade"));
    assert_true(has("UPGRADE", "Upgrade"));
    assert_true(has(" upgrade ,x", "upgrade"));
    assert_true(has("\tUpgrade\t", "upgrade"));
    assert_true(has(",,upgrade,,", "upgrade"));
    assert_true(has("a,b,upgrade", "upgrade"));
    assert_true(has("keep-alive, Upgrade", "keep-alive"));
    assert_false(has("upgraded", "upgrade"));
    assert_false(has("xupgrade", "upgrade"));
    assert_false(has("up grade", "upgrade"));
    assert_false(has("keep-alive", "upgrade"));
    assert_false(has("", "upgrade"));
    assert_false(has(",", "upgrade"));
    assert_false(has("a,,b", ""));
    assert_false(has("permessage-deflate; x", "permessage-deflate"));
    /* Only len bytes count. */
    assert_false(hc_http_has_token("upgrade", 3, "upgrade"));
    assert_true(hc_http_has_token("upg,rade", 3, "upg"));
    assert_false(hc_http_has_token("upgrade,foo", 7, "foo"));
    assert_false(hc_http_has_token(NULL, 0, "upgrade"));
}

static void test_ws_accept(void **state)
{
    static const char *vectors[][2] = {
        /* RFC 6455 1.3 */
        {"dGhlIHNhbXBsZSBub25jZQ==", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="},
        {"x3JJHMbDL1EzLkh9GBhXDw==", "HSmrc0sMlYUkAGmm5OPpG2HaGWk="},
    };
    char out[29];
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
        memset(out, 'z', sizeof(out));
        hc_http_ws_accept(vectors[i][0], strlen(vectors[i][0]), out);
        assert_string_equal(out, vectors[i][1]);
    }
    /* Only key_len bytes of the key count. */
    hc_http_ws_accept("dGhlIHNhbXBsZSBub25jZQ==junk", 24, out);
    assert_string_equal(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

static void test_ws_key(void **state)
{
    char a[25], b[25];
    unsigned char raw[32];
    size_t olen = 0;

    (void)state;
    assert_int_equal(hc_http_ws_key(a), 0);
    assert_int_equal(hc_http_ws_key(b), 0);
    assert_int_equal(strlen(a), 24);
    assert_int_equal(strlen(b), 24);
    assert_int_equal(mbedtls_base64_decode(raw, sizeof(raw), &olen,
                                           (const unsigned char *)a, 24),
                     0);
    assert_int_equal(olen, 16);
    assert_int_equal(mbedtls_base64_decode(raw, sizeof(raw), &olen,
                                           (const unsigned char *)b, 24),
                     0);
    assert_int_equal(olen, 16);
    assert_string_not_equal(a, b);
}

static void test_reason(void **state)
{
    (void)state;
    assert_string_equal(hc_http_reason(101), "Switching Protocols");
    assert_string_equal(hc_http_reason(200), "OK");
    assert_string_equal(hc_http_reason(400), "Bad Request");
    assert_string_equal(hc_http_reason(401), "Unauthorized");
    assert_string_equal(hc_http_reason(403), "Forbidden");
    assert_string_equal(hc_http_reason(404), "Not Found");
    assert_string_equal(hc_http_reason(410), "Gone");
    assert_string_equal(hc_http_reason(500), "Internal Server Error");
    assert_string_equal(hc_http_reason(502), "Bad Gateway");
    assert_string_equal(hc_http_reason(504), "Gateway Timeout");
    assert_string_equal(hc_http_reason(299), "Unknown");
    assert_string_equal(hc_http_reason(999), "Unknown");
    assert_string_equal(hc_http_reason(0), "Unknown");
    assert_string_equal(hc_http_reason(-1), "Unknown");
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_request_whole),
        cmocka_unit_test(test_request_bytewise),
        cmocka_unit_test(test_response_whole),
        cmocka_unit_test(test_response_bytewise),
        cmocka_unit_test(test_response_variants),
        cmocka_unit_test(test_bad_request_lines),
        cmocka_unit_test(test_bad_status_lines),
        cmocka_unit_test(test_bad_headers),
        cmocka_unit_test(test_nul_bytes),
        cmocka_unit_test(test_obs_text_value),
        cmocka_unit_test(test_too_many_headers),
        cmocka_unit_test(test_find),
        cmocka_unit_test(test_has_token),
        cmocka_unit_test(test_ws_accept),
        cmocka_unit_test(test_ws_key),
        cmocka_unit_test(test_reason),
    };

    if (argc > 1)
        cmocka_set_test_filter(argv[1]);
    return cmocka_run_group_tests_name("http", tests, NULL, NULL);
}
