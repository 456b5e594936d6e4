/*
 * test_json.c - unit tests for the control-channel JSON (src/json.c).
 *
 * Run one test alone: build/test/test_json <name-glob>.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <uv.h>

#include "hc_err.h"
#include "hc_json.h"
#include "hc_mem.h"

/* The layout of a real capture (protocol.md 3.2): "\/" escapes, _G17 ids. */
static const char azure_accept[] =
    "{\"accept\":{\"address\":\"wss:\\/\\/g17-prod-xxx-010-sb.servicebus."
    "windows.net\\/$hc\\/myhc\\/optional\\/suffix?x=1&sb-hc-action=accept&"
    "sb-hc-id=ca49d1a4-57ef-4a08-9c0d-6d1c8a2b2558_G17_G30\","
    "\"id\":\"ca49d1a4-57ef-4a08-9c0d-6d1c8a2b2558_G17_G30\","
    "\"connectHeaders\":{\"Sec-WebSocket-Key\":\"dGhlIHNhbXBsZSBub25jZQ==\","
    "\"Sec-WebSocket-Version\":\"13\",\"Connection\":\"Upgrade\","
    "\"Upgrade\":\"websocket\",\"Host\":\"ns.servicebus.windows.net:443\","
    "\"User-Agent\":\"test\\u002Fagent \\u00e9\"},"
    "\"remoteEndpoint\":{\"address\":\"73.83.210.109\",\"port\":62917}}}";

static const char inline_request[] =
    "{\"request\":{\"address\":\"wss:\\/\\/ns.servicebus.windows.net\\/$hc\\/"
    "myhc?sb-hc-action=request&sb-hc-id=c126_G12\",\"id\":\"c126_G12\","
    "\"requestTarget\":\"\\/myhc\\/sub\\/path?q=1\",\"method\":\"POST\","
    "\"remoteEndpoint\":{\"address\":\"73.83.210.109\",\"port\":62915},"
    "\"requestHeaders\":{\"Content-Type\":\"application\\/json; "
    "charset=utf-8\","
    "\"Host\":\"ns.servicebus.windows.net\",\"User-Agent\":\"curl\\/8\","
    "\"Via\":\"1.1 ns.servicebus.windows.net\"},"
    "\"body\":true}}";

static int parse(const char *s, struct hc_ctl_msg *m)
{
    return hc_json_parse_ctl(s, strlen(s), m);
}

static void assert_zeroed(const struct hc_ctl_msg *m)
{
    struct hc_ctl_msg zero;

    memset(&zero, 0, sizeof(zero));
    assert_memory_equal(m, &zero, sizeof(zero));
}

/* parse(s) fails with want and leaves m zeroed. */
static void assert_parse_fails(const char *s, int want)
{
    struct hc_ctl_msg m;
    int rc;

    memset(&m, 0xa5, sizeof(m));
    rc = parse(s, &m);
    if (rc != want)
        fail_msg("%s: got %d, want %d", s, rc, want);
    assert_zeroed(&m);
}

static struct hc_http_header hdr(const char *name, const char *value)
{
    struct hc_http_header h;

    h.name = name;
    h.name_len = strlen(name);
    h.value = value;
    h.value_len = strlen(value);
    return h;
}

static void test_accept_build_and_parse(void **state)
{
    struct hc_http_header hdrs[6];
    struct hc_ctl_msg m;
    char *js;

    (void)state;
    hdrs[0] = hdr("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==");
    hdrs[1] = hdr("Sec-WebSocket-Version", "13");
    hdrs[2] = hdr("X-Multi", "a");
    hdrs[3] = hdr("Host", "localhost:9443");
    hdrs[4] = hdr("x-multi", "b \"q\"");
    hdrs[5] = hdr("X-MULTI", "");
    js = hc_json_accept("wss://localhost:9443/$hc/myhc?sb-hc-action=accept"
                        "&sb-hc-id=abc_G1",
                        "abc_G1", hdrs, 6, "127.0.0.1", 54321);
    assert_non_null(js);
    assert_string_equal(
        js, "{\"accept\":{\"address\":\"wss://localhost:9443/$hc/myhc?"
            "sb-hc-action=accept&sb-hc-id=abc_G1\",\"id\":\"abc_G1\","
            "\"connectHeaders\":{\"Sec-WebSocket-Key\":"
            "\"dGhlIHNhbXBsZSBub25jZQ==\",\"Sec-WebSocket-Version\":\"13\","
            "\"X-Multi\":\"a, b \\\"q\\\", \",\"Host\":\"localhost:9443\"},"
            "\"remoteEndpoint\":{\"address\":\"127.0.0.1\",\"port\":54321}}}");

    assert_int_equal(parse(js, &m), 0);
    assert_int_equal(m.type, HC_CTL_ACCEPT);
    assert_string_equal(m.name, "accept");
    assert_string_equal(m.address, "wss://localhost:9443/$hc/myhc?"
                                   "sb-hc-action=accept&sb-hc-id=abc_G1");
    assert_string_equal(m.id, "abc_G1");
    assert_int_equal(m.nheaders, 4);
    assert_string_equal(m.headers[2].name, "X-Multi");
    assert_string_equal(hc_ctl_header(&m, "x-multi"), "a, b \"q\", ");
    assert_string_equal(hc_ctl_header(&m, "SEC-WEBSOCKET-KEY"),
                        "dGhlIHNhbXBsZSBub25jZQ==");
    assert_null(hc_ctl_header(&m, "Upgrade"));
    assert_string_equal(m.remote_addr, "127.0.0.1");
    assert_int_equal(m.remote_port, 54321);
    assert_null(m.method);
    assert_null(m.token);
    hc_ctl_msg_free(&m);
    assert_zeroed(&m);
    hc_free(js);
}

static void test_accept_minimal(void **state)
{
    struct hc_http_header latin1 = hdr("X-Name", "caf\xe9");
    struct hc_ctl_msg m;
    char *js;

    (void)state;
    js = hc_json_accept("wss://h/$hc/p", "i", NULL, 0, NULL, 0);
    assert_non_null(js);
    assert_string_equal(js, "{\"accept\":{\"address\":\"wss://h/$hc/p\","
                            "\"id\":\"i\",\"connectHeaders\":{}}}");
    assert_int_equal(parse(js, &m), 0);
    assert_int_equal(m.nheaders, 0);
    assert_null(m.headers);
    assert_null(m.remote_addr);
    assert_int_equal(m.remote_port, 0);
    assert_null(hc_ctl_header(&m, "Host"));
    hc_ctl_msg_free(&m);
    hc_free(js);

    /* A value that is not UTF-8 is read as Latin-1, not refused. */
    js = hc_json_accept("a", "b", &latin1, 1, "::1", 1);
    assert_non_null(js);
    assert_non_null(strstr(js, "\"X-Name\":\"caf\xc3\xa9\""));
    assert_non_null(strstr(js, "{\"address\":\"::1\",\"port\":1}"));
    hc_free(js);
}

static void test_accept_azure_capture(void **state)
{
    struct hc_ctl_msg m;

    (void)state;
    assert_int_equal(parse(azure_accept, &m), 0);
    assert_int_equal(m.type, HC_CTL_ACCEPT);
    assert_string_equal(
        m.address, "wss://g17-prod-xxx-010-sb.servicebus.windows.net/$hc/myhc/"
                   "optional/suffix?x=1&sb-hc-action=accept&"
                   "sb-hc-id=ca49d1a4-57ef-4a08-9c0d-6d1c8a2b2558_G17_G30");
    assert_string_equal(m.id, "ca49d1a4-57ef-4a08-9c0d-6d1c8a2b2558_G17_G30");
    assert_int_equal(m.nheaders, 6);
    assert_string_equal(m.headers[0].name, "Sec-WebSocket-Key");
    assert_string_equal(m.headers[5].name, "User-Agent");
    assert_string_equal(hc_ctl_header(&m, "sec-websocket-key"),
                        "dGhlIHNhbXBsZSBub25jZQ==");
    assert_string_equal(hc_ctl_header(&m, "Sec-WebSocket-Version"), "13");
    assert_string_equal(hc_ctl_header(&m, "user-agent"), "test/agent \xc3\xa9");
    assert_string_equal(m.remote_addr, "73.83.210.109");
    assert_int_equal(m.remote_port, 62917);
    hc_ctl_msg_free(&m);
}

static void test_renew_token_round_trip(void **state)
{
    static const char tok[] = "SharedAccessSignature sr=http%3a%2f%2fns%2fhc&"
                              "sig=a%2Bb%3D&se=1700000000&skn=root";
    struct hc_ctl_msg m;
    char *js;

    (void)state;
    js = hc_json_renew_token(tok);
    assert_non_null(js);
    assert_string_equal(js, "{\"renewToken\":{\"token\":\"SharedAccessSignature"
                            " sr=http%3a%2f%2fns%2fhc&sig=a%2Bb%3D&"
                            "se=1700000000&skn=root\"}}");
    assert_int_equal(parse(js, &m), 0);
    assert_int_equal(m.type, HC_CTL_RENEW_TOKEN);
    assert_string_equal(m.name, "renewToken");
    assert_string_equal(m.token, tok);
    hc_ctl_msg_free(&m);
    assert_zeroed(&m);
    hc_free_secret_str(js);

    /* Characters that need escaping survive the trip. */
    js = hc_json_renew_token("a\"b\\c/d\n");
    assert_non_null(js);
    assert_string_equal(js,
                        "{\"renewToken\":{\"token\":\"a\\\"b\\\\c/d\\n\"}}");
    assert_int_equal(parse(js, &m), 0);
    assert_string_equal(m.token, "a\"b\\c/d\n");
    hc_ctl_msg_free(&m);
    hc_free(js);
}

static void test_response(void **state)
{
    struct hc_ctl_msg m;

    (void)state;
    assert_int_equal(
        parse("{\"response\":{\"requestId\":\"r1\",\"statusCode\":200,"
              "\"statusDescription\":\"OK\",\"responseHeaders\":"
              "{\"content-type\":\"text/plain\",\"x-reply\":\"yes\"},"
              "\"body\":true}}",
              &m),
        0);
    assert_int_equal(m.type, HC_CTL_RESPONSE);
    assert_string_equal(m.request_id, "r1");
    assert_int_equal(m.status_code, 200);
    assert_string_equal(m.status_description, "OK");
    assert_int_equal(m.nheaders, 2);
    assert_string_equal(hc_ctl_header(&m, "Content-Type"), "text/plain");
    assert_string_equal(hc_ctl_header(&m, "X-Reply"), "yes");
    assert_int_equal(m.has_body, 1);
    assert_int_equal(m.body, 1);
    hc_ctl_msg_free(&m);

    /* .NET style: alphabetical members, statusCode as a string. */
    assert_int_equal(
        parse("{\"response\":{\"body\":false,\"requestId\":\"r\\/2\","
              "\"responseHeaders\":{},\"statusCode\":\"404\","
              "\"statusDescription\":\"Not \\u0046ound\"}}",
              &m),
        0);
    assert_string_equal(m.request_id, "r/2");
    assert_int_equal(m.status_code, 404);
    assert_string_equal(m.status_description, "Not Found");
    assert_int_equal(m.nheaders, 0);
    assert_int_equal(m.has_body, 1);
    assert_int_equal(m.body, 0);
    hc_ctl_msg_free(&m);

    /* Only the required members, and an unknown one. */
    assert_int_equal(parse("{\"response\":{\"statusCode\":\"204\",\"extra\":"
                           "[1,{\"a\":null}],\"requestId\":\"r3\"}}",
                           &m),
                     0);
    assert_int_equal(m.status_code, 204);
    assert_null(m.status_description);
    assert_null(m.headers);
    assert_int_equal(m.has_body, 0);
    hc_ctl_msg_free(&m);

    /* null counts as absent for optional members. */
    assert_int_equal(parse("{\"response\":{\"requestId\":\"r4\",\"statusCode\":"
                           "500,\"statusDescription\":null,"
                           "\"responseHeaders\":null,\"body\":null}}",
                           &m),
                     0);
    assert_int_equal(m.status_code, 500);
    assert_null(m.status_description);
    assert_int_equal(m.has_body, 0);
    hc_ctl_msg_free(&m);
}

static void test_response_bad_status(void **state)
{
    static const char *codes[] = {
        "\"abc\"",        "\"\"", "99",       "1000", "true",     "200.5",
        "\"20x\"",        "null", "\"-200\"", "-200", "\" 200\"", "[200]",
        "\"2000000000\"", "0",
    };
    char buf[160];
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
        snprintf(buf, sizeof(buf),
                 "{\"response\":{\"requestId\":\"r\",\"statusCode\":%s}}",
                 codes[i]);
        assert_parse_fails(buf, HC_ESYNTAX);
    }
    assert_parse_fails("{\"response\":{\"requestId\":\"r\"}}", HC_ESYNTAX);
    assert_parse_fails("{\"response\":{\"statusCode\":200}}", HC_ESYNTAX);
}

static void test_request_inline(void **state)
{
    struct hc_ctl_msg m;

    (void)state;
    assert_int_equal(parse(inline_request, &m), 0);
    assert_int_equal(m.type, HC_CTL_REQUEST);
    assert_string_equal(m.name, "request");
    assert_string_equal(m.address, "wss://ns.servicebus.windows.net/$hc/myhc?"
                                   "sb-hc-action=request&sb-hc-id=c126_G12");
    assert_string_equal(m.id, "c126_G12");
    assert_string_equal(m.request_target, "/myhc/sub/path?q=1");
    assert_string_equal(m.method, "POST");
    assert_int_equal(m.has_body, 1);
    assert_int_equal(m.body, 1);
    assert_int_equal(m.nheaders, 4);
    assert_string_equal(hc_ctl_header(&m, "content-type"),
                        "application/json; charset=utf-8");
    assert_string_equal(hc_ctl_header(&m, "VIA"),
                        "1.1 ns.servicebus.windows.net");
    assert_string_equal(m.remote_addr, "73.83.210.109");
    assert_int_equal(m.remote_port, 62915);
    hc_ctl_msg_free(&m);

    assert_int_equal(parse("{\"request\":{\"body\":false,\"method\":\"GET\","
                           "\"id\":\"x\",\"address\":\"y\"}}",
                           &m),
                     0);
    assert_string_equal(m.method, "GET");
    assert_int_equal(m.has_body, 1);
    assert_int_equal(m.body, 0);
    assert_null(m.request_target);
    hc_ctl_msg_free(&m);
}

static void test_request_pointer(void **state)
{
    struct hc_ctl_msg m;

    (void)state;
    assert_int_equal(
        parse("{\"request\":{\"address\":\"wss:\\/\\/ns\\/$hc\\/myhc?"
              "sb-hc-action=request&sb-hc-id=c126_G12\",\"id\":\"c126_G12\"}}",
              &m),
        0);
    assert_int_equal(m.type, HC_CTL_REQUEST);
    assert_string_equal(m.address,
                        "wss://ns/$hc/myhc?sb-hc-action=request&sb-hc-id="
                        "c126_G12");
    assert_string_equal(m.id, "c126_G12");
    assert_null(m.method);
    assert_null(m.request_target);
    assert_int_equal(m.has_body, 0);
    assert_int_equal(m.body, 0);
    assert_int_equal(m.nheaders, 0);
    assert_null(m.remote_addr);
    hc_ctl_msg_free(&m);
}

static void test_remote_endpoint_tolerant(void **state)
{
    struct hc_ctl_msg m;

    (void)state;
    assert_int_equal(parse("{\"accept\":{\"address\":\"a\",\"id\":\"i\","
                           "\"remoteEndpoint\":{\"port\":\"62917\","
                           "\"address\":\"::1\"}}}",
                           &m),
                     0);
    assert_string_equal(m.remote_addr, "::1");
    assert_int_equal(m.remote_port, 62917);
    hc_ctl_msg_free(&m);

    assert_int_equal(parse("{\"accept\":{\"address\":\"a\",\"id\":\"i\","
                           "\"remoteEndpoint\":{\"address\":\"1.2.3.4\","
                           "\"port\":70000}}}",
                           &m),
                     0);
    assert_string_equal(m.remote_addr, "1.2.3.4");
    assert_int_equal(m.remote_port, 0);
    hc_ctl_msg_free(&m);

    assert_int_equal(parse("{\"accept\":{\"address\":\"a\",\"id\":\"i\","
                           "\"remoteEndpoint\":{\"address\":5,"
                           "\"port\":\"x\"}}}",
                           &m),
                     0);
    assert_null(m.remote_addr);
    assert_int_equal(m.remote_port, 0);
    hc_ctl_msg_free(&m);

    assert_int_equal(parse("{\"accept\":{\"address\":\"a\",\"id\":\"i\","
                           "\"remoteEndpoint\":\"1.2.3.4:5\"}}",
                           &m),
                     0);
    assert_null(m.remote_addr);
    hc_ctl_msg_free(&m);
}

static void test_unknown_command(void **state)
{
    struct hc_ctl_msg m;

    (void)state;
    assert_int_equal(parse("{\"injectFault\":{\"delay\":\"00:00:01\"}}", &m),
                     0);
    assert_int_equal(m.type, HC_CTL_UNKNOWN);
    assert_string_equal(m.name, "injectFault");
    assert_null(m.address);
    hc_ctl_msg_free(&m);

    /* Its value need not be an object; names are case-sensitive. */
    assert_int_equal(parse("{\"Accept\":42}", &m), 0);
    assert_int_equal(m.type, HC_CTL_UNKNOWN);
    assert_string_equal(m.name, "Accept");
    hc_ctl_msg_free(&m);

    assert_int_equal(parse("{\"n\\u00e9w\":null}", &m), 0);
    assert_string_equal(m.name, "n\xc3\xa9w");
    hc_ctl_msg_free(&m);
}

static void test_top_level_shape(void **state)
{
    (void)state;
    assert_parse_fails("{\"accept\":{\"address\":\"a\",\"id\":\"i\"},"
                       "\"renewToken\":{\"token\":\"t\"}}",
                       HC_ESYNTAX);
    assert_parse_fails("{\"a\":1,\"b\":2}", HC_ESYNTAX);
    assert_parse_fails("{}", HC_ESYNTAX);
    assert_parse_fails("[{\"accept\":{}}]", HC_ESYNTAX);
    assert_parse_fails("\"accept\"", HC_ESYNTAX);
    assert_parse_fails("42", HC_ESYNTAX);
    assert_parse_fails("null", HC_ESYNTAX);
    assert_parse_fails("", HC_ESYNTAX);
    assert_parse_fails("   ", HC_ESYNTAX);
    assert_parse_fails("{\"x\":1} {\"y\":2}", HC_ESYNTAX);
    assert_parse_fails("{\"x\":1}garbage", HC_ESYNTAX);
    /* Duplicate names and NULs are ambiguous. */
    assert_parse_fails("{\"accept\":{\"address\":\"a\",\"id\":\"i\","
                       "\"id\":\"j\"}}",
                       HC_ESYNTAX);
    assert_parse_fails("{\"renewToken\":{\"token\":\"a\\u0000b\"}}",
                       HC_ESYNTAX);
    assert_parse_fails("{\"accept\":{\"address\":\"a\",\"id\":\"i\xff\"}}",
                       HC_ESYNTAX);
}

static void test_truncated(void **state)
{
    struct hc_ctl_msg m;
    size_t len = strlen(inline_request), k;

    (void)state;
    for (k = 0; k < len; k++) {
        /* An exact-size heap copy, so reads past len show up under ASan. */
        char *copy = malloc(k ? k : 1);
        int rc;

        assert_non_null(copy);
        memcpy(copy, inline_request, k);
        rc = hc_json_parse_ctl(copy, k, &m);
        free(copy);
        if (rc != HC_ESYNTAX)
            fail_msg("prefix of %zu bytes gave %d", k, rc);
        assert_zeroed(&m);
    }
}

static void test_not_nul_terminated(void **state)
{
    static const char buf[] = "{\"renewToken\":{\"token\":\"t\"}}trailing";
    struct hc_ctl_msg m;

    (void)state;
    assert_int_equal(hc_json_parse_ctl(buf, sizeof(buf) - 1 - 8, &m), 0);
    assert_string_equal(m.token, "t");
    hc_ctl_msg_free(&m);
}

static void test_wrong_types(void **state)
{
    static const char *bad[] = {
        "{\"accept\":{\"address\":42,\"id\":\"i\"}}",
        "{\"accept\":{\"address\":\"a\",\"id\":null}}",
        "{\"accept\":{\"address\":\"a\"}}",
        "{\"accept\":{\"id\":\"i\"}}",
        "{\"accept\":{\"address\":\"a\",\"id\":[\"i\"]}}",
        "{\"accept\":{\"address\":\"a\",\"id\":\"i\",\"connectHeaders\":[]}}",
        "{\"accept\":{\"address\":\"a\",\"id\":\"i\",\"connectHeaders\":"
        "{\"Host\":\"h\",\"X-Num\":5}}}",
        "{\"accept\":{\"address\":\"a\",\"id\":\"i\",\"connectHeaders\":"
        "{\"X\":null}}}",
        "{\"accept\":{\"address\":\"a\",\"id\":\"i\",\"connectHeaders\":"
        "{\"X\":[\"a\",\"b\"]}}}",
        "{\"accept\":\"wss://x\"}",
        "{\"accept\":null}",
        "{\"renewToken\":{}}",
        "{\"renewToken\":{\"token\":7}}",
        "{\"renewToken\":\"tok\"}",
        "{\"request\":{\"address\":\"a\"}}",
        "{\"request\":{\"address\":\"a\",\"id\":\"i\",\"method\":5}}",
        "{\"request\":{\"address\":\"a\",\"id\":\"i\",\"requestTarget\":{}}}",
        "{\"request\":{\"address\":\"a\",\"id\":\"i\",\"body\":\"yes\"}}",
        "{\"request\":{\"address\":\"a\",\"id\":\"i\",\"body\":1}}",
        "{\"request\":{\"address\":\"a\",\"id\":\"i\",\"requestHeaders\":"
        "{\"a\":true}}}",
        "{\"response\":{\"requestId\":1,\"statusCode\":200}}",
        "{\"response\":{\"requestId\":\"r\",\"statusCode\":200,"
        "\"statusDescription\":404}}",
        "{\"response\":{\"requestId\":\"r\",\"statusCode\":200,"
        "\"responseHeaders\":\"x\"}}",
        "{\"response\":{\"requestId\":\"r\",\"statusCode\":200,"
        "\"body\":\"true\"}}",
    };
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_parse_fails(bad[i], HC_ESYNTAX);
}

/* {"renewToken":{"token":"AAA..."}} of exactly len bytes. */
static const char token_head[] = "{\"renewToken\":{\"token\":\"";
static const char token_tail[] = "\"}}";
#define TOKEN_FIXED (sizeof(token_head) - 1 + sizeof(token_tail) - 1)

static char *token_msg(size_t len)
{
    const char *head = token_head, *tail = token_tail;
    size_t fixed = TOKEN_FIXED;
    char *s = malloc(len + 1);

    assert_non_null(s);
    assert_true(len > fixed);
    memcpy(s, head, strlen(head));
    memset(s + strlen(head), 'A', len - fixed);
    memcpy(s + len - strlen(tail), tail, strlen(tail) + 1);
    return s;
}

static void test_size_limit(void **state)
{
    struct hc_ctl_msg m;
    char *s;

    (void)state;
    s = token_msg(HC_JSON_CTL_MAX);
    assert_int_equal(hc_json_parse_ctl(s, HC_JSON_CTL_MAX, &m), 0);
    assert_int_equal(strlen(m.token), HC_JSON_CTL_MAX - TOKEN_FIXED);
    hc_ctl_msg_free(&m);
    free(s);

    s = token_msg(HC_JSON_CTL_MAX + 1);
    memset(&m, 0xa5, sizeof(m));
    assert_int_equal(hc_json_parse_ctl(s, HC_JSON_CTL_MAX + 1, &m), HC_ETOOBIG);
    assert_zeroed(&m);
    free(s);
}

static void test_free_idempotent(void **state)
{
    struct hc_ctl_msg m;

    (void)state;
    hc_ctl_msg_free(NULL);
    assert_int_equal(parse(azure_accept, &m), 0);
    hc_ctl_msg_free(&m);
    assert_zeroed(&m);
    hc_ctl_msg_free(&m);
    assert_zeroed(&m);
}

/*
 * Make each hc_malloc fail in turn, the first, then the second, and so on,
 * until the call gets through. Every failure must be a clean UV_ENOMEM with
 * the message zeroed; ASan checks that nothing leaks on the way.
 */
static void oom_sweep_parse(const char *s, int want_type)
{
    struct hc_ctl_msg m;
    long i, used;
    int rc;

    for (i = 0;; i++) {
        hc_mem_fail_after(i);
        rc = parse(s, &m);
        used = hc_mem_fail_after(-1);
        if (rc == 0)
            break;
        if (rc != UV_ENOMEM)
            fail_msg("failing allocation %ld gave %d", i, rc);
        assert_zeroed(&m);
        assert_true(i < used);
    }
    /* It got through only once no allocation failed. */
    assert_true(i >= used);
    assert_true(i > 0);
    assert_int_equal(m.type, want_type);
    hc_ctl_msg_free(&m);
}

static void test_oom_parse(void **state)
{
    (void)state;
    oom_sweep_parse(inline_request, HC_CTL_REQUEST);
    oom_sweep_parse(azure_accept, HC_CTL_ACCEPT);
    oom_sweep_parse("{\"response\":{\"requestId\":\"r1\",\"statusCode\":200,"
                    "\"statusDescription\":\"OK\",\"responseHeaders\":"
                    "{\"a\":\"b\"}}}",
                    HC_CTL_RESPONSE);
    oom_sweep_parse("{\"renewToken\":{\"token\":\"t\"}}", HC_CTL_RENEW_TOKEN);
    oom_sweep_parse("{\"other\":{}}", HC_CTL_UNKNOWN);
}

static void test_oom_build(void **state)
{
    struct hc_http_header hdrs[4];
    char *js = NULL, *want;
    long i, used = 0;

    (void)state;
    hdrs[0] = hdr("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==");
    hdrs[1] = hdr("X-Multi", "a");
    hdrs[2] = hdr("X-Latin", "\xe9t\xe9");
    hdrs[3] = hdr("x-multi", "b");
    want = hc_json_accept("wss://a/$hc/x", "id", hdrs, 4, "10.0.0.1", 80);
    assert_non_null(want);
    for (i = 0;; i++) {
        hc_mem_fail_after(i);
        js = hc_json_accept("wss://a/$hc/x", "id", hdrs, 4, "10.0.0.1", 80);
        used = hc_mem_fail_after(-1);
        if (js != NULL)
            break;
        assert_true(i < used);
    }
    assert_true(i >= used);
    assert_true(i >= 3); /* the join, the Latin-1 copy, the output */
    assert_string_equal(js, want);
    hc_free(js);
    hc_free(want);

    for (i = 0;; i++) {
        hc_mem_fail_after(i);
        js = hc_json_renew_token("tok");
        used = hc_mem_fail_after(-1);
        if (js != NULL)
            break;
        assert_true(i < used);
    }
    assert_true(i >= used);
    assert_true(i > 0);
    assert_string_equal(js, "{\"renewToken\":{\"token\":\"tok\"}}");
    hc_free_secret_str(js);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accept_build_and_parse),
        cmocka_unit_test(test_accept_minimal),
        cmocka_unit_test(test_accept_azure_capture),
        cmocka_unit_test(test_renew_token_round_trip),
        cmocka_unit_test(test_response),
        cmocka_unit_test(test_response_bad_status),
        cmocka_unit_test(test_request_inline),
        cmocka_unit_test(test_request_pointer),
        cmocka_unit_test(test_remote_endpoint_tolerant),
        cmocka_unit_test(test_unknown_command),
        cmocka_unit_test(test_top_level_shape),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_not_nul_terminated),
        cmocka_unit_test(test_wrong_types),
        cmocka_unit_test(test_size_limit),
        cmocka_unit_test(test_free_idempotent),
        cmocka_unit_test(test_oom_parse),
        cmocka_unit_test(test_oom_build),
    };

    if (argc > 1)
        cmocka_set_test_filter(argv[1]);
    return cmocka_run_group_tests_name("json", tests, NULL, NULL);
}
