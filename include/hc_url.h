/*
 * hc_url.h - percent-encoding, query strings and absolute URLs.
 *
 * Pure helpers: no I/O, no global state. Every allocation goes through
 * hc_malloc so tests can make it fail.
 */
#ifndef HC_URL_H
#define HC_URL_H

#include <stddef.h>
#include <sys/types.h>

/*
 * Percent-encode len bytes of s the way JavaScript's encodeURIComponent does:
 * A-Z a-z 0-9 and - _ . ! ~ * ' ( ) stay as they are, every other byte
 * becomes %XX with upper-case hex. s is borrowed and need not be
 * NUL-terminated.
 *
 * Returns a NUL-terminated string the caller frees with hc_free, or NULL when
 * memory is out.
 */
char *hc_url_encode(const char *s, size_t len);

/*
 * Percent-decode len bytes of s into out, which must have room for len + 1
 * bytes; out may equal s (decoding never grows the text). When plus_is_space
 * is non-zero a '+' becomes ' ' (HTML form rules), otherwise it stays '+'.
 * Escapes may use upper- or lower-case hex. Both are borrowed.
 *
 * Returns the decoded length (out is NUL-terminated), or HC_ESYNTAX for a
 * bad or truncated escape or a NUL byte (escaped or literal). On HC_ESYNTAX
 * the content of out is unspecified.
 */
ssize_t hc_url_decode(char *out, const char *s, size_t len, int plus_is_space);

/* One query parameter, raw (not decoded), pointing into the query text. */
struct hc_query_param {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
};

/*
 * Iterate over the '&'-separated parameters of a raw query (no leading '?')
 * that ends at end. *cursor starts at the query and is advanced past each
 * parameter. Empty segments ("a=1&&b=2") are skipped. A parameter without
 * '=' has value_len 0 and value pointing just past its name. Only the first
 * '=' splits; later ones belong to the value.
 *
 * Returns 1 and fills p, or 0 when no parameter is left.
 */
int hc_query_next(const char **cursor, const char *end,
                  struct hc_query_param *p);

/*
 * Find the first parameter of the raw query (len bytes) whose raw name equals
 * the NUL-terminated name exactly (case-sensitive, no decoding). All borrowed.
 *
 * Returns 1 and sets *val and *vlen to the raw value (pointing into query),
 * or 0 when there is no such parameter.
 */
int hc_query_get(const char *query, size_t len, const char *name,
                 const char **val, size_t *vlen);

struct hc_url {
    char scheme[16];   /* lower-cased: "wss", "ws", "https", "http", "sb" */
    char host[256];    /* without brackets for IPv6; lower-cased */
    int port;          /* explicit, or default: wss/https/sb 443, ws/http 80 */
    int port_explicit; /* 1 if the URL named a port */
    /* hc_malloc'd raw path starting with '/'; "/" if absent. */
    char *path;
    /* hc_malloc'd raw query without '?'; "" if absent. Fragment dropped. */
    char *query;
};

/*
 * Parse the NUL-terminated absolute URL
 * scheme://[userinfo@]host[:port][/path][?query][#fragment] into u.
 *
 * The scheme is letters, digits, '+', '-', '.' starting with a letter, at
 * most 15 bytes; it is stored lower-cased. Any scheme is accepted; one other
 * than wss/https/sb (443) and ws/http (80) gets port 0 unless the URL names
 * one. Userinfo is skipped. The host is either a name of A-Z a-z 0-9 - . _ ~
 * or an IPv6 literal in brackets (hex digits, ':' and '.'); it is stored
 * lower-cased and without brackets, at most 255 bytes. A port is 1 to 5
 * decimal digits with a value in 1..65535. Control bytes, spaces and DEL are
 * refused anywhere in the URL. The path and query are kept raw (not decoded).
 *
 * url is borrowed. On success the caller releases u with hc_url_free.
 *
 * Returns 0, HC_ESYNTAX (missing scheme or host, bad character, bad or empty
 * port, host or scheme too long) or UV_ENOMEM. On error nothing needs freeing
 * (u->path and u->query are NULL).
 */
int hc_url_parse(const char *url, struct hc_url *u);

/* Free what hc_url_parse allocated in u. NULL-safe and idempotent. */
void hc_url_free(struct hc_url *u);

#endif
