/*
 * hc_json.h - control-channel messages (protocol.md 3.2, 3.3) via jansson.
 *
 * Builders emit compact, plain JSON: members in the .NET contract order, '/'
 * not escaped, non-ASCII as UTF-8. The parser is tolerant in the ways
 * protocol.md 7 item 4 asks for (any member order, "\/" and \uXXXX escapes,
 * unknown members ignored, statusCode and port as numbers or numeric
 * strings, optional members missing) and strict where laxness would be
 * ambiguous: duplicate member names, a NUL (\u0000) in any string and
 * trailing bytes after the object are HC_ESYNTAX.
 */
#ifndef HC_JSON_H
#define HC_JSON_H

#include <stdint.h>

#include "hc_http.h"

/* Largest control message hc_json_parse_ctl takes (protocol.md 7 item 14). */
#define HC_JSON_CTL_MAX 65536

/*
 * The accept message the relay sends to a listener, exactly:
 * {"accept":{"address":...,"id":...,"connectHeaders":{...},
 *  "remoteEndpoint":{"address":"1.2.3.4","port":5678}}}
 *
 * address, id: borrowed, NUL-terminated, not NULL.
 * hdrs:        borrowed; n entries (hdrs may be NULL when n is 0). Every
 *              header goes into connectHeaders under its name as received.
 *              Names that are equal ignoring case are one field (RFC 9110
 *              5.3): they become one member, under the first spelling, whose
 *              value is the values in order joined with ", ".
 * remote_addr: borrowed; NULL leaves remoteEndpoint out. remote_port is
 *              written as a JSON integer.
 * A string that is not valid UTF-8 (header bytes are opaque octets, and the
 * historical charset is ISO-8859-1) is taken as Latin-1 and converted, rather
 * than refused, as jansson would.
 *
 * Returns the NUL-terminated JSON, allocated with hc_malloc (the caller frees
 * it with hc_free), or NULL when memory is out.
 */
char *hc_json_accept(const char *address, const char *id,
                     const struct hc_http_header *hdrs, size_t n,
                     const char *remote_addr, int remote_port);

/*
 * {"renewToken":{"token":"..."}}
 *
 * token: borrowed, NUL-terminated, not NULL. The copies made on the way are
 * wiped; the result holds the token, so free it with hc_free_secret_str.
 * Returns the JSON allocated with hc_malloc, or NULL when memory is out.
 */
char *hc_json_renew_token(const char *token);

enum hc_ctl_type {
    HC_CTL_UNKNOWN = 0,
    HC_CTL_ACCEPT,
    HC_CTL_REQUEST,
    HC_CTL_RENEW_TOKEN,
    HC_CTL_RESPONSE
};

struct hc_ctl_header {
    char *name;
    char *value;
};

/*
 * A parsed control message. Every string is NUL-terminated, allocated with
 * hc_malloc, owned by the message and freed by hc_ctl_msg_free. Optional
 * members that are absent (or JSON null) are NULL / 0.
 */
struct hc_ctl_msg {
    enum hc_ctl_type type;
    char *name; /* the top-level key as received (for logging unknown
                   commands) */
    /* accept / request */
    char *address;
    char *id;
    /* connectHeaders (accept), requestHeaders (request) or responseHeaders
     * (response), in the order received; NULL when there are none */
    struct hc_ctl_header *headers;
    size_t nheaders;
    /* remoteEndpoint; NULL/0 when absent. It is informational only, so a
     * malformed one is dropped rather than failing the message: remote_addr
     * is kept when it is a string, remote_port when it is an integer (or
     * numeric string) in 0..65535. */
    char *remote_addr;
    int remote_port;
    /* request */
    char *method;
    char *request_target;
    /* request and response: has_body says the "body" member is present (and
     * then it must be a boolean); body is its value */
    int has_body;
    int body;
    /* renewToken */
    char *token; /* secret-ish: wiped on free */
    /* response */
    char *request_id;
    int status_code; /* 100..999 */
    char *status_description;
};

/*
 * Parse one control message: len bytes of a text frame at data (borrowed;
 * need not be NUL-terminated).
 *
 * The top level must be an object with exactly one member. Its name picks the
 * type: "accept", "request", "renewToken", "response" (exact case); any other
 * name gives HC_CTL_UNKNOWN and returns 0 whatever its value, so the caller
 * can log and ignore it. For a known type the value must be an object, and
 * its required members must be present with the right type:
 *   accept:     address, id (strings); connectHeaders optional, an object of
 *               strings
 *   request:    address, id; optional requestTarget, method (strings),
 *               requestHeaders (object of strings), body (boolean)
 *   renewToken: token (string)
 *   response:   requestId (string), statusCode (100..999, integer or decimal
 *               string); optional statusDescription (string),
 *               responseHeaders (object of strings), body (boolean)
 * Strings may be empty; their meaning is the caller's business.
 *
 * m: filled on success; the caller frees it with hc_ctl_msg_free. On error
 *    *m is left zeroed, with nothing to free.
 *
 * Returns 0; HC_ESYNTAX for invalid JSON or a message breaking the rules
 * above; HC_ETOOBIG when len > HC_JSON_CTL_MAX; UV_ENOMEM when memory is out
 * (in hc_malloc or inside jansson).
 */
int hc_json_parse_ctl(const char *data, size_t len, struct hc_ctl_msg *m);

/*
 * Free everything m owns, wipe the token, and zero *m. NULL-safe and
 * idempotent; m itself is not freed.
 */
void hc_ctl_msg_free(struct hc_ctl_msg *m);

/*
 * The value of the first header in m named name (ignoring ASCII case), or
 * NULL if none. The result is owned by m.
 */
const char *hc_ctl_header(const struct hc_ctl_msg *m, const char *name);

#endif
