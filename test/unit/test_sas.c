/*
 * test_sas.c - SAS tokens: the protocol.md §2.5 vectors, the token matrix of
 * §9.5 item 3, parse errors, scope, expiry and an OOM sweep.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include <mbedtls/base64.h>
#include <mbedtls/md.h>

#include "hc_err.h"
#include "hc_mem.h"
#include "hc_sas.h"
#include "hc_url.h"

#define KEY "c2VjcmV0LWtleS1iYXNlNjQ9PQ=="
#define SKN "RootManageSharedAccessKey"
#define SE 1700000000u
#define NS "ns.servicebus.windows.net"

/* protocol.md §2.5. */
static const struct {
    const char *sr;
    const char *sig;
} vectors[] = {
    {"http%3A%2F%2Fcontoso.servicebus.windows.net%2Fhyco%2F",
     "oURi16eJg64ZaCIqbtWUWzQWtoODluxgsAmqEab4Qho="},
    {"http%3A%2F%2Fcontoso.servicebus.windows.net%3A443%2Fhyco",
     "aLi1Wmc7FXLMI/sFebM9ACr9dV9hzbWfwewxIMg0MIw="},
    {"http%3a%2f%2fcontoso.servicebus.windows.net%2fhyco%2f",
     "VedBGqHTK8aOdlN1mzX1bwBiv+6G5ZNBMYyqpl0AJRs="},
};

/* URL-encode a base64 signature; keep_slash leaves '/' raw (Python). */
static void encode_sig(char *out, size_t cap, const char *b64, int keep_slash)
{
    size_t n = 0;

    for (; *b64 != '\0'; b64++) {
        const char *e = NULL;
        if (*b64 == '+')
            e = "%2B";
        else if (*b64 == '/' && !keep_slash)
            e = "%2F";
        else if (*b64 == '=')
            e = "%3D";
        if (e != NULL) {
            assert_true(n + 3 < cap);
            memcpy(out + n, e, 3);
            n += 3;
        } else {
            assert_true(n + 1 < cap);
            out[n++] = *b64;
        }
    }
    out[n] = '\0';
}

/*
 * base64 of HMAC-SHA256(key, sr + "\n" + se_text), computed here with mbedTLS
 * directly so the tests do not lean on sas.c to check sas.c.
 */
static void ref_sig_text(char *b64, size_t cap, const char *key, const char *sr,
                         const char *se_text)
{
    char msg[1024];
    unsigned char mac[32];
    size_t olen;
    int n = snprintf(msg, sizeof(msg), "%s\n%s", sr, se_text);

    assert_true(n > 0 && (size_t)n < sizeof(msg));
    assert_int_equal(
        mbedtls_md_hmac(mbedtls_md_info_from_type(MBEDTLS_MD_SHA256),
                        (const unsigned char *)key, strlen(key),
                        (const unsigned char *)msg, (size_t)n, mac),
        0);
    assert_int_equal(mbedtls_base64_encode((unsigned char *)b64, cap, &olen,
                                           mac, sizeof(mac)),
                     0);
}

static void ref_sig(char *b64, size_t cap, const char *key, const char *sr,
                    uint64_t se)
{
    char se_text[24];

    snprintf(se_text, sizeof(se_text), "%llu", (unsigned long long)se);
    ref_sig_text(b64, cap, key, sr, se_text);
}

/*
 * Build a token for raw sr signed with key. order is a permutation of
 * "rgek" (sr, sig, se, skn).
 */
static void make_token(char *out, size_t cap, const char *sr, const char *key,
                       uint64_t se, const char *order, int keep_slash)
{
    char b64[64], sig[160];
    size_t n;
    const char *o;

    ref_sig(b64, sizeof(b64), key, sr, se);
    encode_sig(sig, sizeof(sig), b64, keep_slash);
    n = (size_t)snprintf(out, cap, "SharedAccessSignature ");
    for (o = order; *o != '\0'; o++) {
        const char *sep = o == order ? "" : "&";
        switch (*o) {
        case 'r':
            n += (size_t)snprintf(out + n, cap - n, "%ssr=%s", sep, sr);
            break;
        case 'g':
            n += (size_t)snprintf(out + n, cap - n, "%ssig=%s", sep, sig);
            break;
        case 'e':
            n += (size_t)snprintf(out + n, cap - n, "%sse=%llu", sep,
                                  (unsigned long long)se);
            break;
        case 'k':
            n += (size_t)snprintf(out + n, cap - n, "%sskn=%s", sep, SKN);
            break;
        }
        assert_true(n < cap);
    }
}

/* Parse + verify + scope for host NS in one go. */
static void expect_token(const char *tok, const char *key, const char *entity,
                         int verify_rc, int in_scope)
{
    struct hc_sas_token t;

    assert_int_equal(hc_sas_parse(tok, strlen(tok), &t), 0);
    assert_int_equal(hc_sas_verify(&t, key), verify_rc);
    assert_int_equal(hc_sas_in_scope(&t, NS, entity), in_scope);
}

static void vectors_parse_and_verify(void **state)
{
    size_t i;

    for (i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
        char sig[160], tok[512], b64[64];
        struct hc_sas_token t;
        size_t olen;

        encode_sig(sig, sizeof(sig), vectors[i].sig, 0);
        snprintf(tok, sizeof(tok),
                 "SharedAccessSignature sr=%s&sig=%s&se=1700000000&skn=" SKN,
                 vectors[i].sr, sig);
        assert_int_equal(hc_sas_parse(tok, strlen(tok), &t), 0);
        assert_int_equal(t.sr_len, strlen(vectors[i].sr));
        assert_memory_equal(t.sr, vectors[i].sr, t.sr_len);
        assert_int_equal(t.se, SE);
        assert_string_equal(t.skn, SKN);
        assert_int_equal(t.sig_len, 32);
        assert_int_equal(mbedtls_base64_encode((unsigned char *)b64,
                                               sizeof(b64), &olen, t.sig, 32),
                         0);
        assert_string_equal(b64, vectors[i].sig);
        assert_int_equal(hc_sas_verify(&t, KEY), 0);
        assert_int_equal(
            hc_sas_in_scope(&t, "contoso.servicebus.windows.net", "hyco"), 1);

        /* The reference HMAC agrees with the published vector. */
        ref_sig(b64, sizeof(b64), KEY, vectors[i].sr, SE);
        assert_string_equal(b64, vectors[i].sig);
    }
}

static void vector_with_decoded_key_is_rejected(void **state)
{
    /* §2.5: what a verifier that base64-decodes the key would expect. */
    const char *tok = "SharedAccessSignature "
                      "sr=http%3A%2F%2Fcontoso.servicebus.windows.net%2Fhyco%2F"
                      "&sig=PAXUpRsDnUoYpKOjJeU4I5fnej65dduLKCt4zmrggIs%3D"
                      "&se=1700000000&skn=" SKN;
    struct hc_sas_token t;

    assert_int_equal(hc_sas_parse(tok, strlen(tok), &t), 0);
    assert_int_equal(hc_sas_verify(&t, KEY), HC_EAUTH);
    /* The decoded key happens to be text, so the claim can be checked. */
    assert_int_equal(hc_sas_verify(&t, "secret-key-base64=="), 0);
}

static void sign_matches_vectors(void **state)
{
    char *tok;

    tok = hc_sas_sign("http://contoso.servicebus.windows.net/hyco/", SKN, KEY,
                      SE);
    assert_non_null(tok);
    assert_string_equal(
        tok, "SharedAccessSignature "
             "sr=http%3A%2F%2Fcontoso.servicebus.windows.net%2Fhyco%2F"
             "&sig=oURi16eJg64ZaCIqbtWUWzQWtoODluxgsAmqEab4Qho%3D"
             "&se=1700000000&skn=RootManageSharedAccessKey");
    hc_free(tok);

    tok = hc_sas_sign("http://contoso.servicebus.windows.net:443/hyco", SKN,
                      KEY, SE);
    assert_non_null(tok);
    assert_string_equal(
        tok, "SharedAccessSignature "
             "sr=http%3A%2F%2Fcontoso.servicebus.windows.net%3A443%2Fhyco"
             "&sig=aLi1Wmc7FXLMI%2FsFebM9ACr9dV9hzbWfwewxIMg0MIw%3D"
             "&se=1700000000&skn=RootManageSharedAccessKey");
    hc_free(tok);
}

static void sign_parse_verify(void **state)
{
    struct hc_sas_token t;
    char *aud, *tok;

    aud = hc_sas_audience("NS.ServiceBus.Windows.Net", "db");
    assert_non_null(aud);
    assert_string_equal(aud, "http://ns.servicebus.windows.net/db/");
    tok = hc_sas_sign(aud, "send rule&x", "k3y", 4102444800u);
    hc_free(aud);
    assert_non_null(tok);

    assert_int_equal(hc_sas_parse(tok, strlen(tok), &t), 0);
    assert_int_equal(t.se, 4102444800u);
    assert_string_equal(t.skn, "send rule&x");
    assert_int_equal(t.sr_len,
                     strlen("http%3A%2F%2Fns.servicebus.windows.net%2Fdb%2F"));
    assert_memory_equal(t.sr, "http%3A%2F%2Fns.servicebus.windows.net%2Fdb%2F",
                        t.sr_len);
    assert_int_equal(hc_sas_verify(&t, "k3y"), 0);
    assert_int_equal(hc_sas_verify(&t, "k3y "), HC_EAUTH);
    assert_int_equal(hc_sas_verify(&t, ""), HC_EAUTH);
    assert_int_equal(hc_sas_in_scope(&t, NS, "db"), 1);
    assert_int_equal(hc_sas_in_scope(&t, NS, "db2"), 0);
    assert_int_equal(hc_sas_check_expiry(&t, 4102444800u, 0), 0);
    assert_int_equal(hc_sas_check_expiry(&t, 4102444801u, 0), HC_EEXPIRED);
    hc_free(tok);
}

static void audience_forms(void **state)
{
    static const struct {
        const char *host, *entity, *want;
    } cases[] = {
        {"Contoso.servicebus.windows.net", "hyco",
         "http://contoso.servicebus.windows.net/hyco/"},
        {"h", NULL, "http://h/"},
        {"h", "", "http://h/"},
        {"h", "/db/", "http://h/db/"},
        {"h", "Db/Sub", "http://h/Db/Sub/"},
        {"::1", "x", "http://[::1]/x/"},
        {"[::1]", "x", "http://[::1]/x/"},
    };
    size_t i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *a = hc_sas_audience(cases[i].host, cases[i].entity);
        assert_non_null(a);
        assert_string_equal(a, cases[i].want);
        hc_free(a);
    }
    hc_mem_fail_after(0);
    assert_null(hc_sas_audience("h", "e"));
    hc_mem_fail_after(-1);
}

/* §9.5 item 3: the token matrix. */

static void matrix_node_style(void **state)
{
    char tok[512];

    /* Port kept, no trailing slash, as Node's createRelayToken signs. */
    make_token(tok, sizeof(tok), "http%3A%2F%2F" NS "%3A443%2Fdb", KEY, SE,
               "rgek", 0);
    expect_token(tok, KEY, "db", 0, 1);
    make_token(tok, sizeof(tok), "http%3A%2F%2F" NS "%3A9443%2Fdb", KEY, SE,
               "rgek", 0);
    expect_token(tok, KEY, "db", 0, 1);
}

static void matrix_dotnet_style(void **state)
{
    char tok[512];

    make_token(tok, sizeof(tok), "http%3A%2F%2F" NS "%2Fdb%2F", KEY, SE, "rgek",
               0);
    expect_token(tok, KEY, "db", 0, 1);
}

static void matrix_namespace_wide(void **state)
{
    char tok[512];

    make_token(tok, sizeof(tok), "http%3A%2F%2F" NS "%2F", KEY, SE, "rgek", 0);
    expect_token(tok, KEY, "db", 0, 1);
    expect_token(tok, KEY, "other/deep", 0, 1);
    /* Java's sender loses the path and even the slash. */
    make_token(tok, sizeof(tok), "sb%3A%2F%2F" NS, KEY, SE, "rgek", 0);
    expect_token(tok, KEY, "db", 0, 1);
}

static void matrix_sb_scheme(void **state)
{
    char tok[512];

    make_token(tok, sizeof(tok), "sb%3A%2F%2F" NS "%2Fdb", KEY, SE, "rgek", 0);
    expect_token(tok, KEY, "db", 0, 1);
    make_token(tok, sizeof(tok), "https%3A%2F%2F" NS "%2Fdb", KEY, SE, "rgek",
               0);
    expect_token(tok, KEY, "db", 0, 1);
}

static void matrix_lower_case_escapes(void **state)
{
    char tok[512];

    make_token(tok, sizeof(tok), "http%3a%2f%2f" NS "%2fdb%2f", KEY, SE, "rgek",
               0);
    expect_token(tok, KEY, "db", 0, 1);
}

static void matrix_expired(void **state)
{
    struct hc_sas_token t;
    char tok[512];

    make_token(tok, sizeof(tok), "http%3A%2F%2F" NS "%2Fdb%2F", KEY, 1000,
               "rgek", 0);
    assert_int_equal(hc_sas_parse(tok, strlen(tok), &t), 0);
    /* Expiry does not affect the signature. */
    assert_int_equal(hc_sas_verify(&t, KEY), 0);
    assert_int_equal(hc_sas_check_expiry(&t, 999, 0), 0);
    assert_int_equal(hc_sas_check_expiry(&t, 1000, 0), 0);
    assert_int_equal(hc_sas_check_expiry(&t, 1001, 0), HC_EEXPIRED);
    assert_int_equal(hc_sas_check_expiry(&t, 1300, 300), 0);
    assert_int_equal(hc_sas_check_expiry(&t, 1301, 300), HC_EEXPIRED);
    assert_int_equal(hc_sas_check_expiry(&t, UINT64_MAX, 300), HC_EEXPIRED);
    /* se + skew past 2^64 must not wrap into "expired". */
    t.se = UINT64_MAX - 5;
    assert_int_equal(hc_sas_check_expiry(&t, UINT64_MAX, UINT64_MAX), 0);
    assert_int_equal(hc_sas_check_expiry(&t, UINT64_MAX, 4), HC_EEXPIRED);
}

static void matrix_wrong_key(void **state)
{
    char tok[512];

    make_token(tok, sizeof(tok), "http%3A%2F%2F" NS "%2Fdb%2F", "other-key", SE,
               "rgek", 0);
    expect_token(tok, KEY, "db", HC_EAUTH, 1);
    expect_token(tok, "other-key", "db", 0, 1);
}

static void matrix_field_order(void **state)
{
    static const char *const orders[] = {"kegr", "ekrg", "grke", "rkge"};
    char tok[512];
    size_t i;

    for (i = 0; i < sizeof(orders) / sizeof(orders[0]); i++) {
        make_token(tok, sizeof(tok), "http%3A%2F%2F" NS "%2Fdb%2F", KEY, SE,
                   orders[i], 0);
        expect_token(tok, KEY, "db", 0, 1);
    }
}

static void matrix_sig_raw_slash_and_plus(void **state)
{
    struct hc_sas_token t;
    char tok[512];
    const char *plus;

    /* Vector 2's signature has a '/', left unencoded as Python's quote does. */
    snprintf(tok, sizeof(tok),
             "SharedAccessSignature sr=%s"
             "&sig=aLi1Wmc7FXLMI/sFebM9ACr9dV9hzbWfwewxIMg0MIw%%3D"
             "&se=1700000000&skn=" SKN,
             vectors[1].sr);
    assert_int_equal(hc_sas_parse(tok, strlen(tok), &t), 0);
    assert_int_equal(hc_sas_verify(&t, KEY), 0);

    /* Vector 3's has a '+': raw, it must stay a '+'. */
    snprintf(tok, sizeof(tok),
             "SharedAccessSignature sr=%s"
             "&sig=VedBGqHTK8aOdlN1mzX1bwBiv+6G5ZNBMYyqpl0AJRs="
             "&se=1700000000&skn=" SKN,
             vectors[2].sr);
    assert_int_equal(hc_sas_parse(tok, strlen(tok), &t), 0);
    assert_int_equal(hc_sas_verify(&t, KEY), 0);

    /* A raw '+' that a form decoder turned into a space still works. */
    plus = strchr(tok, '+');
    assert_non_null(plus);
    tok[plus - tok] = ' ';
    assert_int_equal(hc_sas_parse(tok, strlen(tok), &t), 0);
    assert_int_equal(hc_sas_verify(&t, KEY), 0);
}

static void matrix_token_from_query(void **state)
{
    struct hc_sas_token t;
    char tok[512], dec[512];
    char *q;
    ssize_t n;

    make_token(tok, sizeof(tok), "http%3A%2F%2F" NS "%3A443%2Fdb", KEY, SE,
               "rgek", 0);

    /* Node: sb-hc-token=encodeURIComponent(token). */
    q = hc_url_encode(tok, strlen(tok));
    assert_non_null(q);
    n = hc_url_decode(dec, q, strlen(q), 1);
    hc_free(q);
    assert_int_equal(n, (ssize_t)strlen(tok));
    expect_token(dec, KEY, "db", 0, 1);

    /* .NET test code: the space after the prefix sent as '+'. */
    q = hc_url_encode(tok, strlen(tok));
    assert_non_null(q);
    assert_memory_equal(q + 21, "%20", 3);
    memmove(q + 22, q + 24, strlen(q + 24) + 1);
    q[21] = '+';
    n = hc_url_decode(dec, q, strlen(q), 1);
    hc_free(q);
    assert_int_equal(n, (ssize_t)strlen(tok));
    assert_int_equal(hc_sas_parse(dec, (size_t)n, &t), 0);
    assert_int_equal(hc_sas_verify(&t, KEY), 0);
}

static void scope_other_host(void **state)
{
    char tok[512];

    make_token(tok, sizeof(tok),
               "http%3A%2F%2Fother.servicebus.windows.net%2Fdb%2F", KEY, SE,
               "rgek", 0);
    expect_token(tok, KEY, "db", 0, 0);
    make_token(tok, sizeof(tok), "http%3A%2F%2F" NS ".evil.example%2Fdb%2F",
               KEY, SE, "rgek", 0);
    expect_token(tok, KEY, "db", 0, 0);
    make_token(tok, sizeof(tok), "http%3A%2F%2Fx" NS "%2F", KEY, SE, "rgek", 0);
    expect_token(tok, KEY, "db", 0, 0);
}

static void scope_other_entity(void **state)
{
    char tok[512];

    make_token(tok, sizeof(tok), "http%3A%2F%2F" NS "%2Fother%2F", KEY, SE,
               "rgek", 0);
    expect_token(tok, KEY, "db", 0, 0);
    expect_token(tok, KEY, "other", 0, 1);
}

static void scope_parent_path(void **state)
{
    char tok[512];

    make_token(tok, sizeof(tok), "http%3A%2F%2F" NS "%2Fdb%2F", KEY, SE, "rgek",
               0);
    expect_token(tok, KEY, "db/sub", 0, 1);
    expect_token(tok, KEY, "db/sub/deeper", 0, 1);
    /* A child does not cover its parent. */
    make_token(tok, sizeof(tok), "http%3A%2F%2F" NS "%2Fdb%2Fsub", KEY, SE,
               "rgek", 0);
    expect_token(tok, KEY, "db", 0, 0);
    expect_token(tok, KEY, "db/sub", 0, 1);
    expect_token(tok, KEY, "db/subx", 0, 0);
}

static void scope_db_is_not_dbx(void **state)
{
    char tok[512];

    make_token(tok, sizeof(tok), "http%3A%2F%2F" NS "%2Fdb", KEY, SE, "rgek",
               0);
    expect_token(tok, KEY, "dbx", 0, 0);
    expect_token(tok, KEY, "dbx/sub", 0, 0);
    make_token(tok, sizeof(tok), "http%3A%2F%2F" NS "%2Fdbx%2F", KEY, SE,
               "rgek", 0);
    expect_token(tok, KEY, "db", 0, 0);
}

static void scope_case_insensitive(void **state)
{
    struct hc_sas_token t;
    char tok[512];

    make_token(tok, sizeof(tok),
               "http%3A%2F%2FNS.ServiceBus.Windows.NET%2FDB%2F", KEY, SE,
               "rgek", 0);
    expect_token(tok, KEY, "db", 0, 1);
    expect_token(tok, KEY, "Db/Sub", 0, 1);
    assert_int_equal(hc_sas_parse(tok, strlen(tok), &t), 0);
    assert_int_equal(hc_sas_in_scope(&t, "ns.SERVICEBUS.windows.net", "dB"), 1);
}

static void scope_odd_sr(void **state)
{
    struct hc_sas_token t;
    char tok[512];

    /* Node encodes twice: wss://ns/$hc/a b signs http%3A%2F%2Fns%2Fa%2520b. */
    make_token(tok, sizeof(tok), "http%3A%2F%2F" NS "%2Fa%2520b", KEY, SE,
               "rgek", 0);
    expect_token(tok, KEY, "a b", 0, 1);
    expect_token(tok, KEY, "a%20b", 0, 0);

    /* Not a URI, or not decodable: parse and verify fine, never in scope. */
    make_token(tok, sizeof(tok), NS "%2Fdb", KEY, SE, "rgek", 0);
    expect_token(tok, KEY, "db", 0, 0);
    make_token(tok, sizeof(tok), "http%3A%2F%2F" NS "%2Fdb%zz", KEY, SE, "rgek",
               0);
    expect_token(tok, KEY, "db", 0, 0);
    make_token(tok, sizeof(tok), "http%3A%2F%2F" NS "%2Fdb%2500", KEY, SE,
               "rgek", 0);
    expect_token(tok, KEY, "db", 0, 0);

    /* Userinfo and query in sr are ignored; IPv6 hosts compare bare. */
    make_token(tok, sizeof(tok), "http%3A%2F%2Fu%40" NS "%2Fdb%3Fx%3D1", KEY,
               SE, "rgek", 0);
    expect_token(tok, KEY, "db", 0, 1);
    make_token(tok, sizeof(tok), "http%3A%2F%2F%5B%3A%3A1%5D%3A9443%2Fdb", KEY,
               SE, "rgek", 0);
    assert_int_equal(hc_sas_parse(tok, strlen(tok), &t), 0);
    assert_int_equal(hc_sas_in_scope(&t, "::1", "db"), 1);
    assert_int_equal(hc_sas_in_scope(&t, "[::1]", "db"), 1);
    assert_int_equal(hc_sas_in_scope(&t, "::2", "db"), 0);
    assert_int_equal(hc_sas_in_scope(&t, "::1", NULL), 0);

    /* Out of memory fails closed. */
    hc_mem_fail_after(0);
    assert_int_equal(hc_sas_in_scope(&t, "::1", "db"), 0);
    hc_mem_fail_after(-1);
}

static void parse_prefix(void **state)
{
    struct hc_sas_token t;
    const char *body = "sr=a&sig=oURi16eJg64ZaCIqbtWUWzQWtoODluxgsAmqEab4Qho%3D"
                       "&se=1&skn=r";
    char tok[512];

    snprintf(tok, sizeof(tok), "sharedaccesssignature %s", body);
    assert_int_equal(hc_sas_parse(tok, strlen(tok), &t), 0);
    snprintf(tok, sizeof(tok), "SHAREDACCESSSIGNATURE    %s", body);
    assert_int_equal(hc_sas_parse(tok, strlen(tok), &t), 0);
    assert_int_equal(t.sr_len, 1);
    assert_memory_equal(t.sr, "a", 1);

    snprintf(tok, sizeof(tok), "SharedAccessSignature%s", body);
    assert_int_equal(hc_sas_parse(tok, strlen(tok), &t), HC_ESYNTAX);
    snprintf(tok, sizeof(tok), "SharedAccessSignature\t%s", body);
    assert_int_equal(hc_sas_parse(tok, strlen(tok), &t), HC_ESYNTAX);
    snprintf(tok, sizeof(tok), "Bearer %s", body);
    assert_int_equal(hc_sas_parse(tok, strlen(tok), &t), HC_ESYNTAX);
    snprintf(tok, sizeof(tok), "%s", body);
    assert_int_equal(hc_sas_parse(tok, strlen(tok), &t), HC_ESYNTAX);
    assert_int_equal(hc_sas_parse("SharedAccessSignature", 21, &t), HC_ESYNTAX);
    assert_int_equal(hc_sas_parse("SharedAccessSignature ", 22, &t),
                     HC_ESYNTAX);
    assert_int_equal(hc_sas_parse("", 0, &t), HC_ESYNTAX);
}

static void parse_fields(void **state)
{
    static const char *const bad[] = {
        /* missing fields */
        "sig=S&se=1&skn=r",
        "sr=a&se=1&skn=r",
        "sr=a&sig=S&skn=r",
        "sr=a&sig=S&se=1",
        /* duplicates */
        "sr=a&sr=a&sig=S&se=1&skn=r",
        "sr=a&sig=S&sig=S&se=1&skn=r",
        "sr=a&sig=S&se=1&se=1&skn=r",
        "sr=a&sig=S&se=1&skn=r&skn=r",
        /* empty values */
        "sr=&sig=S&se=1&skn=r",
        "sr&sig=S&se=1&skn=r",
        "sr=a&sig=&se=1&skn=r",
        "sr=a&sig=S&se=&skn=r",
        "sr=a&sig=S&se=1&skn=",
        /* bad se */
        "sr=a&sig=S&se=17e9&skn=r",
        "sr=a&sig=S&se=-1&skn=r",
        "sr=a&sig=S&se=+1&skn=r",
        "sr=a&sig=S&se= 1&skn=r",
        "sr=a&sig=S&se=18446744073709551616&skn=r",
        "sr=a&sig=S&se=99999999999999999999&skn=r",
        /* bad sig */
        "sr=a&sig=oURi16eJg64ZaCIqbtWUWzQWtoODluxgsAmqEab4Qh%3D%3D&se=1&skn=r",
        "sr=a&sig=oURi16eJg64ZaCIqbtWUWzQWtoODluxgsAmqEab4QhoA&se=1&skn=r",
        "sr=a&sig=oURi16eJg64ZaCIqbtWUWzQWtoODluxgsAmqEab4Qho%3&se=1&skn=r",
        "sr=a&sig=oURi16eJg64ZaCIqbtWUWzQWtoODluxgsAmqEab4Qho%00&se=1&skn=r",
        "sr=a&sig=oURi16eJg64ZaCIqbtWUWzQWtoODluxgsAmqEab4Q%3Dho&se=1&skn=r",
        "sr=a&sig=AAAA%3D%3D%3D&se=1&skn=r",
        "sr=a&sig=oURi16eJg64ZaCIqbtWUWzQWtoODluxgsAmqEab4Qho%0A%3D&se=1&skn=r",
        "sr=a&sig=oURi16eJg64Za-IqbtWUWzQWtoODluxgsAmqEab4Qho%3D&se=1&skn=r",
        /* bad skn */
        "sr=a&sig=S&se=1&skn=%zz",
        "sr=a&sig=S&se=1&skn=%00",
    };
    const char *good_sig = "oURi16eJg64ZaCIqbtWUWzQWtoODluxgsAmqEab4Qho%3D";
    struct hc_sas_token t;
    char body[512], tok[600];
    size_t i;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        /* "S" stands for a good signature. */
        const char *s = strstr(bad[i], "sig=S");
        if (s != NULL)
            snprintf(body, sizeof(body), "%.*ssig=%s%s", (int)(s - bad[i]),
                     bad[i], good_sig, s + 5);
        else
            snprintf(body, sizeof(body), "%s", bad[i]);
        snprintf(tok, sizeof(tok), "SharedAccessSignature %s", body);
        if (hc_sas_parse(tok, strlen(tok), &t) != HC_ESYNTAX)
            fail_msg("accepted: %s", tok);
    }

    /* Largest se; skn escapes; unknown fields and empty segments ignored. */
    snprintf(tok, sizeof(tok),
             "SharedAccessSignature &sr=a&&x=1&sig=%s&se=18446744073709551615"
             "&skn=Root%%2BRule+1&",
             good_sig);
    assert_int_equal(hc_sas_parse(tok, strlen(tok), &t), 0);
    assert_true(t.se == UINT64_MAX);
    assert_string_equal(t.skn, "Root+Rule+1");
    assert_int_equal(t.sr_len, 1);
}

static void parse_skn_length(void **state)
{
    struct hc_sas_token t;
    char tok[1200];
    int n;

    n = snprintf(tok, sizeof(tok),
                 "SharedAccessSignature sr=a&se=1"
                 "&sig=oURi16eJg64ZaCIqbtWUWzQWtoODluxgsAmqEab4Qho%%3D&skn=");
    memset(tok + n, 'r', 256);
    tok[n + 256] = '\0';
    assert_int_equal(hc_sas_parse(tok, strlen(tok), &t), 0);
    assert_int_equal(strlen(t.skn), 256);

    tok[n + 256] = 'r';
    tok[n + 257] = '\0';
    assert_int_equal(hc_sas_parse(tok, strlen(tok), &t), HC_ESYNTAX);

    /* 256 bytes after decoding, written as 768 escaped bytes. */
    for (int i = 0; i < 256; i++)
        memcpy(tok + n + 3 * i, "%41", 3);
    tok[n + 768] = '\0';
    assert_int_equal(hc_sas_parse(tok, strlen(tok), &t), 0);
    assert_int_equal(strlen(t.skn), 256);
    assert_int_equal(t.skn[0], 'A');
}

static void parse_uses_len_only(void **state)
{
    struct hc_sas_token t;
    char tok[512];
    size_t len;

    make_token(tok, sizeof(tok), "http%3A%2F%2F" NS "%2Fdb%2F", KEY, SE, "rgek",
               0);
    len = strlen(tok);
    /* Junk after len, with no NUL: must be ignored. */
    memcpy(tok + len, "&skn=evil&sr=x", 14);
    assert_int_equal(hc_sas_parse(tok, len, &t), 0);
    assert_string_equal(t.skn, SKN);
    assert_int_equal(hc_sas_verify(&t, KEY), 0);
    /* Cut inside the last field: skn becomes "R". */
    assert_int_equal(hc_sas_parse(tok, len - strlen(SKN) + 1, &t), 0);
    assert_string_equal(t.skn, "R");
    /* Cut before skn: missing field. */
    assert_int_equal(hc_sas_parse(tok, len - strlen(SKN) - 5, &t), HC_ESYNTAX);
}

static void verify_needs_exact_se(void **state)
{
    struct hc_sas_token t;
    char tok[512], b64[64], sig[160];

    /*
     * verify rebuilds se in decimal, so a signer that wrote (and signed) se
     * with a leading zero is refused; no known client does that.
     */
    ref_sig_text(b64, sizeof(b64), KEY, vectors[0].sr, "01700000000");
    encode_sig(sig, sizeof(sig), b64, 0);
    snprintf(tok, sizeof(tok),
             "SharedAccessSignature sr=%s&sig=%s&se=01700000000&skn=" SKN,
             vectors[0].sr, sig);
    assert_int_equal(hc_sas_parse(tok, strlen(tok), &t), 0);
    assert_int_equal(t.se, SE);
    assert_int_equal(hc_sas_verify(&t, KEY), HC_EAUTH);

    /* Any change to sr, se or sig breaks a good token. */
    make_token(tok, sizeof(tok), vectors[0].sr, KEY, SE, "rgek", 0);
    assert_int_equal(hc_sas_parse(tok, strlen(tok), &t), 0);
    assert_int_equal(hc_sas_verify(&t, KEY), 0);
    t.se++;
    assert_int_equal(hc_sas_verify(&t, KEY), HC_EAUTH);
    t.se--;
    t.sr_len--;
    assert_int_equal(hc_sas_verify(&t, KEY), HC_EAUTH);
    t.sr_len++;
    t.sig[31] ^= 1;
    assert_int_equal(hc_sas_verify(&t, KEY), HC_EAUTH);
    t.sig[31] ^= 1;
    assert_int_equal(hc_sas_verify(&t, KEY), 0);
    t.sig_len = 31;
    assert_int_equal(hc_sas_verify(&t, KEY), HC_EAUTH);
}

static void sign_oom_sweep(void **state)
{
    char *tok = NULL;
    long i;

    for (i = 0;; i++) {
        hc_mem_fail_after(i);
        tok = hc_sas_sign("http://" NS "/db/", SKN, KEY, SE);
        if (tok != NULL)
            break;
        assert_true(i < 100);
    }
    hc_mem_fail_after(-1);
    /* enc(uri), enc(sig), enc(skn) and the token itself. */
    assert_int_equal(i, 4);
    assert_memory_equal(tok, "SharedAccessSignature sr=http%3A", 32);
    hc_free(tok);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(vectors_parse_and_verify),
        cmocka_unit_test(vector_with_decoded_key_is_rejected),
        cmocka_unit_test(sign_matches_vectors),
        cmocka_unit_test(sign_parse_verify),
        cmocka_unit_test(audience_forms),
        cmocka_unit_test(matrix_node_style),
        cmocka_unit_test(matrix_dotnet_style),
        cmocka_unit_test(matrix_namespace_wide),
        cmocka_unit_test(matrix_sb_scheme),
        cmocka_unit_test(matrix_lower_case_escapes),
        cmocka_unit_test(matrix_expired),
        cmocka_unit_test(matrix_wrong_key),
        cmocka_unit_test(matrix_field_order),
        cmocka_unit_test(matrix_sig_raw_slash_and_plus),
        cmocka_unit_test(matrix_token_from_query),
        cmocka_unit_test(scope_other_host),
        cmocka_unit_test(scope_other_entity),
        cmocka_unit_test(scope_parent_path),
        cmocka_unit_test(scope_db_is_not_dbx),
        cmocka_unit_test(scope_case_insensitive),
        cmocka_unit_test(scope_odd_sr),
        cmocka_unit_test(parse_prefix),
        cmocka_unit_test(parse_fields),
        cmocka_unit_test(parse_skn_length),
        cmocka_unit_test(parse_uses_len_only),
        cmocka_unit_test(verify_needs_exact_se),
        cmocka_unit_test(sign_oom_sweep),
    };

    return cmocka_run_group_tests_name("sas", tests, NULL, NULL);
}
