/*
 * fuzz_common.h - helpers shared by the fuzz targets in test/fuzz/.
 *
 * Every target defines LLVMFuzzerTestOneInput. It is built two ways: with
 * clang and libFuzzer (make fuzz, test/fuzz/run.sh), and with gcc + ASan +
 * UBSan against build/asan/libhc.a together with replay.c, which feeds it
 * the committed corpus (test/fuzz/replay.sh, part of the test suite).
 *
 * A broken promise of a header is reported with FUZZ_CHECK, which prints
 * the condition and calls abort(): libFuzzer saves the input as a crash and
 * the replay driver exits non-zero.
 */
#ifndef FUZZ_COMMON_H
#define FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* From the sanitizer runtime when there is one (clang or gcc). */
void __sanitizer_print_stack_trace(void) __attribute__((weak));

static inline void fuzz_fail(const char *file, int line, const char *what)
    __attribute__((noreturn));
static inline void fuzz_fail(const char *file, int line, const char *what)
{
    fprintf(stderr, "%s:%d: fuzz check failed: %s\n", file, line, what);
    if (__sanitizer_print_stack_trace != NULL)
        __sanitizer_print_stack_trace();
    fflush(stderr);
    abort();
}

#define FUZZ_CHECK(cond)                                                       \
    do {                                                                       \
        if (!(cond))                                                           \
            fuzz_fail(__FILE__, __LINE__, #cond);                              \
    } while (0)

/*
 * A copy of the size input bytes in a heap block of exactly that size (not
 * NUL-terminated), so ASan reports any read past the end. Free with free().
 */
static inline char *fuzz_dup(const void *data, size_t size)
{
    char *p = malloc(size > 0 ? size : 1);
    if (p == NULL)
        abort();
    if (size > 0)
        memcpy(p, data, size);
    return p;
}

/* The input up to its first NUL, as a NUL-terminated heap string. */
static inline char *fuzz_cstr(const void *data, size_t size)
{
    const char *s = data;
    size_t n = 0;
    char *p;

    while (n < size && s[n] != '\0')
        n++;
    p = malloc(n + 1);
    if (p == NULL)
        abort();
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

/* Whether [p, p+n) lies within [base, base+len). */
static inline int fuzz_within(const void *p, size_t n, const void *base,
                              size_t len)
{
    const char *a = p, *b = base;
    if (n == 0)
        return a >= b && a <= b + len;
    return a >= b && a <= b + len && n <= (size_t)(b + len - a);
}

/* Whether a NUL-terminated string occurs in buf (len bytes). */
static inline int fuzz_contains(const char *buf, size_t len, const char *s)
{
    return memmem(buf, len, s, strlen(s)) != NULL;
}

/*
 * Split the input into pieces at each occurrence of sep (a byte); returns
 * the number of pieces filled (at most max). Pieces point into data.
 */
struct fuzz_piece {
    const uint8_t *p;
    size_t len;
};

static inline size_t fuzz_split(const uint8_t *data, size_t size, uint8_t sep,
                                struct fuzz_piece *out, size_t max)
{
    size_t n = 0, start = 0;

    if (max == 0)
        return 0;
    for (size_t i = 0; i < size && n + 1 < max; i++) {
        if (data[i] == sep) {
            out[n].p = data + start;
            out[n].len = i - start;
            n++;
            start = i + 1;
        }
    }
    out[n].p = data + start;
    out[n].len = size - start;
    return n + 1;
}

#endif
