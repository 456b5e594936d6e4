/*
 * fuzz_sas.c - hc_sas_parse on any bytes (a token from a header or a
 * form-decoded query parameter), then what the relay does with a token:
 * hc_sas_verify with a fixed key, hc_sas_in_scope with a fixed host and
 * entity, hc_sas_check_expiry.
 *
 * Checks:
 *  - parse returns 0 or HC_ESYNTAX; on success sr points into the input,
 *    sig is 32 bytes, skn is 1..256 bytes and NUL-terminated;
 *  - verify returns 0 or HC_EAUTH, in_scope 0 or 1;
 *  - check_expiry is exactly "now <= se + skew" (computed without overflow);
 *  - hc_sas_sign over the decoded sr, skn and se gives a token that parses
 *    back to the same se and skn, verifies with the key, and has the same
 *    scope as the original.
 */
#include "fuzz_common.h"
#include "hc_err.h"
#include "hc_mem.h"
#include "hc_sas.h"
#include "hc_url.h"

#define KEY "fuzz-key-c2VjcmV0LWtleS1iYXNlNjQ9PQ=="
#define HOST "ns.example.net"

static void check_expiry(const struct hc_sas_token *t, uint64_t now,
                         uint64_t skew)
{
    unsigned __int128 limit = (unsigned __int128)t->se + skew;
    int want = (unsigned __int128)now <= limit ? 0 : HC_EEXPIRED;
    FUZZ_CHECK(hc_sas_check_expiry(t, now, skew) == want);
}

static int scope(const struct hc_sas_token *t, const char *host,
                 const char *entity)
{
    int r = hc_sas_in_scope(t, host, entity);
    FUZZ_CHECK(r == 0 || r == 1);
    return r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const entities[] = {NULL,     "",   "hc",
                                           "hc/sub", "HC", "other"};
    char *tok = fuzz_dup(data, size);
    struct hc_sas_token t;
    int rc, r;

    rc = hc_sas_parse(tok, size, &t);
    FUZZ_CHECK(rc == 0 || rc == HC_ESYNTAX);
    if (rc != 0)
        goto out;

    FUZZ_CHECK(t.sr_len > 0 && fuzz_within(t.sr, t.sr_len, tok, size));
    FUZZ_CHECK(t.sig_len == 32);
    FUZZ_CHECK(memchr(t.skn, '\0', sizeof(t.skn)) != NULL);
    FUZZ_CHECK(strlen(t.skn) >= 1 && strlen(t.skn) <= 256);

    r = hc_sas_verify(&t, KEY);
    FUZZ_CHECK(r == 0 || r == HC_EAUTH);
    r = hc_sas_verify(&t, "");
    FUZZ_CHECK(r == 0 || r == HC_EAUTH);

    int in[6];
    for (size_t i = 0; i < 6; i++) {
        in[i] = scope(&t, HOST, entities[i]);
        scope(&t, "[::1]", entities[i]);
    }
    /* NULL is "", names compare ignoring case, a parent covers its child,
     * and a namespace-wide token covers every entity. */
    FUZZ_CHECK(in[0] == in[1]);
    FUZZ_CHECK(in[2] == in[4]);
    FUZZ_CHECK(!in[2] || in[3]);
    FUZZ_CHECK(!in[1] || (in[2] && in[3] && in[5]));

    check_expiry(&t, 0, 0);
    check_expiry(&t, t.se, 0);
    check_expiry(&t, t.se + 1, 0);
    check_expiry(&t, UINT64_MAX, 0);
    check_expiry(&t, UINT64_MAX, UINT64_MAX);
    check_expiry(&t, UINT64_MAX, 60);
    check_expiry(&t, 1700000000, 300);

    /* Sign the same resource, rule and expiry: it must read back. */
    {
        char *uri = malloc(t.sr_len + 1);
        ssize_t n;
        if (uri == NULL)
            abort();
        n = hc_url_decode(uri, t.sr, t.sr_len, 0);
        if (n > 0) {
            struct hc_sas_token t2;
            char *signed_tok = hc_sas_sign(uri, t.skn, KEY, t.se);
            FUZZ_CHECK(signed_tok != NULL);
            FUZZ_CHECK(hc_sas_parse(signed_tok, strlen(signed_tok), &t2) == 0);
            FUZZ_CHECK(t2.se == t.se);
            FUZZ_CHECK(strcmp(t2.skn, t.skn) == 0);
            FUZZ_CHECK(hc_sas_verify(&t2, KEY) == 0);
            for (size_t i = 0; i < 6; i++)
                FUZZ_CHECK(scope(&t2, HOST, entities[i]) == in[i]);
            hc_free(signed_tok);
        }
        free(uri);
    }
out:
    free(tok);
    return 0;
}
