#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <uv.h>

#include "hc_agent.h"
#include "hc_conf.h"
#include "hc_err.h"
#include "hc_log.h"
#include "hc_mem.h"
#include "hc_proxy.h"

struct load {
    struct hc_agent_conf *conf;
    enum { SEC_NONE, SEC_HCMD, SEC_CONN, SEC_BAD } kind; /* SEC_CONN: both */
    struct hc_agent_hc *hc;
    int seen_hcmd, seen_cs;
};

void hc_agent_hc_free(struct hc_agent_hc *h)
{
    hc_connstr_free(&h->cs);
    hc_free(h->name);
    hc_free(h->hostname);
    hc_free(h);
}

int hc_agent_conf_proxy(const struct hc_agent_conf *conf, struct hc_proxy *p,
                        const char **no_proxy, char *err, size_t errlen)
{
    const char *url = conf->proxy;

    if (url == NULL)
        url = getenv("https_proxy");
    if (url == NULL)
        url = getenv("HTTPS_PROXY");
    *no_proxy = conf->no_proxy;
    if (*no_proxy == NULL)
        *no_proxy = getenv("no_proxy");
    if (*no_proxy == NULL)
        *no_proxy = getenv("NO_PROXY");
    if (url == NULL || url[0] == '\0')
        return 0;
    if (hc_proxy_parse(url, p, err, errlen) != 0)
        return UV_EINVAL;
    return 1;
}

void hc_agent_conf_detach(struct hc_agent_conf *conf, struct hc_agent_hc *h)
{
    for (struct hc_agent_hc **pp = &conf->hcs; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == h) {
            *pp = h->next;
            h->next = NULL;
            return;
        }
    }
}

struct hc_agent_hc *hc_agent_conf_find(const struct hc_agent_conf *conf,
                                       const char *name,
                                       enum hc_agent_role role)
{
    for (struct hc_agent_hc *h = conf->hcs; h != NULL; h = h->next)
        if (h->role == role && strcmp(h->name, name) == 0)
            return h;
    return NULL;
}

void hc_agent_conf_free(struct hc_agent_conf *conf)
{
    if (conf == NULL)
        return;
    while (conf->hcs != NULL) {
        struct hc_agent_hc *h = conf->hcs;
        conf->hcs = h->next;
        hc_agent_hc_free(h);
    }
    hc_free(conf->path);
    hc_free(conf->ca_file);
    hc_free(conf->hosts_file);
    hc_free(conf->control_socket);
    hc_free_secret_str(conf->proxy);
    hc_free(conf->no_proxy);
    hc_free(conf->control_group);
    hc_free(conf);
}

static int name_ok(const char *s)
{
    if (*s == '\0' || strlen(s) > 64)
        return 0;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '-' && *s != '_' && *s != '.')
            return 0;
    return 1;
}

/* A connection without a connection_string is reported at the end. */
static int is_ip(const char *s)
{
    unsigned char buf[16];
    return uv_inet_pton(AF_INET, s, buf) == 0 ||
           uv_inet_pton(AF_INET6, s, buf) == 0;
}

static const char *kind_name(const struct hc_agent_hc *h)
{
    return h->role == HC_ROLE_FORWARD ? "forward" : "connection";
}

static void end_connection(struct hc_conf_ctx *ctx, struct load *ld)
{
    if (ld->kind != SEC_CONN)
        return;
    if (!ld->seen_cs)
        hc_conf_err_at(ctx, ld->hc->line,
                       "[%s %s]: connection_string is missing",
                       kind_name(ld->hc), ld->hc->name);
    if (ld->hc->role == HC_ROLE_FORWARD && ld->hc->bind_port == 0)
        hc_conf_err_at(ctx, ld->hc->line,
                       "[forward %s]: bind is missing (PORT or ADDR:PORT)",
                       ld->hc->name);
}

static void begin_section(struct hc_conf_ctx *ctx, struct load *ld,
                          const char *section)
{
    struct hc_agent_conf *conf = ld->conf;

    end_connection(ctx, ld);
    ld->hc = NULL;
    ld->seen_cs = 0;
    if (strcmp(section, "hcmd") == 0) {
        if (ld->seen_hcmd++)
            hc_conf_err(ctx, "[hcmd] appears twice");
        ld->kind = SEC_HCMD;
    } else if (strncmp(section, "connection ", 11) == 0 ||
               strncmp(section, "forward ", 8) == 0) {
        int fwd = section[0] == 'f';
        const char *name = section + (fwd ? 8 : 11);
        struct hc_agent_hc *h, **tail;
        ld->kind = SEC_BAD;
        while (*name == ' ')
            name++;
        if (!name_ok(name)) {
            hc_conf_err(ctx,
                        "bad connection name '%s': 1 to 64 letters, "
                        "digits, - _ .",
                        name);
            return;
        }
        for (h = conf->hcs; h != NULL; h = h->next) {
            if (strcmp(h->name, name) == 0) {
                hc_conf_err(ctx,
                            "the name %s is used twice (first on line "
                            "%d)",
                            name, h->line);
                return;
            }
        }
        h = hc_xcalloc(1, sizeof(*h));
        h->name = hc_xstrdup(name);
        h->role = fwd ? HC_ROLE_FORWARD : HC_ROLE_LISTEN;
        h->line = ctx->lineno;
        for (tail = &conf->hcs; *tail != NULL; tail = &(*tail)->next)
            ;
        *tail = h;
        ld->hc = h;
        ld->kind = SEC_CONN;
    } else {
        ld->kind = SEC_BAD;
        hc_conf_err(ctx,
                    "unknown section [%s] (expected [hcmd], "
                    "[connection NAME] or [forward NAME])",
                    section);
    }
}

static void long_key(struct hc_conf_ctx *ctx, const char *key,
                     const char *value, long min, long max, long *out)
{
    if (hc_conf_long(value, min, max, out) != 0)
        hc_conf_err(ctx, "%s: a number from %ld to %ld", key, min, max);
}

static void on_key(struct hc_conf_ctx *ctx, const char *section,
                   const char *key, const char *value)
{
    struct load *ld = ctx->user;
    struct hc_agent_conf *conf = ld->conf;

    if (key == NULL) {
        begin_section(ctx, ld, section);
        return;
    }
    if (ld->kind == SEC_NONE) {
        hc_conf_err(ctx, "key '%s' outside any section", key);
        return;
    }
    if (ld->kind == SEC_BAD)
        return;

    if (ld->kind == SEC_HCMD) {
        if (strcmp(key, "ca_file") == 0) {
            hc_free(conf->ca_file);
            conf->ca_file = hc_xstrdup(value);
        } else if (strcmp(key, "tls_verify") == 0) {
            if (hc_conf_bool(value, &conf->tls_verify) != 0)
                hc_conf_err(ctx, "tls_verify: expected true or false");
        } else if (strcmp(key, "log_level") == 0) {
            enum hc_log_level lv;
            if (hc_log_parse_level(value, &lv) != 0)
                hc_conf_err(ctx, "log_level: expected error, warn, info or "
                                 "debug");
            else
                conf->log_level = (int)lv;
        } else if (strcmp(key, "max_tunnels") == 0) {
            long_key(ctx, key, value, 1, 100000, &conf->max_tunnels);
        } else if (strcmp(key, "token_lifetime") == 0) {
            long_key(ctx, key, value, 10, 86400, &conf->token_lifetime);
        } else if (strcmp(key, "ping_interval") == 0) {
            long_key(ctx, key, value, 1, 3600, &conf->ping_interval);
        } else if (strcmp(key, "retry_max") == 0) {
            long_key(ctx, key, value, 1, 3600, &conf->retry_max);
        } else if (strcmp(key, "proxy") == 0) {
            struct hc_proxy p;
            char err[200];
            if (hc_proxy_parse(value, &p, err, sizeof(err)) != 0)
                hc_conf_err(ctx, "%s", err);
            hc_free_secret_str(conf->proxy);
            conf->proxy = hc_xstrdup(value);
        } else if (strcmp(key, "no_proxy") == 0) {
            hc_free(conf->no_proxy);
            conf->no_proxy = hc_xstrdup(value);
        } else if (strcmp(key, "control_socket") == 0) {
            if (value[0] != '/')
                hc_conf_err(ctx, "control_socket: an absolute path");
            hc_free(conf->control_socket);
            conf->control_socket = hc_xstrdup(value);
        } else if (strcmp(key, "control_group") == 0) {
            hc_free(conf->control_group);
            conf->control_group = hc_xstrdup(value);
        } else if (strcmp(key, "drain_timeout") == 0) {
            long_key(ctx, key, value, 0, 86400, &conf->drain_timeout);
        } else if (strcmp(key, "connect_timeout") == 0) {
            long_key(ctx, key, value, 1, 600, &conf->connect_timeout);
        } else if (strcmp(key, "hosts_file") == 0) {
            hc_free(conf->hosts_file);
            conf->hosts_file = hc_xstrdup(value);
        } else {
            hc_conf_err(ctx, "unknown key %s in [hcmd]", hc_conf_keyname(key));
        }
    } else if (ld->kind == SEC_CONN) {
        struct hc_agent_hc *h = ld->hc;
        if (strcmp(key, "connection_string") == 0) {
            char err[256];
            ld->seen_cs = 1;
            if (hc_connstr_parse(value, &h->cs, err, sizeof(err)) != 0) {
                hc_conf_err(ctx, "connection_string: %s", err);
            } else if (h->cs.entity_path == NULL) {
                hc_conf_err(ctx, "connection_string: EntityPath is missing "
                                 "(use the hybrid connection's own string)");
            } else if (h->cs.managed_identity) {
                hc_conf_err(ctx, "connection_string: Managed Identity is not "
                                 "supported; use a SAS key");
            } else if (h->cs.key == NULL && h->cs.sas == NULL) {
                hc_conf_err(ctx, "connection_string: SharedAccessKeyName and "
                                 "SharedAccessKey are missing");
            }
        } else if (h->role == HC_ROLE_FORWARD && strcmp(key, "bind") == 0) {
            long port;
            if (hc_conf_long(value, 1, 65535, &port) == 0) {
                h->bind_host[0] = '\0';
                h->bind_port = (int)port;
            } else if (hc_conf_hostport(value, h->bind_host,
                                        sizeof(h->bind_host),
                                        &h->bind_port) != 0 ||
                       h->bind_port == 0 || !is_ip(h->bind_host)) {
                hc_conf_err(ctx, "bind: expected PORT, IP:PORT or "
                                 "[V6]:PORT with a port from 1 to 65535");
                h->bind_port = -1;
            }
        } else if (h->role == HC_ROLE_FORWARD && strcmp(key, "hostname") == 0) {
            int ok = *value != '\0' && strlen(value) < 254;
            for (const char *c = value; *c && ok; c++)
                ok = isalnum((unsigned char)*c) || *c == '-' || *c == '.';
            if (!ok) {
                hc_conf_err(ctx, "hostname: a DNS name (letters, digits, - "
                                 "and .)");
            } else {
                hc_free(h->hostname);
                h->hostname = hc_xstrdup(value);
                h->hostname_line = ctx->lineno;
            }
        } else if (h->role == HC_ROLE_LISTEN && strcmp(key, "endpoint") == 0) {
            if (hc_conf_hostport(value, h->endpoint_host,
                                 sizeof(h->endpoint_host),
                                 &h->endpoint_port) != 0 ||
                h->endpoint_port == 0)
                hc_conf_err(ctx, "endpoint: expected HOST:PORT or [V6]:PORT "
                                 "with a port from 1 to 65535");
            else
                h->has_endpoint = 1;
        } else {
            hc_conf_err(ctx, "unknown key %s in [%s %s]", hc_conf_keyname(key),
                        kind_name(h), h->name);
        }
    }
}

int hc_agent_conf_load(const char *path, struct hc_agent_conf **out,
                       char **errors)
{
    struct hc_agent_conf *conf = hc_xcalloc(1, sizeof(*conf));
    struct hc_conf_ctx ctx;
    struct load ld;
    int rc;

    memset(&ld, 0, sizeof(ld));
    ld.conf = conf;
    conf->path = hc_xstrdup(path);
    conf->tls_verify = 1;
    conf->log_level = HC_LOG_INFO;
    conf->max_tunnels = 1000;
    conf->token_lifetime = 3600;
    conf->ping_interval = 30;
    conf->retry_max = 30;
    conf->connect_timeout = 10;
    conf->drain_timeout = 30;
    rc = hc_conf_parse(path, NULL, on_key, &ld, errors);
    if (rc != 0 && rc != HC_ECONFIG) {
        hc_agent_conf_free(conf);
        return rc;
    }
    memset(&ctx, 0, sizeof(ctx));
    ctx.path = path;
    ctx.errors = *errors;
    ctx.errors_len = *errors ? strlen(*errors) : 0;
    ctx.nerr = rc == HC_ECONFIG;
    end_connection(&ctx, &ld);
    if (conf->hcs == NULL && ctx.nerr == 0)
        hc_conf_err_at(&ctx, 0,
                       "no [connection NAME] or [forward NAME] "
                       "section: nothing to do");
    for (struct hc_agent_hc *h = conf->hcs; h != NULL; h = h->next)
        if (h->role == HC_ROLE_FORWARD && h->hostname != NULL &&
            conf->hosts_file == NULL)
            hc_conf_err_at(&ctx, h->hostname_line,
                           "[forward %s]: hostname needs hosts_file in "
                           "[hcmd]",
                           h->name);
    *errors = ctx.errors;
    if (ctx.nerr) {
        hc_agent_conf_free(conf);
        return HC_ECONFIG;
    }
    *out = conf;
    return 0;
}

/* XML text to plain text: the five entities and &#N; / &#xN; (ASCII). */
static size_t xml_unescape(char *s, size_t len)
{
    static const struct {
        const char *ent;
        char c;
    } ents[] = {{"&lt;", '<'},
                {"&gt;", '>'},
                {"&amp;", '&'},
                {"&quot;", '"'},
                {"&apos;", '\''}};
    size_t o = 0;

    for (size_t i = 0; i < len;) {
        int done = 0;
        if (s[i] == '&') {
            for (size_t e = 0; e < 5 && !done; e++) {
                size_t el = strlen(ents[e].ent);
                if (i + el <= len && memcmp(s + i, ents[e].ent, el) == 0) {
                    s[o++] = ents[e].c;
                    i += el;
                    done = 1;
                }
            }
            if (!done && i + 3 < len && s[i + 1] == '#') {
                char *end;
                int hex = s[i + 2] == 'x' || s[i + 2] == 'X';
                long v = strtol(s + i + 2 + hex, &end, hex ? 16 : 10);
                if (*end == ';' && v > 0 && v < 128) {
                    s[o++] = (char)v;
                    i = (size_t)(end - s) + 1;
                    done = 1;
                }
            }
        }
        if (!done)
            s[o++] = s[i++];
    }
    return o;
}

int hc_agent_meta_endpoint(const char *xml, size_t len, char *host,
                           size_t hostcap, int *port, char *err, size_t errlen)
{
    static const char open_tag[] = "<UserMetadata>";
    static const char close_tag[] = "</UserMetadata>";
    const char *a, *b;
    char *text;
    size_t tlen, i;
    json_t *root;
    json_error_t jerr;
    int rc = HC_ENOTFOUND;

    a = memmem(xml, len, open_tag, sizeof(open_tag) - 1);
    if (a == NULL) {
        snprintf(err, errlen,
                 "the relay's description has no user "
                 "metadata");
        return HC_ENOTFOUND;
    }
    a += sizeof(open_tag) - 1;
    b = memmem(a, len - (size_t)(a - xml), close_tag, sizeof(close_tag) - 1);
    if (b == NULL) {
        snprintf(err, errlen, "the relay's description is malformed");
        return HC_ESYNTAX;
    }
    text = hc_strndup(a, (size_t)(b - a));
    if (text == NULL) {
        snprintf(err, errlen, "out of memory");
        return UV_ENOMEM;
    }
    tlen = xml_unescape(text, (size_t)(b - a));
    while (tlen > 0 && isspace((unsigned char)text[tlen - 1]))
        tlen--;
    text[tlen] = '\0';
    if (strspn(text, " \t\r\n") == tlen) {
        hc_free(text);
        snprintf(err, errlen, "the hybrid connection has no user metadata");
        return HC_ENOTFOUND;
    }
    root = json_loadb(text, tlen, JSON_REJECT_DUPLICATES, &jerr);
    hc_free(text);
    if (root == NULL || !json_is_array(root)) {
        snprintf(err, errlen,
                 "user metadata is not a JSON array of "
                 "{\"key\",\"value\"} items");
        json_decref(root);
        return HC_ESYNTAX;
    }
    snprintf(err, errlen, "user metadata has no \"endpoint\" item");
    for (i = 0; i < json_array_size(root); i++) {
        json_t *it = json_array_get(root, i);
        const char *k = json_string_value(json_object_get(it, "key"));
        const char *v = json_string_value(json_object_get(it, "value"));
        if (k == NULL || strcmp(k, "endpoint") != 0)
            continue;
        if (v == NULL || hc_conf_hostport(v, host, hostcap, port) != 0 ||
            *port == 0) {
            snprintf(err, errlen, "user metadata endpoint is not HOST:PORT");
            rc = HC_ESYNTAX;
        } else {
            err[0] = '\0';
            rc = 0;
        }
        break;
    }
    json_decref(root);
    return rc;
}
