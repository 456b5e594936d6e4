/*
 * test_connstr.c - Azure Relay connection strings (protocol.md §1).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include <uv.h>

#include "hc_connstr.h"
#include "hc_err.h"
#include "hc_mem.h"

#define KEY "c2VjcmV0LWtleS1iYXNlNjQ9PQ=="
#define EP "Endpoint=sb://contoso.servicebus.windows.net/"
#define TOKEN                                                                  \
    "SharedAccessSignature "                                                   \
    "sr=http%3A%2F%2Fcontoso.servicebus.windows.net%2Fhyco%2F"                 \
    "&sig=oURi16eJg64ZaCIqbtWUWzQWtoODluxgsAmqEab4Qho%3D"                      \
    "&se=1700000000&skn=RootManageSharedAccessKey"

static void assert_zeroed(const struct hc_connstr *cs)
{
    assert_null(cs->endpoint);
    assert_null(cs->host);
    assert_null(cs->entity_path);
    assert_null(cs->key_name);
    assert_null(cs->key);
    assert_null(cs->sas);
    assert_int_equal(cs->port, 0);
    assert_int_equal(cs->managed_identity, 0);
}

/*
 * Parse s expecting HC_ESYNTAX; the message must be non-empty, mention want
 * (if not NULL) and never contain the key or the token's signature.
 */
static void expect_error(const char *s, const char *want)
{
    struct hc_connstr cs;
    char err[256];

    memset(err, 'x', sizeof(err));
    assert_int_equal(hc_connstr_parse(s, &cs, err, sizeof(err)), HC_ESYNTAX);
    assert_zeroed(&cs);
    assert_non_null(memchr(err, '\0', sizeof(err)));
    assert_true(strlen(err) > 0);
    assert_null(strchr(err, '\n'));
    if (want != NULL && strstr(err, want) == NULL)
        fail_msg("error \"%s\" lacks \"%s\" for %s", err, want, s);
    assert_null(strstr(err, "c2VjcmV0"));
    assert_null(strstr(err, "oURi16"));
    assert_null(strstr(err, "sr=http"));
    assert_null(strstr(err, "TOPSECRET"));
    /* A NULL err buffer is fine too. */
    assert_int_equal(hc_connstr_parse(s, &cs, NULL, 0), HC_ESYNTAX);
    assert_zeroed(&cs);
}

static void portal_string(void **state)
{
    struct hc_connstr cs;
    char err[128] = "junk";

    assert_int_equal(hc_connstr_parse(EP ";SharedAccessKeyName=defaultListener;"
                                         "SharedAccessKey=" KEY
                                         ";EntityPath=hyco",
                                      &cs, err, sizeof(err)),
                     0);
    assert_string_equal(err, "");
    assert_string_equal(cs.endpoint, "sb://contoso.servicebus.windows.net/");
    assert_string_equal(cs.host, "contoso.servicebus.windows.net");
    assert_int_equal(cs.port, 443);
    assert_string_equal(cs.entity_path, "hyco");
    assert_string_equal(cs.key_name, "defaultListener");
    assert_string_equal(cs.key, KEY);
    assert_null(cs.sas);
    assert_int_equal(cs.managed_identity, 0);
    hc_connstr_free(&cs);
    assert_zeroed(&cs);
    hc_connstr_free(&cs);
    hc_connstr_free(NULL);
}

static void every_key(void **state)
{
    struct hc_connstr cs;

    assert_int_equal(
        hc_connstr_parse(EP ";EntityPath=a/b;SharedAccessKeyName=r;"
                            "SharedAccessKey=k;OperationTimeout=00:01:00",
                         &cs, NULL, 0),
        0);
    assert_string_equal(cs.entity_path, "a/b");
    assert_string_equal(cs.key_name, "r");
    assert_string_equal(cs.key, "k");
    hc_connstr_free(&cs);

    /* Namespace-level: no EntityPath, and no credentials at all. */
    assert_int_equal(hc_connstr_parse(EP, &cs, NULL, 0), 0);
    assert_null(cs.entity_path);
    assert_null(cs.key_name);
    assert_null(cs.key);
    hc_connstr_free(&cs);
}

static void names_case_insensitive(void **state)
{
    struct hc_connstr cs;

    assert_int_equal(
        hc_connstr_parse("endpoint=sb://NS.Example.COM/;ENTITYPATH=HyCo;"
                         "sharedaccesskeyname=Rule;SHAREDACCESSKEY=AbC;"
                         "operationTIMEOUT=1",
                         &cs, NULL, 0),
        0);
    /* Values stay as written; only the host is lower-cased. */
    assert_string_equal(cs.endpoint, "sb://NS.Example.COM/");
    assert_string_equal(cs.host, "ns.example.com");
    assert_string_equal(cs.entity_path, "HyCo");
    assert_string_equal(cs.key_name, "Rule");
    assert_string_equal(cs.key, "AbC");
    hc_connstr_free(&cs);
}

static void split_at_first_equals(void **state)
{
    struct hc_connstr cs;

    assert_int_equal(hc_connstr_parse(EP ";SharedAccessKeyName=r;"
                                         "SharedAccessKey=abc=",
                                      &cs, NULL, 0),
                     0);
    assert_string_equal(cs.key, "abc=");
    hc_connstr_free(&cs);

    assert_int_equal(hc_connstr_parse("SharedAccessKey=a=b==;" EP
                                      ";SharedAccessKeyName=r=x",
                                      &cs, NULL, 0),
                     0);
    assert_string_equal(cs.key, "a=b==");
    assert_string_equal(cs.key_name, "r=x");
    hc_connstr_free(&cs);
}

static void trailing_and_empty_segments(void **state)
{
    struct hc_connstr cs;

    assert_int_equal(
        hc_connstr_parse(";;" EP ";;EntityPath=h;;;", &cs, NULL, 0), 0);
    assert_string_equal(cs.entity_path, "h");
    assert_string_equal(cs.host, "contoso.servicebus.windows.net");
    hc_connstr_free(&cs);

    /* .NET writes every pair with a trailing ';'. */
    assert_int_equal(hc_connstr_parse(EP ";EntityPath=h;SharedAccessKeyName=r;"
                                         "SharedAccessKey=" KEY ";",
                                      &cs, NULL, 0),
                     0);
    assert_string_equal(cs.key, KEY);
    hc_connstr_free(&cs);
}

static void endpoint_ports(void **state)
{
    struct hc_connstr cs;

    assert_int_equal(
        hc_connstr_parse("Endpoint=sb://localhost:9443/", &cs, NULL, 0), 0);
    assert_string_equal(cs.host, "localhost");
    assert_int_equal(cs.port, 9443);
    hc_connstr_free(&cs);

    assert_int_equal(
        hc_connstr_parse("Endpoint=sb://127.0.0.1:443", &cs, NULL, 0), 0);
    assert_string_equal(cs.host, "127.0.0.1");
    assert_int_equal(cs.port, 443);
    hc_connstr_free(&cs);

    assert_int_equal(
        hc_connstr_parse("Endpoint=SB://[::1]:8443/", &cs, NULL, 0), 0);
    assert_string_equal(cs.host, "::1");
    assert_int_equal(cs.port, 8443);
    hc_connstr_free(&cs);

    assert_int_equal(
        hc_connstr_parse("Endpoint=sb://user@host/ns?x#y", &cs, NULL, 0), 0);
    assert_string_equal(cs.host, "host");
    assert_int_equal(cs.port, 443);
    hc_connstr_free(&cs);

    expect_error("Endpoint=sb://localhost:0/", "Endpoint");
    expect_error("Endpoint=sb://localhost:65536/", "Endpoint");
    expect_error("Endpoint=sb://localhost:x/", "Endpoint");
}

static void sas_variant(void **state)
{
    struct hc_connstr cs;

    assert_int_equal(hc_connstr_parse(EP ";EntityPath=hyco;"
                                         "SharedAccessSignature=" TOKEN,
                                      &cs, NULL, 0),
                     0);
    assert_string_equal(cs.sas, TOKEN);
    assert_null(cs.key);
    assert_null(cs.key_name);
    assert_string_equal(cs.entity_path, "hyco");
    hc_connstr_free(&cs);
}

static void managed_identity(void **state)
{
    static const char *const ok[] = {
        EP ";Authentication=Managed Identity",
        EP ";Authentication=managedidentity;EntityPath=h",
        EP ";authentication= Managed  IDENTITY ",
    };
    struct hc_connstr cs;
    size_t i;

    for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        assert_int_equal(hc_connstr_parse(ok[i], &cs, NULL, 0), 0);
        assert_int_equal(cs.managed_identity, 1);
        hc_connstr_free(&cs);
    }
    expect_error(EP ";Authentication=Managed Identity;"
                    "SharedAccessKeyName=r;SharedAccessKey=TOPSECRET",
                 "Managed Identity");
    expect_error(EP ";Authentication=Managed Identity;"
                    "SharedAccessSignature=" TOKEN,
                 "Managed Identity");
    expect_error(EP ";Authentication=Password", "Authentication");
    expect_error(EP ";Authentication=Managed Identityx", "Authentication");
}

static void error_unknown_key(void **state)
{
    expect_error(EP ";Foo=bar", "\"Foo\"");
    expect_error(EP ";SharedAccesKey=TOPSECRET", "SharedAccesKey");
    /* A key with a space is not a known key (no trimming, as in .NET). */
    expect_error(EP "; EntityPath=x", "unknown key");
    /* A key name that looks like a secret is not repeated. */
    expect_error(EP ";TOPSECRET/abc123=", "segment 2");
    expect_error(EP ";" KEY, "segment 2");
    expect_error(EP ";TOPSECRET", "no '='");
}

static void error_missing_endpoint(void **state)
{
    expect_error("EntityPath=h;SharedAccessKeyName=r;SharedAccessKey=" KEY,
                 "Endpoint");
    expect_error("", "Endpoint");
    expect_error(";;;", "Endpoint");
}

static void error_bad_endpoint(void **state)
{
    expect_error("Endpoint=https://contoso.servicebus.windows.net/;"
                 "SharedAccessKeyName=r;SharedAccessKey=" KEY,
                 "sb://");
    expect_error("Endpoint=wss://h/", "not wss://");
    expect_error("Endpoint=contoso.servicebus.windows.net", "sb://");
    expect_error("Endpoint=sb:///", "Endpoint");
    expect_error("Endpoint=sb://a b/", "Endpoint");
    expect_error("Endpoint=", "Endpoint");
}

static void error_key_pairing(void **state)
{
    expect_error(EP ";SharedAccessKeyName=r", "together");
    expect_error(EP ";SharedAccessKey=" KEY, "together");
    expect_error(EP ";SharedAccessKeyName=;SharedAccessKey=" KEY, "empty");
}

static void error_sas_combined(void **state)
{
    expect_error(EP ";SharedAccessKeyName=r;SharedAccessKey=" KEY
                    ";SharedAccessSignature=" TOKEN,
                 "SharedAccessSignature");
    expect_error(EP ";SharedAccessSignature=" TOKEN ";SharedAccessKey=" KEY,
                 "cannot be combined");
    expect_error(EP ";SharedAccessSignature=" TOKEN ";SharedAccessKeyName=r",
                 "cannot be combined");
}

static void error_bad_token(void **state)
{
    /* No prefix. */
    expect_error(EP
                 ";SharedAccessSignature="
                 "sr=http%3A%2F%2Fh%2F&sig=oURi16eJg64ZaCIqbtWUWzQWtoODluxgsA"
                 "mqEab4Qho%3D&se=1&skn=r",
                 "not a valid token");
    /* No sig. */
    expect_error(EP ";SharedAccessSignature=SharedAccessSignature "
                    "sr=http%3A%2F%2Fh%2F&se=1&skn=TOPSECRET",
                 "not a valid token");
    /* No skn. */
    expect_error(EP
                 ";SharedAccessSignature=SharedAccessSignature "
                 "sr=http%3A%2F%2Fh%2F&sig=oURi16eJg64ZaCIqbtWUWzQWtoODluxgsA"
                 "mqEab4Qho%3D&se=1",
                 "not a valid token");
    expect_error(EP ";SharedAccessSignature=TOPSECRET", "not a valid token");
}

static void error_duplicate_key(void **state)
{
    expect_error(EP ";" EP, "more than once");
    expect_error(EP ";ENDPOINT=sb://other/", "Endpoint");
    expect_error(EP ";EntityPath=a;entitypath=b", "EntityPath");
    expect_error(EP ";SharedAccessKeyName=r;SharedAccessKey=TOPSECRET;"
                    "SharedAccessKey=TOPSECRET2",
                 "SharedAccessKey is given more than once");
    expect_error(EP ";OperationTimeout=1;OperationTimeout=2",
                 "OperationTimeout");
}

static void error_empty_value(void **state)
{
    expect_error(EP ";EntityPath=", "EntityPath has an empty value");
    expect_error(EP ";SharedAccessKeyName=r;SharedAccessKey=",
                 "SharedAccessKey has an empty value");
}

static void error_text_truncated(void **state)
{
    struct hc_connstr cs;
    char err[8];

    assert_int_equal(hc_connstr_parse(EP ";Foo=1", &cs, err, sizeof(err)),
                     HC_ESYNTAX);
    assert_int_equal(strlen(err), sizeof(err) - 1);
    assert_int_equal(hc_connstr_parse(EP ";Foo=1", &cs, err, 0), HC_ESYNTAX);
}

static void format_round_trip(void **state)
{
    static const struct {
        const char *host;
        int port;
        const char *rule, *key, *entity, *want;
    } cases[] = {
        {"ns.servicebus.windows.net", 443, "RootManageSharedAccessKey", KEY,
         "hyco",
         "Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName="
         "RootManageSharedAccessKey;SharedAccessKey=" KEY ";EntityPath=hyco"},
        {"localhost", 9443, "r", "k==", NULL,
         "Endpoint=sb://localhost:9443/;SharedAccessKeyName=r;"
         "SharedAccessKey=k=="},
        {"::1", 8443, "r", "k", "a/b",
         "Endpoint=sb://[::1]:8443/;SharedAccessKeyName=r;SharedAccessKey=k;"
         "EntityPath=a/b"},
        {"h", 0, NULL, NULL, "e", "Endpoint=sb://h/;EntityPath=e"},
    };
    size_t i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct hc_connstr cs;
        char *s = hc_connstr_format(cases[i].host, cases[i].port, cases[i].rule,
                                    cases[i].key, cases[i].entity);
        assert_non_null(s);
        assert_string_equal(s, cases[i].want);
        assert_int_equal(hc_connstr_parse(s, &cs, NULL, 0), 0);
        assert_string_equal(cs.host, cases[i].host);
        assert_int_equal(cs.port, cases[i].port > 0 ? cases[i].port : 443);
        if (cases[i].rule != NULL) {
            assert_string_equal(cs.key_name, cases[i].rule);
            assert_string_equal(cs.key, cases[i].key);
        } else {
            assert_null(cs.key_name);
            assert_null(cs.key);
        }
        if (cases[i].entity != NULL)
            assert_string_equal(cs.entity_path, cases[i].entity);
        else
            assert_null(cs.entity_path);
        hc_connstr_free(&cs);
        hc_free_secret_str(s);
    }

    assert_null(hc_connstr_format(NULL, 443, "r", "k", NULL));
    assert_null(hc_connstr_format("h", 443, "r", NULL, NULL));
    assert_null(hc_connstr_format("h", 443, NULL, "k", NULL));
    hc_mem_fail_after(0);
    assert_null(hc_connstr_format("h", 443, "r", "k", NULL));
    hc_mem_fail_after(-1);
}

static void oom_sweep(const char *s, long min_allocs)
{
    struct hc_connstr cs;
    char err[128];
    long i;
    int rc;

    for (i = 0;; i++) {
        hc_mem_fail_after(i);
        rc = hc_connstr_parse(s, &cs, err, sizeof(err));
        if (rc == 0)
            break;
        assert_int_equal(rc, UV_ENOMEM);
        assert_string_equal(err, "out of memory");
        assert_zeroed(&cs);
        assert_true(i < 100);
    }
    hc_mem_fail_after(-1);
    assert_true(i >= min_allocs);
    hc_connstr_free(&cs);
}

static void parse_oom_sweep(void **state)
{
    /* endpoint, URL path and query, host, entity, key name, key. */
    oom_sweep(
        EP ";SharedAccessKeyName=r;SharedAccessKey=" KEY ";EntityPath=hyco", 7);
    oom_sweep(EP ";EntityPath=hyco;SharedAccessSignature=" TOKEN, 6);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(portal_string),
        cmocka_unit_test(every_key),
        cmocka_unit_test(names_case_insensitive),
        cmocka_unit_test(split_at_first_equals),
        cmocka_unit_test(trailing_and_empty_segments),
        cmocka_unit_test(endpoint_ports),
        cmocka_unit_test(sas_variant),
        cmocka_unit_test(managed_identity),
        cmocka_unit_test(error_unknown_key),
        cmocka_unit_test(error_missing_endpoint),
        cmocka_unit_test(error_bad_endpoint),
        cmocka_unit_test(error_key_pairing),
        cmocka_unit_test(error_sas_combined),
        cmocka_unit_test(error_bad_token),
        cmocka_unit_test(error_duplicate_key),
        cmocka_unit_test(error_empty_value),
        cmocka_unit_test(error_text_truncated),
        cmocka_unit_test(format_round_trip),
        cmocka_unit_test(parse_oom_sweep),
    };

    return cmocka_run_group_tests_name("connstr", tests, NULL, NULL);
}
