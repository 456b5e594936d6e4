/*
 * http.c - HTTP/1.1 head parsing for the WebSocket upgrade, and the
 * Sec-WebSocket-Key / Sec-WebSocket-Accept helpers. See hc_http.h for the
 * grammar we accept.
 */
#include <string.h>

#include <mbedtls/base64.h>
#include <mbedtls/platform_util.h>
#include <mbedtls/sha1.h>
#include <uv.h>

#include "hc_err.h"
#include "hc_http.h"

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

/* RFC 9110 5.6.2: tchar. Written out so the locale cannot change it. */
static int is_tchar(unsigned char c)
{
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
        (c >= 'A' && c <= 'Z'))
        return 1;
    switch (c) {
    case '!':
    case '#':
    case '$':
    case '%':
    case '&':
    case '\'':
    case '*':
    case '+':
    case '-':
    case '.':
    case '^':
    case '_':
    case '`':
    case '|':
    case '~':
        return 1;
    default:
        return 0;
    }
}

static int is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

/* A byte of a request-target: anything visible, obs-text included. */
static int is_target_char(unsigned char c)
{
    return c > 0x20 && c != 0x7f;
}

/* A byte of a field value or reason phrase: HTAB, SP, VCHAR, obs-text. */
static int is_text_char(unsigned char c)
{
    return c == '\t' || (c >= 0x20 && c != 0x7f);
}

static int is_ows(unsigned char c)
{
    return c == ' ' || c == '\t';
}

static unsigned char ascii_lower(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c - 'A' + 'a') : c;
}

/* Equal ignoring ASCII case; n bytes of each. */
static int ascii_caseeq(const char *a, const char *b, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++)
        if (ascii_lower((unsigned char)a[i]) !=
            ascii_lower((unsigned char)b[i]))
            return 0;
    return 1;
}

/*
 * Find the line that starts at buf[pos]. Its content is [pos, *eol). Returns
 * 0 when the line is complete (*next is where the following line starts),
 * HC_EAGAIN when the buffer ends inside it (a trailing CR counts as inside:
 * its LF has not arrived yet), or HC_ESYNTAX for a bare LF or a CR followed
 * by anything but LF.
 */
static int find_line(const char *buf, size_t len, size_t pos, size_t *eol,
                     size_t *next)
{
    size_t i;

    for (i = pos; i < len; i++) {
        if (buf[i] == '\n')
            return HC_ESYNTAX;
        if (buf[i] != '\r')
            continue;
        *eol = i;
        if (i + 1 == len)
            return HC_EAGAIN;
        if (buf[i + 1] != '\n')
            return HC_ESYNTAX;
        *next = i + 2;
        return 0;
    }
    *eol = len;
    return HC_EAGAIN;
}

/*
 * The validators below look at one line, p[0..n), which is the whole line
 * when complete is set and only its first n bytes otherwise. Running out of
 * bytes means HC_EAGAIN for a partial line (everything so far could still be
 * valid) and HC_ESYNTAX for a complete one (the line is too short).
 */
static int out_of_bytes(int complete)
{
    return complete ? HC_ESYNTAX : HC_EAGAIN;
}

/*
 * "HTTP/1." DIGIT at p[0..n). Returns 0 (8 bytes used, *minor set),
 * HC_EAGAIN when p is a proper prefix of such a version, or HC_ESYNTAX.
 */
static int parse_version(const char *p, size_t n, int *minor)
{
    static const char v[] = "HTTP/1.";
    size_t i;

    for (i = 0; i < sizeof(v) - 1; i++) {
        if (i == n)
            return HC_EAGAIN;
        if (p[i] != v[i])
            return HC_ESYNTAX;
    }
    if (i == n)
        return HC_EAGAIN;
    if (!is_digit((unsigned char)p[i]))
        return HC_ESYNTAX;
    *minor = p[i] - '0';
    return 0;
}

/* request-line = method SP request-target SP HTTP-version */
static int parse_request_line(const char *p, size_t n, int complete,
                              struct hc_http_head *h)
{
    size_t i = 0, t;
    int rc;

    while (i < n && is_tchar((unsigned char)p[i]))
        i++;
    if (i == n)
        return out_of_bytes(complete);
    if (i == 0 || p[i] != ' ')
        return HC_ESYNTAX;
    h->method = p;
    h->method_len = i;

    t = ++i;
    if (i == n)
        return out_of_bytes(complete);
    /* Only origin-form: check the first byte now, so that an absolute-form
     * target fails at once. */
    if (p[t] != '/')
        return HC_ESYNTAX;
    while (i < n && is_target_char((unsigned char)p[i]))
        i++;
    if (i == n)
        return out_of_bytes(complete);
    if (p[i] != ' ')
        return HC_ESYNTAX;
    h->target = p + t;
    h->target_len = i - t;

    i++;
    rc = parse_version(p + i, n - i, &h->minor_version);
    if (rc == HC_EAGAIN)
        return out_of_bytes(complete);
    if (rc != 0)
        return rc;
    i += 8;
    if (i < n)
        return HC_ESYNTAX;
    return complete ? 0 : HC_EAGAIN;
}

/* status-line = HTTP-version SP 3DIGIT [ SP reason-phrase ] */
static int parse_status_line(const char *p, size_t n, int complete,
                             struct hc_http_head *h)
{
    size_t i, k;
    int rc, status = 0;

    rc = parse_version(p, n, &h->minor_version);
    if (rc == HC_EAGAIN)
        return out_of_bytes(complete);
    if (rc != 0)
        return rc;
    i = 8;
    if (i == n)
        return out_of_bytes(complete);
    if (p[i] != ' ')
        return HC_ESYNTAX;
    i++;
    for (k = 0; k < 3; k++, i++) {
        if (i == n)
            return out_of_bytes(complete);
        if (!is_digit((unsigned char)p[i]) || (k == 0 && p[i] == '0'))
            return HC_ESYNTAX;
        status = status * 10 + (p[i] - '0');
    }
    h->status = status;
    h->reason = p + i;
    h->reason_len = 0;
    if (i == n)
        return complete ? 0 : HC_EAGAIN;
    if (p[i] != ' ')
        return HC_ESYNTAX;
    i++;
    h->reason = p + i;
    for (; i < n; i++)
        if (!is_text_char((unsigned char)p[i]))
            return HC_ESYNTAX;
    h->reason_len = (size_t)(p + n - h->reason);
    return complete ? 0 : HC_EAGAIN;
}

/* field-line = field-name ":" OWS field-value OWS; p is not empty. */
static int parse_header_line(const char *p, size_t n, int complete,
                             struct hc_http_header *hdr)
{
    size_t i = 0, vb, ve;

    /* A line starting with whitespace is obs-fold (or garbage). */
    while (i < n && is_tchar((unsigned char)p[i]))
        i++;
    if (i == n)
        return out_of_bytes(complete);
    if (i == 0 || p[i] != ':')
        return HC_ESYNTAX;
    hdr->name = p;
    hdr->name_len = i;

    for (vb = ++i; i < n; i++)
        if (!is_text_char((unsigned char)p[i]))
            return HC_ESYNTAX;
    if (!complete)
        return HC_EAGAIN;
    ve = n;
    while (vb < ve && is_ows((unsigned char)p[vb]))
        vb++;
    while (ve > vb && is_ows((unsigned char)p[ve - 1]))
        ve--;
    hdr->value = p + vb;
    hdr->value_len = ve - vb;
    return 0;
}

static int parse_head(const char *buf, size_t len, struct hc_http_head *h,
                      int response)
{
    size_t pos = 0, eol = 0, next = 0;
    int rc, complete;

    memset(h, 0, sizeof(*h));

    rc = find_line(buf, len, pos, &eol, &next);
    if (rc == HC_ESYNTAX)
        return rc;
    complete = rc == 0;
    if (response)
        rc = parse_status_line(buf, eol, complete, h);
    else
        rc = parse_request_line(buf, eol, complete, h);
    if (rc != 0)
        return rc;
    pos = next;

    for (;;) {
        struct hc_http_header hdr;

        rc = find_line(buf, len, pos, &eol, &next);
        if (rc == HC_ESYNTAX)
            return rc;
        complete = rc == 0;
        if (eol == pos) {
            if (!complete)
                return HC_EAGAIN;
            h->head_len = next;
            return 0;
        }
        if (h->nheaders == HC_HTTP_MAX_HEADERS)
            return HC_ETOOBIG;
        rc = parse_header_line(buf + pos, eol - pos, complete, &hdr);
        if (rc != 0)
            return rc;
        h->headers[h->nheaders++] = hdr;
        pos = next;
    }
}

int hc_http_parse_request(const char *buf, size_t len, struct hc_http_head *h)
{
    return parse_head(buf, len, h, 0);
}

int hc_http_parse_response(const char *buf, size_t len, struct hc_http_head *h)
{
    return parse_head(buf, len, h, 1);
}

const struct hc_http_header *hc_http_find(const struct hc_http_head *h,
                                          const char *name)
{
    size_t i, n = strlen(name);

    for (i = 0; i < h->nheaders; i++) {
        const struct hc_http_header *hdr = &h->headers[i];

        if (hdr->name_len == n && ascii_caseeq(hdr->name, name, n))
            return hdr;
    }
    return NULL;
}

int hc_http_has_token(const char *value, size_t len, const char *token)
{
    size_t tlen = strlen(token), i = 0;

    if (tlen == 0 || value == NULL)
        return 0;
    while (i <= len) {
        size_t b = i, e;

        while (i < len && value[i] != ',')
            i++;
        e = i;
        while (b < e && is_ows((unsigned char)value[b]))
            b++;
        while (e > b && is_ows((unsigned char)value[e - 1]))
            e--;
        if (e - b == tlen && ascii_caseeq(value + b, token, tlen))
            return 1;
        i++; /* past the comma, or past the end to stop */
    }
    return 0;
}

void hc_http_ws_accept(const char *key, size_t key_len, char out[29])
{
    mbedtls_sha1_context sha;
    unsigned char digest[20];
    size_t olen = 0;
    int rc;

    mbedtls_sha1_init(&sha);
    rc = mbedtls_sha1_starts_ret(&sha);
    if (rc == 0)
        rc = mbedtls_sha1_update_ret(&sha, (const unsigned char *)key, key_len);
    if (rc == 0)
        rc = mbedtls_sha1_update_ret(&sha, (const unsigned char *)WS_GUID,
                                     sizeof(WS_GUID) - 1);
    if (rc == 0)
        rc = mbedtls_sha1_finish_ret(&sha, digest);
    mbedtls_sha1_free(&sha);
    if (rc == 0)
        rc = mbedtls_base64_encode((unsigned char *)out, 29, &olen, digest,
                                   sizeof(digest));
    if (rc != 0 || olen != 28)
        out[0] = '\0';
}

int hc_http_ws_key(char out[25])
{
    unsigned char raw[16];
    size_t olen = 0;
    int rc;

    out[0] = '\0';
    /* Synchronous: no loop, no request, no callback. */
    rc = uv_random(NULL, NULL, raw, sizeof(raw), 0, NULL);
    if (rc != 0)
        return rc;
    rc = mbedtls_base64_encode((unsigned char *)out, 25, &olen, raw,
                               sizeof(raw));
    mbedtls_platform_zeroize(raw, sizeof(raw));
    if (rc != 0 || olen != 24) {
        /* Cannot happen: 16 bytes always encode to 24 characters. */
        out[0] = '\0';
        return UV_EINVAL;
    }
    return 0;
}

const char *hc_http_reason(int status)
{
    switch (status) {
    case 100:
        return "Continue";
    case 101:
        return "Switching Protocols";
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 203:
        return "Non-Authoritative Information";
    case 204:
        return "No Content";
    case 205:
        return "Reset Content";
    case 206:
        return "Partial Content";
    case 300:
        return "Multiple Choices";
    case 301:
        return "Moved Permanently";
    case 302:
        return "Found";
    case 303:
        return "See Other";
    case 304:
        return "Not Modified";
    case 305:
        return "Use Proxy";
    case 307:
        return "Temporary Redirect";
    case 308:
        return "Permanent Redirect";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 402:
        return "Payment Required";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 406:
        return "Not Acceptable";
    case 407:
        return "Proxy Authentication Required";
    case 408:
        return "Request Timeout";
    case 409:
        return "Conflict";
    case 410:
        return "Gone";
    case 411:
        return "Length Required";
    case 412:
        return "Precondition Failed";
    case 413:
        return "Content Too Large";
    case 414:
        return "URI Too Long";
    case 415:
        return "Unsupported Media Type";
    case 416:
        return "Range Not Satisfiable";
    case 417:
        return "Expectation Failed";
    case 421:
        return "Misdirected Request";
    case 422:
        return "Unprocessable Content";
    case 426:
        return "Upgrade Required";
    case 428:
        return "Precondition Required";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 451:
        return "Unavailable For Legal Reasons";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    case 505:
        return "HTTP Version Not Supported";
    case 511:
        return "Network Authentication Required";
    default:
        return "Unknown";
    }
}
