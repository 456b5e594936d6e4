/*
 * fuzz_connstr.c - hc_connstr_parse on any text (the input up to its first
 * NUL).
 *
 * Checks:
 *  - the error message never depends on the SharedAccessKey value: the same
 *    text with every SharedAccessKey value replaced by a marker of the same
 *    length must give the same message, and the message must not hold the
 *    marker (so a key is never quoted back, while a fixed text that happens
 *    to equal the key is no false alarm);
 *  - a SharedAccessSignature value too long to come from a fixed message
 *    never shows up in the message either;
 *  - on success, hc_connstr_format of the parts parses back to the same parts
 *    (keys and entity); hc_connstr_free zeroes and is idempotent;
 *  - on error, cs is zeroed and the message is one NUL-terminated line.
 */
#include <ctype.h>

#include "fuzz_common.h"
#include "hc_connstr.h"
#include "hc_err.h"
#include "hc_mem.h"

#define MARK 0x7f /* DEL: no message can quote it (see connstr.c) */

static int key_is(const char *k, size_t klen, const char *want)
{
    if (klen != strlen(want))
        return 0;
    for (size_t i = 0; i < klen; i++)
        if (tolower((unsigned char)k[i]) != tolower((unsigned char)want[i]))
            return 0;
    return 1;
}

/*
 * Overwrite (in s) the value of every segment whose key is name, the way
 * hc_connstr_parse splits: ';'-separated segments, key up to the first '='.
 * Returns how many values were replaced; the longest length in *maxlen.
 */
static int mask_values(char *s, const char *name, size_t *maxlen)
{
    int n = 0;
    char *p = s;

    *maxlen = 0;
    while (*p != '\0') {
        char *end = p + strcspn(p, ";");
        char *eq = memchr(p, '=', (size_t)(end - p));
        if (eq != NULL && key_is(p, (size_t)(eq - p), name)) {
            size_t vlen = (size_t)(end - eq - 1);
            memset(eq + 1, MARK, vlen);
            if (vlen > *maxlen)
                *maxlen = vlen;
            n++;
        }
        p = *end == ';' ? end + 1 : end;
    }
    return n;
}

/* Whether the message holds any value of a segment whose key is name. */
static int holds_value(const char *s, const char *name, const char *err,
                       size_t minlen)
{
    const char *p = s;

    while (*p != '\0') {
        const char *end = p + strcspn(p, ";");
        const char *eq = memchr(p, '=', (size_t)(end - p));
        if (eq != NULL && key_is(p, (size_t)(eq - p), name)) {
            size_t vlen = (size_t)(end - eq - 1);
            if (vlen >= minlen && memmem(err, strlen(err), eq + 1, vlen))
                return 1;
        }
        p = *end == ';' ? end + 1 : end;
    }
    return 0;
}

static int str_eq(const char *a, const char *b)
{
    if (a == NULL || b == NULL)
        return a == b;
    return strcmp(a, b) == 0;
}

static void check_zero(const struct hc_connstr *cs)
{
    FUZZ_CHECK(cs->endpoint == NULL && cs->host == NULL &&
               cs->entity_path == NULL && cs->key_name == NULL &&
               cs->key == NULL && cs->sas == NULL && cs->port == 0 &&
               cs->managed_identity == 0);
}

/* format() of a parsed string must parse back to the same parts. */
static void check_format(const struct hc_connstr *cs)
{
    struct hc_connstr back;
    char err[256];
    char *s;
    int rc;

    if (cs->sas != NULL || cs->managed_identity)
        return; /* format() does not carry them */
    s = hc_connstr_format(cs->host, cs->port, cs->key_name, cs->key,
                          cs->entity_path);
    FUZZ_CHECK(s != NULL);
    rc = hc_connstr_parse(s, &back, err, sizeof(err));
    if (rc != 0)
        fprintf(stderr, "format gave \"%s\": %s\n", s, err);
    FUZZ_CHECK(rc == 0);
    FUZZ_CHECK(strcmp(back.host, cs->host) == 0);
    FUZZ_CHECK(back.port == cs->port);
    FUZZ_CHECK(str_eq(back.entity_path, cs->entity_path));
    FUZZ_CHECK(str_eq(back.key_name, cs->key_name));
    FUZZ_CHECK(str_eq(back.key, cs->key));
    hc_connstr_free(&back);
    hc_free_secret_str(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct hc_connstr cs;
    char *s = fuzz_cstr(data, size);
    char *masked;
    char *err = malloc(1024), *err2 = malloc(1024);
    size_t keylen;
    int rc, nkeys;

    if (err == NULL || err2 == NULL)
        abort();
    rc = hc_connstr_parse(s, &cs, err, 1024);
    FUZZ_CHECK(rc == 0 || rc == HC_ESYNTAX);
    FUZZ_CHECK(memchr(err, '\0', 1024) != NULL);
    FUZZ_CHECK(strchr(err, '\n') == NULL);
    if (rc == 0) {
        FUZZ_CHECK(err[0] == '\0');
        FUZZ_CHECK(cs.endpoint != NULL && cs.host != NULL);
        FUZZ_CHECK(cs.port >= 1 && cs.port <= 65535);
        FUZZ_CHECK((cs.key_name == NULL) == (cs.key == NULL));
        FUZZ_CHECK(!(cs.sas != NULL && cs.key != NULL));
        check_format(&cs);
        hc_connstr_free(&cs);
        check_zero(&cs);
        hc_connstr_free(&cs);
    } else {
        FUZZ_CHECK(err[0] != '\0');
        check_zero(&cs);
        hc_connstr_free(&cs);
    }

    /* A SAS token longer than any fixed message cannot be in one. */
    FUZZ_CHECK(!holds_value(s, "SharedAccessSignature", err, 128));

    /* The message must not depend on the key: mask it and compare. */
    masked = strdup(s);
    if (masked == NULL)
        abort();
    nkeys = mask_values(masked, "SharedAccessKey", &keylen);
    if (nkeys > 0) {
        struct hc_connstr cs2;
        char mark[2] = {MARK, '\0'};
        int rc2 = hc_connstr_parse(masked, &cs2, err2, 1024);
        FUZZ_CHECK(rc2 == rc);
        if (strcmp(err, err2) != 0)
            fprintf(stderr, "message depends on the key:\n  %s\n  %s\n", err,
                    err2);
        FUZZ_CHECK(strcmp(err, err2) == 0);
        FUZZ_CHECK(strstr(err2, mark) == NULL);
        hc_connstr_free(&cs2);
    }

    free(masked);
    free(err);
    free(err2);
    free(s);
    return 0;
}
