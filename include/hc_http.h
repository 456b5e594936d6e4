/*
 * hc_http.h - sans-I/O HTTP/1.1 head parsing for the WebSocket upgrade,
 * client side (the 101 response) and server side (the GET request), plus the
 * Sec-WebSocket-Key / Sec-WebSocket-Accept helpers.
 *
 * The head parsers keep no state between calls: the caller accumulates bytes
 * and calls again with the longer buffer, and every call re-scans from buf[0].
 * So any byte boundary is legal, and the cost of one call is O(len), bounded
 * by the byte cap the caller enforces (32 KiB).
 *
 * What the parsers accept (RFC 9112 with the lenient parts removed):
 *  - Lines end in CRLF only. A bare LF, or a CR not followed by LF, is
 *    HC_ESYNTAX: every peer we talk to (Azure, .NET, Node ws, browsers) sends
 *    CRLF, and one line-ending rule leaves no room for request smuggling.
 *  - No empty lines before the start line; no obs-fold (a header line that
 *    starts with SP or HTAB); no whitespace between a field name and ':'.
 *  - Field names are RFC 9110 tokens and may not be empty. Field values may
 *    hold SP, HTAB, VCHAR and obs-text (bytes >= 0x80); any other control
 *    byte, NUL and DEL included, is HC_ESYNTAX.
 *  - The version is "HTTP/1." and one digit.
 * Errors are reported as early as the bytes allow: a bad start line fails at
 * its first bad byte, long before the end of the head.
 */
#ifndef HC_HTTP_H
#define HC_HTTP_H

#include <stddef.h>

#define HC_HTTP_MAX_HEADERS 64

/*
 * One header field. The pointers point into the caller's buffer and are valid
 * as long as it is; they are not NUL-terminated. value has its surrounding
 * OWS (SP, HTAB) trimmed and may be empty.
 */
struct hc_http_header {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
};

struct hc_http_head {
    const char *method; /* request */
    size_t method_len;
    const char *target; /* request: origin-form "/path?query" */
    size_t target_len;
    int status;         /* response: 100..999 */
    const char *reason; /* response, may be empty */
    size_t reason_len;
    int minor_version; /* HTTP/1.x */
    struct hc_http_header headers[HC_HTTP_MAX_HEADERS];
    size_t nheaders;
    size_t head_len; /* bytes of the head including the final CRLF CRLF */
};

/*
 * Parse a request head from the first len bytes of buf. The request line is
 * "method SP request-target SP HTTP/1.x"; the target must be in origin-form
 * (start with '/'): absolute-form, authority-form and "*" are HC_ESYNTAX, as
 * no upgrade request to us uses them.
 *
 * buf: borrowed; read only in [0, len); need not be NUL-terminated. Bytes
 *      after the head (already-received frames) are left alone.
 * h:   filled on success; its pointers point into buf. On any other return
 *      its contents are unspecified.
 *
 * Returns 0 when a whole head is present (h->head_len says where it ends),
 * HC_EAGAIN when the head is incomplete and nothing seen so far is invalid,
 * HC_ESYNTAX on malformed input (see the rules at the top of this file), or
 * HC_ETOOBIG when a header line beyond HC_HTTP_MAX_HEADERS starts.
 */
int hc_http_parse_request(const char *buf, size_t len, struct hc_http_head *h);

/*
 * Parse a response head, e.g. "HTTP/1.1 101 Switching Protocols". The status
 * is three digits, 100..999. The reason phrase may be empty, and the SP
 * before an empty one may be missing ("HTTP/1.1 404"), as some servers send
 * it that way.
 *
 * Parameters, ownership and return codes are those of hc_http_parse_request.
 */
int hc_http_parse_response(const char *buf, size_t len, struct hc_http_head *h);

/*
 * The first header named name (NUL-terminated, compared ignoring ASCII case).
 * Returns a pointer into h, or NULL if there is none.
 */
const struct hc_http_header *hc_http_find(const struct hc_http_head *h,
                                          const char *name);

/*
 * Whether the comma-separated list in value (len bytes, not NUL-terminated;
 * may be NULL when len is 0) has an element equal to token, ignoring ASCII
 * case and the OWS around each element. Example: "keep-alive, Upgrade" has
 * "upgrade". Elements with parameters ("a; b=1") only match as a whole.
 * Returns 1 if so, else 0 (always 0 for an empty token).
 */
int hc_http_has_token(const char *value, size_t len, const char *token);

/*
 * The Sec-WebSocket-Accept value for a client key (key_len bytes, borrowed):
 * base64(SHA1(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11")), RFC 6455 4.2.2.
 * out gets 28 characters and a NUL. Cannot fail with the built-in SHA-1; if
 * mbedTLS reports an error anyway, out is the empty string, which matches no
 * peer's expectation, so the handshake fails safely.
 */
void hc_http_ws_accept(const char *key, size_t key_len, char out[29]);

/*
 * A fresh Sec-WebSocket-Key: base64 of 16 bytes from the system CSPRNG
 * (uv_random: getrandom(2) or /dev/urandom on Unix, RtlGenRandom on Windows).
 * out gets 24 characters and a NUL.
 * Returns 0, or a negative libuv code when the system has no randomness to
 * give (out is then the empty string).
 */
int hc_http_ws_key(char out[25]);

/*
 * The standard reason phrase for status ("Not Found", "Gone", ...), or
 * "Unknown" when there is none. Returns a static string.
 */
const char *hc_http_reason(int status);

#endif
