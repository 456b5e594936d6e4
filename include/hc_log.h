/*
 * hc_log.h - one-line log records to stderr.
 *
 * Under journald (JOURNAL_STREAM set) every line starts with a <N> priority
 * prefix so the journal keeps the level. Bytes that came from the network go
 * through hc_log_escape first. Keys and tokens are never passed here.
 */
#ifndef HC_LOG_H
#define HC_LOG_H

#include <stddef.h>

enum hc_log_level {
    HC_LOG_ERR = 3,
    HC_LOG_WARN = 4,
    HC_LOG_INFO = 6,
    HC_LOG_DEBUG = 7,
};

/* The program name printed before each line, e.g. "hcrelay". Borrowed. */
void hc_log_init(const char *progname);
void hc_log_set_level(enum hc_log_level level);
enum hc_log_level hc_log_get_level(void);
/* Parse "error", "warn", "info" or "debug"; 0 or UV_EINVAL. */
int hc_log_parse_level(const char *s, enum hc_log_level *out);

void hc_log(enum hc_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define hc_log_err(...) hc_log(HC_LOG_ERR, __VA_ARGS__)
#define hc_log_warn(...) hc_log(HC_LOG_WARN, __VA_ARGS__)
#define hc_log_info(...) hc_log(HC_LOG_INFO, __VA_ARGS__)
#define hc_log_debug(...)                                                      \
    do {                                                                       \
        if (hc_log_get_level() >= HC_LOG_DEBUG)                                \
            hc_log(HC_LOG_DEBUG, __VA_ARGS__);                                 \
    } while (0)

/* Log each line of text (e.g. a list of FILE:LINE errors) at level. */
void hc_log_lines(enum hc_log_level level, const char *text);

/*
 * Write a printable copy of len bytes of data into out (cap bytes, always
 * NUL-terminated): control and non-ASCII bytes become \xNN, and the copy is
 * cut with "..." when it does not fit. Returns out.
 */
char *hc_log_escape(char *out, size_t cap, const void *data, size_t len);

#endif
