/*
 * hc_sas.h - Shared Access Signature tokens (protocol.md §2).
 *
 * Pure functions: the expiry and the current time are passed in, nothing here
 * reads a clock or does I/O, so test vectors are deterministic. Keys are
 * borrowed and never copied; the HMAC state derived from them is wiped by
 * mbedTLS when it is freed.
 */
#ifndef HC_SAS_H
#define HC_SAS_H

#include <stddef.h>
#include <stdint.h>

/*
 * Make the token
 *   SharedAccessSignature sr={enc(uri)}&sig={enc(b64(mac))}&se={expiry}
 *       &skn={enc(key_name)}
 * where mac = HMAC-SHA256(key as UTF-8 text, enc(uri) + "\n" + expiry),
 * enc = hc_url_encode (encodeURIComponent, upper-case hex) and expiry is
 * written in decimal. key_name is encoded too, as .NET and Java do; for rule
 * names Azure allows (letters, digits, '.', '-', '_') that changes nothing.
 *
 * resource_uri, key_name and key are borrowed NUL-terminated strings.
 *
 * Returns a string the caller frees with hc_free, or NULL when memory is out
 * or the HMAC could not be computed.
 */
char *hc_sas_sign(const char *resource_uri, const char *key_name,
                  const char *key, uint64_t expiry);

/*
 * The audience .NET signs for an entity: "http://{host}/{entity}/", with the
 * host lower-cased (put in brackets when it is an IPv6 literal) and no port.
 * Leading and trailing '/' of entity are dropped; a NULL or empty entity
 * gives the namespace-wide "http://{host}/". Both borrowed.
 *
 * Returns a string the caller frees with hc_free, or NULL when memory is out.
 */
char *hc_sas_audience(const char *host, const char *entity);

struct hc_sas_token {
    const char *sr; /* raw, exactly as in the token (borrowed from it) */
    size_t sr_len;
    uint8_t sig[32]; /* decoded signature bytes */
    size_t sig_len;
    uint64_t se;
    char skn[257]; /* decoded rule name, NUL-terminated */
};

/*
 * Parse len bytes of token (need not be NUL-terminated) into t.
 *
 * The token starts with "SharedAccessSignature" (any case) and one or more
 * spaces. The rest is split on '&' and each field at its first '='; fields
 * may come in any order, empty segments and unknown fields are ignored. sr,
 * sig, se and skn are all required, each exactly once:
 *  - sr is kept raw and must not be empty;
 *  - sig is percent-decoded without the '+'-is-space rule (so a raw '/' or
 *    '+' is fine); a space left after that (a '+' that went through form
 *    decoding) is read back as '+'; then it must be base64 of 32 bytes;
 *  - se is decimal digits only and must fit in 64 bits;
 *  - skn is percent-decoded (no '+' rule) to 1..256 bytes.
 *
 * When the token came in the sb-hc-token query parameter the caller has
 * form-decoded it once already; sr still carries its own %XX escapes then.
 *
 * t->sr points into token, so token must outlive t.
 *
 * Returns 0 or HC_ESYNTAX.
 */
int hc_sas_parse(const char *token, size_t len, struct hc_sas_token *t);

/*
 * Check the signature of a parsed token: HMAC-SHA256 with the NUL-terminated
 * key (borrowed, used as UTF-8 text, not base64-decoded) over the raw sr,
 * "\n" and se in decimal, compared in constant time with t->sig. A token
 * whose se was written with leading zeros does not verify, since no client
 * writes one.
 *
 * Returns 0 when the signature matches, HC_EAUTH when it does not or the
 * HMAC could not be computed.
 */
int hc_sas_verify(const struct hc_sas_token *t, const char *key);

/*
 * Scope check (protocol.md §2.4 step 5). sr is percent-decoded (no '+'
 * rule) and parsed as an absolute URI; its scheme, port, userinfo, query and
 * fragment are ignored. Its host must equal host case-insensitively (host
 * may be given with or without IPv6 brackets). Its path is percent-decoded
 * once more (it is a URI path, and Node double-encodes), stripped of one
 * leading '/' and all trailing '/', and compared case-insensitively: an
 * empty path covers the whole namespace, otherwise it must equal
 * entity_path or be a parent of it on a '/' boundary ("db" covers "db" and
 * "db/sub" but not "dbx"). entity_path is given without a leading '/', e.g.
 * "db"; a NULL entity_path is treated as "". All borrowed.
 *
 * Returns 1 when the token is in scope, 0 when it is not, when sr cannot be
 * decoded or parsed, or when memory is out.
 */
int hc_sas_in_scope(const struct hc_sas_token *t, const char *host,
                    const char *entity_path);

/*
 * Expiry check: the token is valid while now <= se + skew (seconds since the
 * epoch; no overflow for any input).
 *
 * Returns 0 while valid, HC_EEXPIRED after.
 */
int hc_sas_check_expiry(const struct hc_sas_token *t, uint64_t now,
                        uint64_t skew);

#endif
