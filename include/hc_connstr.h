/*
 * hc_connstr.h - Azure Relay connection strings (protocol.md §1).
 *
 * Pure parsing and formatting, no I/O. The key and the SAS token held in a
 * struct hc_connstr are secrets: they are wiped when it is freed and never
 * appear in an error message.
 */
#ifndef HC_CONNSTR_H
#define HC_CONNSTR_H

#include <stddef.h>

struct hc_connstr {
    /* Endpoint as written, e.g. "sb://ns.servicebus.windows.net/". */
    char *endpoint;
    char *host;        /* host of Endpoint, lower-cased, no IPv6 brackets */
    int port;          /* explicit port of Endpoint, else 443 */
    char *entity_path; /* EntityPath or NULL */
    char *key_name;    /* SharedAccessKeyName or NULL */
    char *key;         /* SharedAccessKey or NULL -- secret, wiped on free */
    /* SharedAccessSignature value (whole token with its prefix) or NULL --
     * secret, wiped on free. */
    char *sas;
    int managed_identity; /* Authentication=Managed Identity */
};

/*
 * Parse the NUL-terminated connection string s (borrowed) into cs.
 *
 * s is a list of Key=Value pairs separated by ';'; empty segments (a trailing
 * ';', ";;") are dropped and each pair is split at its first '=' so values
 * may contain '=' (base64 keys) and '&' (tokens). Key names match
 * case-insensitively; values are kept verbatim and must not be empty.
 * Known keys: Endpoint, EntityPath, SharedAccessKeyName, SharedAccessKey,
 * SharedAccessSignature, OperationTimeout (accepted and ignored) and
 * Authentication (only "Managed Identity", spaces and case ignored). Rules:
 *  - an unknown key, a segment without '=' or a repeated key is an error;
 *  - Endpoint is required, must be an sb:// URI with a host; the port is
 *    the explicit one or 443;
 *  - SharedAccessKeyName and SharedAccessKey come together;
 *  - SharedAccessSignature excludes both, and must be a whole token
 *    ("SharedAccessSignature sr=..&sig=..&se=..&skn=..", see hc_sas_parse);
 *  - Authentication=Managed Identity excludes all SAS keys and tokens.
 *
 * On success the caller releases cs with hc_connstr_free. On error cs is
 * zeroed (nothing to free; hc_connstr_free on it is harmless) and, when err
 * is not NULL, a one-line message is written into err (errlen bytes, always
 * NUL-terminated). The message never contains a key or token value.
 *
 * Returns 0, HC_ESYNTAX or UV_ENOMEM.
 */
int hc_connstr_parse(const char *s, struct hc_connstr *cs, char *err,
                     size_t errlen);

/*
 * Free the strings of cs, wiping key and sas first, and zero it. NULL-safe
 * and idempotent.
 */
void hc_connstr_free(struct hc_connstr *cs);

/*
 * Build the portal form of a connection string:
 *   Endpoint=sb://HOST[:PORT]/;SharedAccessKeyName=RULE;SharedAccessKey=KEY
 *       ;EntityPath=HC
 * ":PORT" is left out when port is 443 (or <= 0), ";EntityPath=HC" when
 * entity is NULL, and both key segments when key_name and key are both NULL.
 * A host with ':' (IPv6) is written in brackets. All borrowed.
 *
 * Returns a string the caller frees with hc_free_secret_str (it holds the
 * key), or NULL when memory is out, host is NULL, or only one of key_name
 * and key is NULL.
 */
char *hc_connstr_format(const char *host, int port, const char *key_name,
                        const char *key, const char *entity);

#endif
