/*
 * conf_test_util.h - what the configuration tests share: finding
 * "PATH:LINE: message" lines in an error list, and one temporary file per
 * test (cmocka setup and teardown). Define TMP_PREFIX (a mkstemp template)
 * before including it.
 */
#ifndef CONF_TEST_UTIL_H
#define CONF_TEST_UTIL_H

#include "hc_mem.h"

static int count_lines(const char *s)
{
    int n = 0;

    for (; s != NULL && *s != '\0'; s++)
        n += *s == '\n';
    return n;
}

/*
 * Whether errors has a line that starts with "PATH:LINE: " (or "PATH: " for
 * line 0) and contains what.
 */
static int has_error(const char *errors, const char *path, int line,
                     const char *what)
{
    char prefix[512];
    const char *p = errors;

    if (line > 0)
        snprintf(prefix, sizeof(prefix), "%s:%d: ", path, line);
    else
        snprintf(prefix, sizeof(prefix), "%s: ", path);
    while (p != NULL && *p != '\0') {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        char buf[1024];

        snprintf(buf, sizeof(buf), "%.*s", (int)len, p);
        if (strncmp(buf, prefix, strlen(prefix)) == 0 &&
            strstr(buf + strlen(prefix), what) != NULL)
            return 1;
        p = nl ? nl + 1 : p + len;
    }
    return 0;
}

#define assert_error(errors, path, line, what)                                 \
    do {                                                                       \
        if (!has_error((errors), (path), (line), (what)))                      \
            fail_msg("no \"%s:%d: ...%s...\" in errors:\n%s", (path), (line),  \
                     (what), (errors) ? (errors) : "(none)");                  \
    } while (0)

#define assert_nlines(errors, n)                                               \
    do {                                                                       \
        if (count_lines(errors) != (n))                                        \
            fail_msg("want %d error lines, got %d:\n%s", (n),                  \
                     count_lines(errors), (errors) ? (errors) : "(none)");     \
    } while (0)

struct tmp {
    char path[64];
};

static int tmp_setup(void **state)
{
    struct tmp *t = calloc(1, sizeof(*t));
    int fd;

    if (t == NULL)
        return -1;
    snprintf(t->path, sizeof(t->path), TMP_PREFIX);
    fd = mkstemp(t->path);
    if (fd < 0) {
        free(t);
        return -1;
    }
    close(fd);
    *state = t;
    return 0;
}

static int tmp_teardown(void **state)
{
    struct tmp *t = *state;

    hc_mem_fail_after(-1); /* a failed OOM test must not leak into others */
    unlink(t->path);
    free(t);
    return 0;
}

static void tmp_write(const struct tmp *t, const char *data, size_t len)
{
    FILE *f = fopen(t->path, "wb");

    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

#endif
