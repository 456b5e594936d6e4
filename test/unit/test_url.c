/*
 * test_url.c - percent-encoding, query iteration and URL parsing.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include <uv.h>

#include "hc_err.h"
#include "hc_mem.h"
#include "hc_url.h"

static void check_encode(const char *in, size_t len, const char *want)
{
    char *got = hc_url_encode(in, len);
    assert_non_null(got);
    assert_string_equal(got, want);
    hc_free(got);
}

static void encode_keeps_unreserved(void **state)
{
    const char *s = "AZaz09-_.!~*'()";
    check_encode(s, strlen(s), s);
}

static void encode_escapes_reserved(void **state)
{
    const char *s = "http://ns:443/$hc/a b";
    check_encode(s, strlen(s), "http%3A%2F%2Fns%3A443%2F%24hc%2Fa%20b");
    check_encode("+/=&?#%", 7, "%2B%2F%3D%26%3F%23%25");
    check_encode("\xc3\xa9\x7f", 3, "%C3%A9%7F");
    check_encode("a\0b", 3, "a%00b");
    check_encode("", 0, "");
    /* len, not the NUL, bounds the input. */
    check_encode("abc", 2, "ab");
}

static void encode_oom(void **state)
{
    hc_mem_fail_after(0);
    assert_null(hc_url_encode("abc", 3));
    hc_mem_fail_after(-1);
}

static void decode_basic(void **state)
{
    char out[64];
    char buf[] = "a%20b%2fc%2F+d";

    assert_int_equal(hc_url_decode(out, "a%20b%2Fc", 9, 0), 5);
    assert_string_equal(out, "a b/c");
    assert_int_equal(hc_url_decode(out, "%3a%3A", 6, 0), 2);
    assert_string_equal(out, "::");
    assert_int_equal(hc_url_decode(out, "a+b", 3, 0), 3);
    assert_string_equal(out, "a+b");
    assert_int_equal(hc_url_decode(out, "a+b", 3, 1), 3);
    assert_string_equal(out, "a b");
    assert_int_equal(hc_url_decode(out, "%2B+", 4, 1), 2);
    assert_string_equal(out, "+ ");
    assert_int_equal(hc_url_decode(out, "", 0, 0), 0);
    assert_string_equal(out, "");
    /* Only len bytes are read. */
    assert_int_equal(hc_url_decode(out, "ab%", 2, 0), 2);
    assert_string_equal(out, "ab");
    /* In place. */
    assert_int_equal(hc_url_decode(buf, buf, strlen(buf), 1), 8);
    assert_string_equal(buf, "a b/c/ d");
}

static void decode_rejects_bad_escapes(void **state)
{
    static const char *const bad[] = {"%",   "%2",   "abc%", "abc%4", "%G0",
                                      "%0g", "%%41", "% 41", "%00",   "a%00b"};
    char out[16];
    size_t i;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(hc_url_decode(out, bad[i], strlen(bad[i]), 0),
                         HC_ESYNTAX);
    /* A literal NUL inside len is refused too. */
    assert_int_equal(hc_url_decode(out, "a\0b", 3, 0), HC_ESYNTAX);
}

static void expect_param(const char **cur, const char *end, const char *name,
                         const char *value)
{
    struct hc_query_param p;

    assert_int_equal(hc_query_next(cur, end, &p), 1);
    assert_int_equal(p.name_len, strlen(name));
    assert_memory_equal(p.name, name, p.name_len);
    assert_int_equal(p.value_len, strlen(value));
    if (p.value_len > 0)
        assert_memory_equal(p.value, value, p.value_len);
}

static void query_iterates(void **state)
{
    const char *q = "a=1&&b=&c&=d&e=x=y&";
    const char *cur = q, *end = q + strlen(q);
    struct hc_query_param p;

    expect_param(&cur, end, "a", "1");
    expect_param(&cur, end, "b", "");

    /* A name without '=': empty value right after the name. */
    assert_int_equal(hc_query_next(&cur, end, &p), 1);
    assert_int_equal(p.name_len, 1);
    assert_memory_equal(p.name, "c", 1);
    assert_int_equal(p.value_len, 0);
    assert_ptr_equal(p.value, p.name + 1);

    expect_param(&cur, end, "", "d");
    expect_param(&cur, end, "e", "x=y");
    assert_int_equal(hc_query_next(&cur, end, &p), 0);
    assert_int_equal(hc_query_next(&cur, end, &p), 0);
}

static void query_empty(void **state)
{
    const char *q = "&&&";
    const char *cur = q;
    struct hc_query_param p;

    assert_int_equal(hc_query_next(&cur, q + 3, &p), 0);
    cur = q;
    assert_int_equal(hc_query_next(&cur, q, &p), 0);
}

static void query_respects_end(void **state)
{
    const char *q = "a=1&b=2";
    const char *cur = q;
    struct hc_query_param p;

    assert_int_equal(hc_query_next(&cur, q + 2, &p), 1);
    assert_int_equal(p.value_len, 0);
    assert_int_equal(hc_query_next(&cur, q + 2, &p), 0);
}

static void query_get(void **state)
{
    const char *q = "sb-hc-action=listen&sb-hc-id=42&sb-hc-id=43&Flag&x=";
    const char *v;
    size_t vl;

    assert_int_equal(hc_query_get(q, strlen(q), "sb-hc-action", &v, &vl), 1);
    assert_int_equal(vl, 6);
    assert_memory_equal(v, "listen", 6);
    assert_int_equal(hc_query_get(q, strlen(q), "sb-hc-id", &v, &vl), 1);
    assert_int_equal(vl, 2);
    assert_memory_equal(v, "42", 2);
    assert_int_equal(hc_query_get(q, strlen(q), "Flag", &v, &vl), 1);
    assert_int_equal(vl, 0);
    assert_int_equal(hc_query_get(q, strlen(q), "x", &v, &vl), 1);
    assert_int_equal(vl, 0);
    assert_int_equal(hc_query_get(q, strlen(q), "flag", &v, &vl), 0);
    assert_int_equal(hc_query_get(q, strlen(q), "sb-hc", &v, &vl), 0);
    assert_int_equal(hc_query_get(q, strlen(q), "sb-hc-token", &v, &vl), 0);
    assert_int_equal(hc_query_get("", 0, "a", &v, &vl), 0);
}

static void parse_relay_listen_url(void **state)
{
    struct hc_url u;

    assert_int_equal(
        hc_url_parse("wss://localhost:9443/$hc/db?sb-hc-action=listen", &u), 0);
    assert_string_equal(u.scheme, "wss");
    assert_string_equal(u.host, "localhost");
    assert_int_equal(u.port, 9443);
    assert_int_equal(u.port_explicit, 1);
    assert_string_equal(u.path, "/$hc/db");
    assert_string_equal(u.query, "sb-hc-action=listen");
    hc_url_free(&u);
}

static void parse_ipv6(void **state)
{
    struct hc_url u;

    assert_int_equal(hc_url_parse("wss://[::1]:5432/x", &u), 0);
    assert_string_equal(u.host, "::1");
    assert_int_equal(u.port, 5432);
    assert_int_equal(u.port_explicit, 1);
    assert_string_equal(u.path, "/x");
    hc_url_free(&u);

    assert_int_equal(hc_url_parse("http://[FE80::A:1]", &u), 0);
    assert_string_equal(u.host, "fe80::a:1");
    assert_int_equal(u.port, 80);
    assert_int_equal(u.port_explicit, 0);
    assert_string_equal(u.path, "/");
    hc_url_free(&u);

    assert_int_equal(hc_url_parse("http://[::ffff:127.0.0.1]:1/", &u), 0);
    assert_string_equal(u.host, "::ffff:127.0.0.1");
    hc_url_free(&u);

    assert_int_equal(hc_url_parse("http://[::1/", &u), HC_ESYNTAX);
    assert_int_equal(hc_url_parse("http://[]/", &u), HC_ESYNTAX);
    assert_int_equal(hc_url_parse("http://[zz::1]/", &u), HC_ESYNTAX);
    assert_int_equal(hc_url_parse("http://[1234]/", &u), HC_ESYNTAX);
    assert_int_equal(hc_url_parse("http://[::1]x/", &u), HC_ESYNTAX);
    assert_int_equal(hc_url_parse("http://[::1]:/", &u), HC_ESYNTAX);
}

static void check_default(const char *url, const char *scheme, int port)
{
    struct hc_url u;

    assert_int_equal(hc_url_parse(url, &u), 0);
    assert_string_equal(u.scheme, scheme);
    assert_int_equal(u.port, port);
    assert_int_equal(u.port_explicit, 0);
    assert_string_equal(u.path, "/");
    assert_string_equal(u.query, "");
    hc_url_free(&u);
}

static void parse_default_ports(void **state)
{
    check_default("wss://h", "wss", 443);
    check_default("ws://h", "ws", 80);
    check_default("https://h/", "https", 443);
    check_default("http://h", "http", 80);
    check_default("sb://ns.servicebus.windows.net/", "sb", 443);
    check_default("SB://h", "sb", 443);
    check_default("ftp://h", "ftp", 0);
}

static void parse_case_query_fragment(void **state)
{
    struct hc_url u;

    assert_int_equal(hc_url_parse("WSS://LocalHost:80/A%2F?B=C&d#frag", &u), 0);
    assert_string_equal(u.scheme, "wss");
    assert_string_equal(u.host, "localhost");
    assert_int_equal(u.port, 80);
    assert_int_equal(u.port_explicit, 1);
    assert_string_equal(u.path, "/A%2F");
    assert_string_equal(u.query, "B=C&d");
    hc_url_free(&u);

    assert_int_equal(hc_url_parse("http://h#x?y", &u), 0);
    assert_string_equal(u.path, "/");
    assert_string_equal(u.query, "");
    hc_url_free(&u);

    assert_int_equal(hc_url_parse("http://h?q", &u), 0);
    assert_string_equal(u.path, "/");
    assert_string_equal(u.query, "q");
    hc_url_free(&u);
}

static void parse_userinfo(void **state)
{
    struct hc_url u;

    assert_int_equal(hc_url_parse("https://user:pw@Host:8443/p", &u), 0);
    assert_string_equal(u.host, "host");
    assert_int_equal(u.port, 8443);
    assert_string_equal(u.path, "/p");
    hc_url_free(&u);

    assert_int_equal(hc_url_parse("https://a@b@host/", &u), 0);
    assert_string_equal(u.host, "host");
    hc_url_free(&u);
}

static void parse_ports(void **state)
{
    static const char *const bad[] = {
        "http://h:0/",     "http://h:65536/", "http://h:abc/", "http://h:/",
        "http://h:-1/",    "http://h:123456", "http://h:80x/", "http://h:+80",
        "http://h:000080", "http://h:1:2/",
    };
    struct hc_url u;
    size_t i;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(hc_url_parse(bad[i], &u), HC_ESYNTAX);
        assert_null(u.path);
        assert_null(u.query);
    }
    assert_int_equal(hc_url_parse("http://h:65535", &u), 0);
    assert_int_equal(u.port, 65535);
    hc_url_free(&u);
    assert_int_equal(hc_url_parse("http://h:1?x", &u), 0);
    assert_int_equal(u.port, 1);
    assert_string_equal(u.query, "x");
    hc_url_free(&u);
    assert_int_equal(hc_url_parse("http://h:08080", &u), 0);
    assert_int_equal(u.port, 8080);
    hc_url_free(&u);
}

static void parse_rejects_malformed(void **state)
{
    static const char *const bad[] = {
        "",
        "localhost:9443",
        "://h/",
        "1http://h/",
        "http:/h",
        "http:h",
        "http://",
        "http:///path",
        "http://?q",
        "http://h o/",
        "http://h/a b",
        "http://h/\t",
        "http://h\x7f/",
        "http://h%41/",
        "http://h,i/",
        "abcdefghijklmnop://h/",
    };
    struct hc_url u;
    size_t i;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(hc_url_parse(bad[i], &u), HC_ESYNTAX);
}

static void parse_host_length(void **state)
{
    char url[300];
    struct hc_url u;

    memcpy(url, "http://", 7);
    memset(url + 7, 'a', 255);
    url[7 + 255] = '\0';
    assert_int_equal(hc_url_parse(url, &u), 0);
    assert_int_equal(strlen(u.host), 255);
    hc_url_free(&u);

    url[7 + 255] = 'a';
    url[7 + 256] = '\0';
    assert_int_equal(hc_url_parse(url, &u), HC_ESYNTAX);

    /* A 15-byte scheme still fits. */
    assert_int_equal(hc_url_parse("abcdefghijklmno://h/", &u), 0);
    assert_string_equal(u.scheme, "abcdefghijklmno");
    hc_url_free(&u);
}

static void free_is_idempotent(void **state)
{
    struct hc_url u;

    assert_int_equal(hc_url_parse("http://h/p?q", &u), 0);
    hc_url_free(&u);
    assert_null(u.path);
    assert_null(u.query);
    hc_url_free(&u);
    hc_url_free(NULL);
}

static void parse_oom(void **state)
{
    struct hc_url u;
    long i;
    int rc;

    for (i = 0;; i++) {
        hc_mem_fail_after(i);
        rc = hc_url_parse("wss://h:1/p?q", &u);
        if (rc == 0)
            break;
        assert_int_equal(rc, UV_ENOMEM);
        assert_null(u.path);
        assert_null(u.query);
    }
    hc_mem_fail_after(-1);
    assert_int_equal(i, 2);
    assert_string_equal(u.path, "/p");
    hc_url_free(&u);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(encode_keeps_unreserved),
        cmocka_unit_test(encode_escapes_reserved),
        cmocka_unit_test(encode_oom),
        cmocka_unit_test(decode_basic),
        cmocka_unit_test(decode_rejects_bad_escapes),
        cmocka_unit_test(query_iterates),
        cmocka_unit_test(query_empty),
        cmocka_unit_test(query_respects_end),
        cmocka_unit_test(query_get),
        cmocka_unit_test(parse_relay_listen_url),
        cmocka_unit_test(parse_ipv6),
        cmocka_unit_test(parse_default_ports),
        cmocka_unit_test(parse_case_query_fragment),
        cmocka_unit_test(parse_userinfo),
        cmocka_unit_test(parse_ports),
        cmocka_unit_test(parse_rejects_malformed),
        cmocka_unit_test(parse_host_length),
        cmocka_unit_test(free_is_idempotent),
        cmocka_unit_test(parse_oom),
    };

    return cmocka_run_group_tests_name("url", tests, NULL, NULL);
}
