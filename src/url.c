/*
 * url.c - percent-encoding, query strings and absolute URLs.
 */
#include <stdint.h>
#include <string.h>

#include <uv.h>

#include "hc_err.h"
#include "hc_mem.h"
#include "hc_url.h"

static int is_alpha(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

static int is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

static unsigned char to_lower(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + ('a' - 'A')) : c;
}

static int hex_value(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* The set encodeURIComponent leaves alone. */
static int is_uri_component_safe(unsigned char c)
{
    if (is_alpha(c) || is_digit(c))
        return 1;
    return c != '\0' && strchr("-_.!~*'()", c) != NULL;
}

char *hc_url_encode(const char *s, size_t len)
{
    static const char hex[] = "0123456789ABCDEF";
    char *out, *o;
    size_t i;

    if (len > (SIZE_MAX - 1) / 3)
        return NULL;
    out = hc_malloc(len * 3 + 1);
    if (out == NULL)
        return NULL;
    o = out;
    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (is_uri_component_safe(c)) {
            *o++ = (char)c;
        } else {
            *o++ = '%';
            *o++ = hex[c >> 4];
            *o++ = hex[c & 0x0f];
        }
    }
    *o = '\0';
    return out;
}

ssize_t hc_url_decode(char *out, const char *s, size_t len, int plus_is_space)
{
    size_t i, n = 0;

    /*
     * Writing at n never overtakes reading at i (n <= i), so decoding in
     * place is safe.
     */
    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '%') {
            int hi, lo;
            if (len - i < 3)
                return HC_ESYNTAX;
            hi = hex_value((unsigned char)s[i + 1]);
            lo = hex_value((unsigned char)s[i + 2]);
            if (hi < 0 || lo < 0)
                return HC_ESYNTAX;
            c = (unsigned char)(hi << 4 | lo);
            i += 2;
        } else if (c == '+' && plus_is_space) {
            c = ' ';
        }
        /* A NUL would silently cut every C string made from the result. */
        if (c == '\0')
            return HC_ESYNTAX;
        out[n++] = (char)c;
    }
    out[n] = '\0';
    return (ssize_t)n;
}

int hc_query_next(const char **cursor, const char *end,
                  struct hc_query_param *p)
{
    const char *c = *cursor;

    while (c < end && *c == '&')
        c++;
    if (c >= end) {
        *cursor = end;
        return 0;
    }
    p->name = c;
    while (c < end && *c != '&' && *c != '=')
        c++;
    p->name_len = (size_t)(c - p->name);
    if (c < end && *c == '=') {
        c++;
        p->value = c;
        while (c < end && *c != '&')
            c++;
        p->value_len = (size_t)(c - p->value);
    } else {
        p->value = c;
        p->value_len = 0;
    }
    *cursor = c;
    return 1;
}

int hc_query_get(const char *query, size_t len, const char *name,
                 const char **val, size_t *vlen)
{
    const char *cur = query, *end = query + len;
    struct hc_query_param p;
    size_t nlen = strlen(name);

    while (hc_query_next(&cur, end, &p)) {
        if (p.name_len == nlen && memcmp(p.name, name, nlen) == 0) {
            *val = p.value;
            *vlen = p.value_len;
            return 1;
        }
    }
    return 0;
}

static int is_host_char(unsigned char c)
{
    return is_alpha(c) || is_digit(c) || c == '-' || c == '.' || c == '_' ||
           c == '~';
}

static int is_ipv6_char(unsigned char c)
{
    return hex_value(c) >= 0 || c == ':' || c == '.';
}

static int default_port(const char *scheme)
{
    if (strcmp(scheme, "wss") == 0 || strcmp(scheme, "https") == 0 ||
        strcmp(scheme, "sb") == 0)
        return 443;
    if (strcmp(scheme, "ws") == 0 || strcmp(scheme, "http") == 0)
        return 80;
    return 0;
}

/* Parse the port digits [p, end) into *port; 0 or HC_ESYNTAX. */
static int parse_port(const char *p, const char *end, int *port)
{
    long v = 0;

    if (p == end || end - p > 5)
        return HC_ESYNTAX;
    for (; p < end; p++) {
        if (!is_digit((unsigned char)*p))
            return HC_ESYNTAX;
        v = v * 10 + (*p - '0');
    }
    if (v < 1 || v > 65535)
        return HC_ESYNTAX;
    *port = (int)v;
    return 0;
}

/* Parse the authority [a, end): skip userinfo, then host and port. */
static int parse_authority(const char *a, const char *end, struct hc_url *u)
{
    const char *h, *hend, *at = NULL, *p;
    size_t hlen, i;

    for (p = a; p < end; p++)
        if (*p == '@')
            at = p;
    if (at != NULL)
        a = at + 1;

    if (a < end && *a == '[') {
        h = a + 1;
        hend = memchr(h, ']', (size_t)(end - h));
        if (hend == NULL)
            return HC_ESYNTAX;
        for (p = h; p < hend; p++)
            if (!is_ipv6_char((unsigned char)*p))
                return HC_ESYNTAX;
        if (memchr(h, ':', (size_t)(hend - h)) == NULL)
            return HC_ESYNTAX;
        p = hend + 1;
    } else {
        h = a;
        for (p = a; p < end && *p != ':'; p++)
            if (!is_host_char((unsigned char)*p))
                return HC_ESYNTAX;
        hend = p;
    }

    hlen = (size_t)(hend - h);
    if (hlen == 0 || hlen >= sizeof(u->host))
        return HC_ESYNTAX;
    for (i = 0; i < hlen; i++)
        u->host[i] = (char)to_lower((unsigned char)h[i]);
    u->host[hlen] = '\0';

    if (p == end) {
        u->port = default_port(u->scheme);
        u->port_explicit = 0;
        return 0;
    }
    if (*p != ':')
        return HC_ESYNTAX;
    if (parse_port(p + 1, end, &u->port) != 0)
        return HC_ESYNTAX;
    u->port_explicit = 1;
    return 0;
}

int hc_url_parse(const char *url, struct hc_url *u)
{
    const char *p, *auth, *aend, *path, *pend, *q, *qend;
    size_t slen, i;
    int err;

    memset(u, 0, sizeof(*u));

    for (p = url; *p != '\0'; p++) {
        unsigned char c = (unsigned char)*p;
        if (c <= 0x20 || c == 0x7f)
            return HC_ESYNTAX;
    }

    /* scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ) */
    p = url;
    if (!is_alpha((unsigned char)*p))
        return HC_ESYNTAX;
    while (is_alpha((unsigned char)*p) || is_digit((unsigned char)*p) ||
           *p == '+' || *p == '-' || *p == '.')
        p++;
    slen = (size_t)(p - url);
    if (slen >= sizeof(u->scheme) || strncmp(p, "://", 3) != 0)
        return HC_ESYNTAX;
    for (i = 0; i < slen; i++)
        u->scheme[i] = (char)to_lower((unsigned char)url[i]);
    u->scheme[slen] = '\0';

    auth = p + 3;
    aend = auth + strcspn(auth, "/?#");
    err = parse_authority(auth, aend, u);
    if (err != 0)
        return err;

    path = aend;
    pend = path + strcspn(path, "?#");
    if (*pend == '?') {
        q = pend + 1;
        qend = q + strcspn(q, "#");
    } else {
        q = qend = pend;
    }

    if (path == pend)
        u->path = hc_strdup("/");
    else
        u->path = hc_strndup(path, (size_t)(pend - path));
    u->query = hc_strndup(q, (size_t)(qend - q));
    if (u->path == NULL || u->query == NULL) {
        hc_url_free(u);
        return UV_ENOMEM;
    }
    return 0;
}

void hc_url_free(struct hc_url *u)
{
    if (u == NULL)
        return;
    hc_free(u->path);
    hc_free(u->query);
    u->path = NULL;
    u->query = NULL;
}
