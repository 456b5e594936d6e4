/*
 * hc_mem.h - allocation through one hook, so tests can make any allocation
 * fail, and helpers for memory that held secrets.
 */
#ifndef HC_MEM_H
#define HC_MEM_H

#include <stddef.h>

/* malloc/calloc/realloc/free through the hook; may return NULL. */
void *hc_malloc(size_t len);
void *hc_calloc(size_t n, size_t len);
void *hc_realloc(void *p, size_t len);
void hc_free(void *p);
/* Copy of s (len bytes plus NUL); NULL on failure. */
char *hc_strndup(const char *s, size_t len);
char *hc_strdup(const char *s);

/* For small control objects: abort with a message when memory is out. */
void *hc_xmalloc(size_t len);
void *hc_xcalloc(size_t n, size_t len);
char *hc_xstrdup(const char *s);

/* Zero len bytes in a way the compiler cannot drop, then free. */
void hc_free_secret(void *p, size_t len);
/* Zero a NUL-terminated secret string, then free it. NULL is fine. */
void hc_free_secret_str(char *s);

/*
 * Test hook: when fail_after >= 0, the (fail_after+1)-th allocation from now
 * on fails and every later one succeeds again; -1 disables it. Returns how
 * many allocations were made since the last call.
 */
long hc_mem_fail_after(long fail_after);

#endif
