/*
 * hc_conf.h - INI files through inih, with FILE:LINE errors.
 *
 * Debian's libinih is built with a 200-byte line limit and without line
 * numbers in its handler, while connection strings alone can be longer. So
 * inih reads through our line reader, which counts lines, reports malformed
 * lines itself (every one, not just the first), strips indentation (inih
 * would take an indented line for a continuation) and hands a value that is
 * too long to inih as a short reference that is resolved before the
 * callback sees it. inih still does the sections, keys and comments.
 */
#ifndef HC_CONF_H
#define HC_CONF_H

#include <stddef.h>

struct hc_conf_ctx;

/*
 * Called once with key and value NULL when a "[section]" line is read, then
 * for every key in it. section and key are as written (case kept); value is
 * trimmed, inline " ;" comments removed. Report problems with hc_conf_err.
 */
typedef void (*hc_conf_cb)(struct hc_conf_ctx *ctx, const char *section,
                           const char *key, const char *value);

struct hc_conf_ctx {
    const char *path; /* for messages */
    int lineno;       /* line of the key being handled */
    int nerr;
    char *errors; /* "FILE:LINE: message\n" lines, hc_malloc'd */
    size_t errors_len;
    void *user;
    /* private */
    const char *text, *cur, *end;
    char **long_values;
    size_t nlong;
    hc_conf_cb cb;
    char section[256]; /* the current section's name as written */
    char seen[32][48]; /* keys of the current section, for duplicates */
    int nseen;
};

/*
 * Parse the file at path (text NULL) or the NUL-terminated text (path is
 * then only used in messages). Returns 0 when clean, HC_ECONFIG when any
 * error was reported (*errors gets them, one per line, hc_malloc'd; the
 * caller frees), or a negative libuv code when the file cannot be read
 * (*errors gets one line).
 */
int hc_conf_parse(const char *path, const char *text, hc_conf_cb cb, void *user,
                  char **errors);

/* Report an error at the current line. */
void hc_conf_err(struct hc_conf_ctx *ctx, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Report an error at another line. */
void hc_conf_err_at(struct hc_conf_ctx *ctx, int lineno, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/*
 * A key name fit for a message: "'name'" when it looks like one (letters,
 * '_' and '-', at most 32), else "(not shown)": a connection string
 * wrapped after "SharedAccessKey=" puts the key where a key name goes, and
 * it must not be echoed. Returns a static buffer.
 */
const char *hc_conf_keyname(const char *key);

/*
 * A file that holds keys should be readable by its owner only: when group
 * or others can read path, log a loud warning, or with strict an error.
 * Returns 0, or -1 when strict refuses.
 */
int hc_conf_check_secrecy(const char *path, int strict);

/* Value helpers: 0 on success, UV_EINVAL otherwise. */
int hc_conf_bool(const char *s, int *out);
int hc_conf_long(const char *s, long min, long max, long *out);
/* "host:port", "[v6]:port"; host up to hostcap-1 bytes; port 0..65535. */
int hc_conf_hostport(const char *s, char *host, size_t hostcap, int *port);

#endif
