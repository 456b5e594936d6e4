/*
 * fuzz_hosts.c - hc_hosts_rewrite on any hosts file text, with 0, 1 and 2
 * entries.
 *
 * Checks (what hc_hosts.h promises):
 *  - with n > 0 the text ends with hcmd's block holding exactly the n
 *    entries, and that is the only line starting "# BEGIN hcmd";
 *  - with n == 0 no line starts "# BEGIN hcmd";
 *  - rewriting the output with the same entries gives the same output.
 * With HC_FUZZ_STRICT=1 in the environment also: a rewrite depends only on
 * the text outside hcmd's block, so rewriting the output for 1 entry with
 * 0 or 2 entries gives what rewriting the original with them gives.
 */
#include "fuzz_common.h"
#include "hc_hosts.h"
#include "hc_mem.h"

#define BEGIN_MARK "# BEGIN hcmd"

static const struct hc_hosts_entry entries[2] = {
    {"127.77.12.34", "sql.corp.local", "db"},
    {"127.77.0.2", "web-1.corp.local", "web_1.x"},
};

static size_t count_begin_lines(const char *s, size_t len)
{
    size_t n = 0;
    const char *p = s, *end = s + len;

    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl + 1 : end;
        if ((size_t)(le - p) >= strlen(BEGIN_MARK) &&
            memcmp(p, BEGIN_MARK, strlen(BEGIN_MARK)) == 0)
            n++;
        p = le;
    }
    return n;
}

static char *rewrite(const char *old, size_t len, size_t n, size_t *out_len)
{
    char *out = hc_hosts_rewrite(old, len, entries, n, out_len);
    FUZZ_CHECK(out != NULL);
    FUZZ_CHECK(strlen(out) <= *out_len);
    FUZZ_CHECK(out[*out_len] == '\0');
    return out;
}

static void check_block(const char *out, size_t len, size_t n)
{
    char tail[512];
    size_t tl = 0;

    if (n == 0) {
        FUZZ_CHECK(count_begin_lines(out, len) == 0);
        return;
    }
    FUZZ_CHECK(count_begin_lines(out, len) == 1);
    for (size_t i = 0; i < n; i++)
        tl += (size_t)snprintf(tail + tl, sizeof(tail) - tl,
                               "%s\t%s\t# hcmd forward %s\n", entries[i].addr,
                               entries[i].hostname, entries[i].forward);
    tl += (size_t)snprintf(tail + tl, sizeof(tail) - tl, "# END hcmd\n");
    FUZZ_CHECK(len >= tl && memcmp(out + len - tl, tail, tl) == 0);
    /* Right before the entries: the BEGIN line, at the start of a line. */
    {
        const char *b = out + len - tl;
        const char *line = b - 1;
        FUZZ_CHECK(b > out && b[-1] == '\n');
        while (line > out && line[-1] != '\n')
            line--;
        FUZZ_CHECK((size_t)(b - line) > strlen(BEGIN_MARK));
        FUZZ_CHECK(memcmp(line, BEGIN_MARK, strlen(BEGIN_MARK)) == 0);
    }
}

static int same(const char *a, size_t alen, const char *b, size_t blen)
{
    return alen == blen && memcmp(a, b, alen) == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int strict = -1;
    char *old = fuzz_dup(data, size);
    char *out[3];
    size_t len[3];

    if (strict < 0) {
        const char *e = getenv("HC_FUZZ_STRICT");
        strict = e != NULL && strcmp(e, "1") == 0;
    }
    for (size_t n = 0; n < 3; n++) {
        char *again;
        size_t alen;
        out[n] = rewrite(old, size, n, &len[n]);
        check_block(out[n], len[n], n);
        again = rewrite(out[n], len[n], n, &alen);
        if (!same(again, alen, out[n], len[n]))
            fprintf(stderr, "rewrite is not idempotent for %zu entries\n", n);
        FUZZ_CHECK(same(again, alen, out[n], len[n]));
        hc_free(again);
    }
    if (strict) {
        for (size_t n = 0; n < 3; n += 2) {
            size_t alen;
            char *again = rewrite(out[1], len[1], n, &alen);
            if (!same(again, alen, out[n], len[n]))
                fprintf(stderr, "1 -> %zu entries differs from 0 -> %zu\n", n,
                        n);
            FUZZ_CHECK(same(again, alen, out[n], len[n]));
            hc_free(again);
        }
    }
    for (size_t n = 0; n < 3; n++)
        hc_free(out[n]);
    free(old);
    return 0;
}
