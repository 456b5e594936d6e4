/*
 * connstr.c - Azure Relay connection strings (protocol.md §1).
 *
 * The rules follow .NET's RelayConnectionStringBuilder, made a little
 * stricter: a repeated key and an empty value are errors rather than "last
 * one wins", and the Endpoint scheme must be sb.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <uv.h>

#include "hc_connstr.h"
#include "hc_err.h"
#include "hc_mem.h"
#include "hc_sas.h"
#include "hc_url.h"

enum {
    K_ENDPOINT,
    K_ENTITY_PATH,
    K_KEY_NAME,
    K_KEY,
    K_SAS,
    K_TIMEOUT,
    K_AUTH,
    K_COUNT
};

static const char *const key_names[K_COUNT] = {
    "Endpoint",
    "EntityPath",
    "SharedAccessKeyName",
    "SharedAccessKey",
    "SharedAccessSignature",
    "OperationTimeout",
    "Authentication",
};

static unsigned char to_lower(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + ('a' - 'A')) : c;
}

static int equal_nocase(const char *a, size_t alen, const char *b)
{
    size_t i;

    if (alen != strlen(b))
        return 0;
    for (i = 0; i < alen; i++)
        if (to_lower((unsigned char)a[i]) != to_lower((unsigned char)b[i]))
            return 0;
    return 1;
}

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (err == NULL || errlen == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/*
 * Whether an unrecognised key name may be quoted back. A real key name is
 * a short word; anything else may be part of a secret that lost its "Key="
 * (for instance a mangled paste), so it is not repeated.
 */
static int is_quotable(const char *k, size_t len)
{
    size_t i;

    if (len == 0 || len > 32)
        return 0;
    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)k[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')))
            return 0;
    }
    return 1;
}

/* "Managed Identity" with spaces dropped and any case, as .NET reads it. */
static int is_managed_identity(const char *v, size_t len)
{
    static const char want[] = "managedidentity";
    size_t i, j = 0;

    for (i = 0; i < len; i++) {
        if (v[i] == ' ')
            continue;
        if (want[j] == '\0' || to_lower((unsigned char)v[i]) != want[j])
            return 0;
        j++;
    }
    return want[j] == '\0';
}

static int check_endpoint(struct hc_connstr *cs, char *err, size_t errlen)
{
    struct hc_url u;
    int rc;

    rc = hc_url_parse(cs->endpoint, &u);
    if (rc == UV_ENOMEM) {
        set_err(err, errlen, "out of memory");
        return rc;
    }
    if (rc != 0) {
        set_err(err, errlen,
                "Endpoint is not a valid absolute URI "
                "(expected sb://NAMESPACE.servicebus.windows.net/)");
        return HC_ESYNTAX;
    }
    if (strcmp(u.scheme, "sb") != 0) {
        /* The scheme is at most 15 URI scheme characters: safe to quote. */
        set_err(err, errlen,
                "Endpoint must use the sb:// scheme, not %s:// "
                "(only sb:// is accepted)",
                u.scheme);
        hc_url_free(&u);
        return HC_ESYNTAX;
    }
    cs->port = u.port_explicit ? u.port : 443;
    cs->host = hc_strdup(u.host);
    hc_url_free(&u);
    if (cs->host == NULL) {
        set_err(err, errlen, "out of memory");
        return UV_ENOMEM;
    }
    return 0;
}

/* Cross-key rules, checked once every pair has been read. */
static int check_combination(const struct hc_connstr *cs, char *err,
                             size_t errlen)
{
    if (cs->endpoint == NULL) {
        set_err(err, errlen, "connection string has no Endpoint");
        return HC_ESYNTAX;
    }
    if (cs->sas != NULL && (cs->key_name != NULL || cs->key != NULL)) {
        set_err(err, errlen,
                "SharedAccessSignature cannot be combined with "
                "SharedAccessKeyName or SharedAccessKey");
        return HC_ESYNTAX;
    }
    if ((cs->key_name == NULL) != (cs->key == NULL)) {
        set_err(err, errlen,
                "SharedAccessKeyName and SharedAccessKey must be given "
                "together");
        return HC_ESYNTAX;
    }
    if (cs->managed_identity &&
        (cs->sas != NULL || cs->key_name != NULL || cs->key != NULL)) {
        set_err(err, errlen,
                "Authentication=Managed Identity cannot be combined with "
                "SAS keys or tokens");
        return HC_ESYNTAX;
    }
    if (cs->sas != NULL) {
        struct hc_sas_token t;
        if (hc_sas_parse(cs->sas, strlen(cs->sas), &t) != 0) {
            set_err(err, errlen,
                    "SharedAccessSignature is not a valid token (expected "
                    "\"SharedAccessSignature sr=...&sig=...&se=...&skn=...\")");
            return HC_ESYNTAX;
        }
    }
    return 0;
}

/* Store one Key=Value pair; k is the key index. */
static int store(struct hc_connstr *cs, int k, const char *v, size_t vlen,
                 char *err, size_t errlen)
{
    char **slot = NULL;

    switch (k) {
    case K_ENDPOINT:
        slot = &cs->endpoint;
        break;
    case K_ENTITY_PATH:
        slot = &cs->entity_path;
        break;
    case K_KEY_NAME:
        slot = &cs->key_name;
        break;
    case K_KEY:
        slot = &cs->key;
        break;
    case K_SAS:
        slot = &cs->sas;
        break;
    case K_TIMEOUT:
        /* .NET reads it as a TimeSpan; we have no use for it. */
        return 0;
    case K_AUTH:
        if (!is_managed_identity(v, vlen)) {
            set_err(err, errlen, "Authentication must be \"Managed Identity\"");
            return HC_ESYNTAX;
        }
        cs->managed_identity = 1;
        return 0;
    default:
        return HC_ESYNTAX;
    }
    *slot = hc_strndup(v, vlen);
    if (*slot == NULL) {
        set_err(err, errlen, "out of memory");
        return UV_ENOMEM;
    }
    if (k == K_ENDPOINT)
        return check_endpoint(cs, err, errlen);
    return 0;
}

int hc_connstr_parse(const char *s, struct hc_connstr *cs, char *err,
                     size_t errlen)
{
    struct hc_connstr tmp;
    unsigned seen = 0;
    const char *p = s;
    int seg = 0, rc;

    memset(cs, 0, sizeof(*cs));
    memset(&tmp, 0, sizeof(tmp));
    if (err != NULL && errlen > 0)
        err[0] = '\0';

    while (*p != '\0') {
        const char *end = p + strcspn(p, ";"), *eq, *v;
        size_t klen, vlen;
        int k;

        if (end == p) {
            p++;
            continue;
        }
        seg++;
        eq = memchr(p, '=', (size_t)(end - p));
        if (eq == NULL) {
            /* Not quoted: a segment without '=' may be a stray secret. */
            set_err(err, errlen,
                    "segment %d of the connection string has no '='", seg);
            rc = HC_ESYNTAX;
            goto fail;
        }
        klen = (size_t)(eq - p);
        v = eq + 1;
        vlen = (size_t)(end - v);

        for (k = 0; k < K_COUNT; k++)
            if (equal_nocase(p, klen, key_names[k]))
                break;
        if (k == K_COUNT) {
            if (is_quotable(p, klen))
                set_err(err, errlen,
                        "unknown key \"%.*s\" in connection string", (int)klen,
                        p);
            else
                set_err(err, errlen,
                        "unknown key in segment %d of the connection string",
                        seg);
            rc = HC_ESYNTAX;
            goto fail;
        }
        if (seen & (1u << k)) {
            set_err(err, errlen, "%s is given more than once", key_names[k]);
            rc = HC_ESYNTAX;
            goto fail;
        }
        seen |= 1u << k;
        if (vlen == 0) {
            set_err(err, errlen, "%s has an empty value", key_names[k]);
            rc = HC_ESYNTAX;
            goto fail;
        }
        rc = store(&tmp, k, v, vlen, err, errlen);
        if (rc != 0)
            goto fail;
        p = *end == ';' ? end + 1 : end;
    }

    rc = check_combination(&tmp, err, errlen);
    if (rc != 0)
        goto fail;
    *cs = tmp;
    return 0;

fail:
    hc_connstr_free(&tmp);
    return rc;
}

void hc_connstr_free(struct hc_connstr *cs)
{
    if (cs == NULL)
        return;
    hc_free(cs->endpoint);
    hc_free(cs->host);
    hc_free(cs->entity_path);
    hc_free(cs->key_name);
    hc_free_secret_str(cs->key);
    hc_free_secret_str(cs->sas);
    memset(cs, 0, sizeof(*cs));
}

char *hc_connstr_format(const char *host, int port, const char *key_name,
                        const char *key, const char *entity)
{
    char portbuf[16] = "";
    size_t cap;
    char *out;
    int bracket;

    if (host == NULL || (key_name == NULL) != (key == NULL))
        return NULL;
    bracket = strchr(host, ':') != NULL && host[0] != '[';
    if (port > 0 && port != 443)
        snprintf(portbuf, sizeof(portbuf), ":%d", port);

    cap = sizeof("Endpoint=sb://[]/") + strlen(host) + strlen(portbuf);
    if (key_name != NULL)
        cap += sizeof(";SharedAccessKeyName=;SharedAccessKey=") +
               strlen(key_name) + strlen(key);
    if (entity != NULL)
        cap += sizeof(";EntityPath=") + strlen(entity);
    out = hc_malloc(cap);
    if (out == NULL)
        return NULL;
    snprintf(out, cap, "Endpoint=sb://%s%s%s%s/%s%s%s%s%s%s",
             bracket ? "[" : "", host, bracket ? "]" : "", portbuf,
             key_name ? ";SharedAccessKeyName=" : "", key_name ? key_name : "",
             key ? ";SharedAccessKey=" : "", key ? key : "",
             entity ? ";EntityPath=" : "", entity ? entity : "");
    return out;
}
