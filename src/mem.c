#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mbedtls/platform_util.h>

#include "hc_mem.h"

static long fail_countdown = -1;
static long alloc_count;

static int should_fail(void)
{
    alloc_count++;
    if (fail_countdown < 0)
        return 0;
    if (fail_countdown-- == 0)
        return 1;
    return 0;
}

long hc_mem_fail_after(long fail_after)
{
    long n = alloc_count;
    alloc_count = 0;
    fail_countdown = fail_after;
    return n;
}

void *hc_malloc(size_t len)
{
    return should_fail() ? NULL : malloc(len ? len : 1);
}

void *hc_calloc(size_t n, size_t len)
{
    return should_fail() ? NULL : calloc(n ? n : 1, len ? len : 1);
}

void *hc_realloc(void *p, size_t len)
{
    return should_fail() ? NULL : realloc(p, len ? len : 1);
}

void hc_free(void *p)
{
    free(p);
}

char *hc_strndup(const char *s, size_t len)
{
    char *d = hc_malloc(len + 1);
    if (d == NULL)
        return NULL;
    memcpy(d, s, len);
    d[len] = '\0';
    return d;
}

char *hc_strdup(const char *s)
{
    return hc_strndup(s, strlen(s));
}

static void oom(size_t len)
{
    fprintf(stderr, "hcmd: out of memory allocating %zu bytes\n", len);
    abort();
}

void *hc_xmalloc(size_t len)
{
    void *p = malloc(len ? len : 1);
    if (p == NULL)
        oom(len);
    return p;
}

void *hc_xcalloc(size_t n, size_t len)
{
    void *p = calloc(n ? n : 1, len ? len : 1);
    if (p == NULL)
        oom(n * len);
    return p;
}

char *hc_xstrdup(const char *s)
{
    size_t len = strlen(s);
    char *d = hc_xmalloc(len + 1);
    memcpy(d, s, len + 1);
    return d;
}

void hc_free_secret(void *p, size_t len)
{
    if (p == NULL)
        return;
    mbedtls_platform_zeroize(p, len);
    free(p);
}

void hc_free_secret_str(char *s)
{
    if (s != NULL)
        hc_free_secret(s, strlen(s));
}
