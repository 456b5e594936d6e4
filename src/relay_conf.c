#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "hc_conf.h"
#include "hc_err.h"
#include "hc_log.h"
#include "hc_mem.h"
#include "hc_relay.h"

struct load {
    struct hc_relay_conf *conf;
    /* The section being read: which object keys go to. */
    enum { SEC_NONE, SEC_RELAY, SEC_RULE, SEC_HC, SEC_BAD } kind;
    struct hc_relay_rule *rule;
    struct hc_relay_hc *hc;
    char section[300];
    int seen_listen, seen_cert, seen_key, seen_relay;
    /* Rules on hybrid connections not defined yet, resolved at the end. */
    struct pending_rule {
        char *hc_name;
        struct hc_relay_rule *rule;
        struct pending_rule *next;
    } * pending;
    /* Keys seen in the current section, to refuse duplicates. */
};

static int name_ok(const char *s, int allow_slash)
{
    if (*s == '\0' || strlen(s) > 260)
        return 0;
    for (; *s; s++) {
        if (isalnum((unsigned char)*s) || *s == '-' || *s == '_' || *s == '.')
            continue;
        if (allow_slash && *s == '/' && s[1] != '/' && s[1] != '\0')
            continue;
        return 0;
    }
    return 1;
}

static void rule_free(struct hc_relay_rule *r)
{
    while (r != NULL) {
        struct hc_relay_rule *next = r->next;
        hc_free(r->name);
        hc_free_secret_str(r->primary_key);
        hc_free_secret_str(r->secondary_key);
        hc_free(r);
        r = next;
    }
}

void hc_relay_conf_free_rules(struct hc_relay_hc *hc)
{
    rule_free(hc->rules);
    hc->rules = NULL;
}

void hc_relay_conf_free_hc(struct hc_relay_hc *h)
{
    rule_free(h->rules);
    hc_free(h->name);
    hc_free(h->user_metadata);
    hc_free(h);
}

void hc_relay_conf_free(struct hc_relay_conf *conf)
{
    if (conf == NULL)
        return;
    rule_free(conf->rules);
    for (struct hc_relay_hc *h = conf->hcs, *next; h != NULL; h = next) {
        next = h->next;
        hc_relay_conf_free_hc(h);
    }
    hc_free(conf->path);
    hc_free(conf->cert_file);
    hc_free(conf->key_file);
    hc_free(conf->hostname);
    hc_free(conf);
}

struct hc_relay_hc *hc_relay_conf_find_hc(const struct hc_relay_conf *conf,
                                          const char *name)
{
    for (struct hc_relay_hc *h = conf->hcs; h != NULL; h = h->next)
        if (strcasecmp(h->name, name) == 0)
            return h;
    return NULL;
}

static struct hc_relay_rule *find_rule_in(struct hc_relay_rule *list,
                                          const char *name)
{
    for (; list != NULL; list = list->next)
        if (strcmp(list->name, name) == 0)
            return list;
    return NULL;
}

struct hc_relay_rule *hc_relay_conf_find_rule(const struct hc_relay_conf *conf,
                                              const char *spec,
                                              const char **hc_name)
{
    const char *slash = strrchr(spec, '/');
    *hc_name = NULL;
    if (slash == NULL)
        return find_rule_in(conf->rules, spec);
    for (struct hc_relay_hc *h = conf->hcs; h != NULL; h = h->next) {
        if (strlen(h->name) == (size_t)(slash - spec) &&
            strncasecmp(h->name, spec, (size_t)(slash - spec)) == 0) {
            *hc_name = h->name;
            return find_rule_in(h->rules, slash + 1);
        }
    }
    return NULL;
}

static void begin_section(struct hc_conf_ctx *ctx, struct load *ld,
                          const char *section)
{
    struct hc_relay_conf *conf = ld->conf;

    snprintf(ld->section, sizeof(ld->section), "%s", section);
    ld->rule = NULL;
    ld->hc = NULL;
    if (strcmp(section, "relay") == 0) {
        if (ld->seen_relay++)
            hc_conf_err(ctx, "[relay] appears twice");
        ld->kind = SEC_RELAY;
    } else if (strncmp(section, "rule ", 5) == 0) {
        const char *spec = section + 5;
        const char *slash = strrchr(spec, '/');
        const char *rname = slash ? slash + 1 : spec;
        struct hc_relay_rule *r;
        ld->kind = SEC_BAD;
        while (*spec == ' ')
            spec++;
        if (slash != NULL) {
            char hcname[300];
            snprintf(hcname, sizeof(hcname), "%.*s", (int)(slash - spec), spec);
            if (!name_ok(hcname, 1)) {
                hc_conf_err(ctx, "bad hybrid connection name in [%s]", section);
                return;
            }
        }
        if (!name_ok(rname, 0)) {
            hc_conf_err(ctx,
                        "bad rule name in [%s]: use [rule NAME] or "
                        "[rule HC/NAME] with letters, digits, - _ .",
                        section);
            return;
        }
        r = hc_xcalloc(1, sizeof(*r));
        r->name = hc_xstrdup(rname);
        r->line = ctx->lineno;
        if (slash == NULL) {
            if (find_rule_in(conf->rules, rname) != NULL)
                hc_conf_err(ctx, "rule %s is defined twice", rname);
            r->next = conf->rules;
            conf->rules = r;
        } else {
            struct pending_rule *p = hc_xcalloc(1, sizeof(*p)), **tail;
            p->hc_name = hc_xcalloc(1, (size_t)(slash - spec) + 1);
            memcpy(p->hc_name, spec, (size_t)(slash - spec));
            p->rule = r;
            /* In file order, so a duplicate is reported at its own line. */
            for (tail = &ld->pending; *tail != NULL; tail = &(*tail)->next)
                ;
            *tail = p;
        }
        ld->rule = r;
        ld->kind = SEC_RULE;
    } else if (strncmp(section, "hybrid-connection ", 18) == 0) {
        const char *name = section + 18;
        struct hc_relay_hc *h, **tail;
        ld->kind = SEC_BAD;
        while (*name == ' ')
            name++;
        if (!name_ok(name, 1)) {
            hc_conf_err(ctx,
                        "bad hybrid connection name '%s': letters, "
                        "digits, - _ . and /",
                        name);
            return;
        }
        if (hc_relay_conf_find_hc(conf, name) != NULL) {
            hc_conf_err(ctx, "hybrid connection %s is defined twice", name);
            return;
        }
        h = hc_xcalloc(1, sizeof(*h));
        h->name = hc_xstrdup(name);
        h->requires_client_authorization = 1;
        h->line = ctx->lineno;
        for (tail = &conf->hcs; *tail != NULL; tail = &(*tail)->next)
            ;
        *tail = h;
        ld->hc = h;
        ld->kind = SEC_HC;
    } else {
        ld->kind = SEC_BAD;
        hc_conf_err(ctx,
                    "unknown section [%s] (expected [relay], [rule ...] "
                    "or [hybrid-connection ...])",
                    section);
    }
}

static int parse_rights(const char *v, int *out)
{
    char buf[128];
    char *save = NULL, *tok;
    int rights = 0;

    if (strlen(v) >= sizeof(buf))
        return UV_EINVAL;
    strcpy(buf, v);
    for (tok = strtok_r(buf, " ,", &save); tok != NULL;
         tok = strtok_r(NULL, " ,", &save)) {
        if (strcasecmp(tok, "Listen") == 0)
            rights |= HC_RIGHT_LISTEN;
        else if (strcasecmp(tok, "Send") == 0)
            rights |= HC_RIGHT_SEND;
        else if (strcasecmp(tok, "Manage") == 0)
            rights |= HC_RIGHT_MANAGE | HC_RIGHT_LISTEN | HC_RIGHT_SEND;
        else
            return UV_EINVAL;
    }
    if (rights == 0)
        return UV_EINVAL;
    *out = rights;
    return 0;
}

static int key_ok(const char *v)
{
    size_t len = strlen(v);
    if (len < 16 || len > 256)
        return 0;
    for (; *v; v++)
        if (!isgraph((unsigned char)*v) || *v == ';')
            return 0;
    return 1;
}

static void set_str(char **dst, const char *v)
{
    hc_free(*dst);
    *dst = hc_xstrdup(v);
}

static void on_key(struct hc_conf_ctx *ctx, const char *section,
                   const char *key, const char *value)
{
    struct load *ld = ctx->user;
    struct hc_relay_conf *conf = ld->conf;
    long n;

    if (key == NULL) {
        begin_section(ctx, ld, section);
        return;
    }
    if (ld->section[0] == '\0') {
        hc_conf_err(ctx, "key '%s' outside any section", key);
        return;
    }
    if (ld->kind == SEC_BAD)
        return;

    if (ld->kind == SEC_RELAY) {
        if (strcmp(key, "listen") == 0) {
            ld->seen_listen = 1;
            if (hc_conf_hostport(value, conf->listen_host,
                                 sizeof(conf->listen_host),
                                 &conf->listen_port) != 0)
                hc_conf_err(ctx,
                            "listen: expected HOST:PORT or [V6]:PORT, "
                            "got '%s'",
                            value);
        } else if (strcmp(key, "cert_file") == 0) {
            ld->seen_cert = 1;
            set_str(&conf->cert_file, value);
        } else if (strcmp(key, "key_file") == 0) {
            ld->seen_key = 1;
            set_str(&conf->key_file, value);
        } else if (strcmp(key, "hostname") == 0) {
            if (!name_ok(value, 0))
                hc_conf_err(ctx, "hostname: not a host name: '%s'", value);
            else
                set_str(&conf->hostname, value);
        } else if (strcmp(key, "log_level") == 0) {
            enum hc_log_level lv;
            if (hc_log_parse_level(value, &lv) != 0)
                hc_conf_err(ctx, "log_level: expected error, warn, info or "
                                 "debug");
            else
                conf->log_level = (int)lv;
        } else if (strcmp(key, "max_connections") == 0) {
            if (hc_conf_long(value, 1, 1000000, &n) != 0)
                hc_conf_err(ctx, "max_connections: a number from 1 to "
                                 "1000000");
            else
                conf->max_connections = n;
        } else if (strcmp(key, "handshake_timeout") == 0) {
            if (hc_conf_long(value, 1, 3600, &n) != 0)
                hc_conf_err(ctx, "handshake_timeout: seconds, 1 to 3600");
            else
                conf->handshake_timeout = n;
        } else if (strcmp(key, "rendezvous_timeout") == 0) {
            if (hc_conf_long(value, 1, 3600, &n) != 0)
                hc_conf_err(ctx, "rendezvous_timeout: seconds, 1 to 3600");
            else
                conf->rendezvous_timeout = n;
        } else if (strcmp(key, "clock_skew") == 0) {
            if (hc_conf_long(value, 0, 3600, &n) != 0)
                hc_conf_err(ctx, "clock_skew: seconds, 0 to 3600");
            else
                conf->clock_skew = n;
        } else if (strcmp(key, "ping_interval") == 0) {
            if (hc_conf_long(value, 0, 3600, &n) != 0)
                hc_conf_err(ctx, "ping_interval: seconds, 0 to 3600");
            else
                conf->ping_interval = n;
        } else if (strcmp(key, "token_grace") == 0) {
            if (hc_conf_long(value, 0, 86400, &n) != 0)
                hc_conf_err(ctx, "token_grace: seconds, 0 to 86400");
            else
                conf->token_grace = n;
        } else {
            hc_conf_err(ctx, "unknown key %s in [relay]", hc_conf_keyname(key));
        }
    } else if (ld->kind == SEC_RULE) {
        struct hc_relay_rule *r = ld->rule;
        if (strcmp(key, "rights") == 0) {
            if (parse_rights(value, &r->rights) != 0)
                hc_conf_err(ctx, "rights: one or more of Manage, Listen, "
                                 "Send");
        } else if (strcmp(key, "primary_key") == 0 ||
                   strcmp(key, "secondary_key") == 0) {
            /* Never echo a key into a message. */
            if (!key_ok(value))
                hc_conf_err(ctx,
                            "%s: 16 to 256 printable characters "
                            "without spaces or ';'",
                            key);
            else if (key[0] == 'p')
                set_str(&r->primary_key, value);
            else
                set_str(&r->secondary_key, value);
        } else {
            hc_conf_err(ctx, "unknown key %s in [%s]", hc_conf_keyname(key),
                        section);
        }
    } else if (ld->kind == SEC_HC) {
        struct hc_relay_hc *h = ld->hc;
        if (strcmp(key, "requires_client_authorization") == 0) {
            if (hc_conf_bool(value, &h->requires_client_authorization) != 0)
                hc_conf_err(ctx, "%s: expected true or false", key);
        } else if (strcmp(key, "user_metadata") == 0) {
            if (strlen(value) > 1024)
                hc_conf_err(ctx, "user_metadata: at most 1024 characters");
            else
                set_str(&h->user_metadata, value);
        } else {
            hc_conf_err(ctx, "unknown key %s in [%s]", hc_conf_keyname(key),
                        section);
        }
    }
}

static void check_rules(struct hc_conf_ctx *ctx, struct load *ld)
{
    struct hc_relay_conf *conf = ld->conf;

    while (ld->pending != NULL) {
        struct pending_rule *p = ld->pending;
        struct hc_relay_hc *h = hc_relay_conf_find_hc(conf, p->hc_name);
        ld->pending = p->next;
        if (h == NULL) {
            hc_conf_err_at(ctx, p->rule->line,
                           "rule %s/%s: no [hybrid-connection %s]", p->hc_name,
                           p->rule->name, p->hc_name);
            rule_free(p->rule);
        } else if (find_rule_in(h->rules, p->rule->name) != NULL) {
            hc_conf_err_at(ctx, p->rule->line, "rule %s/%s is defined twice",
                           p->hc_name, p->rule->name);
            rule_free(p->rule);
        } else {
            p->rule->next = h->rules;
            h->rules = p->rule;
        }
        hc_free(p->hc_name);
        hc_free(p);
    }
    for (struct hc_relay_rule *r = conf->rules; r != NULL; r = r->next) {
        if (r->rights == 0)
            hc_conf_err_at(ctx, r->line, "rule %s: 'rights' is missing",
                           r->name);
        if (r->primary_key == NULL)
            hc_conf_err_at(ctx, r->line, "rule %s: 'primary_key' is missing",
                           r->name);
    }
    for (struct hc_relay_hc *h = conf->hcs; h != NULL; h = h->next) {
        for (struct hc_relay_rule *r = h->rules; r != NULL; r = r->next) {
            if (r->rights == 0)
                hc_conf_err_at(ctx, r->line, "rule %s/%s: 'rights' is missing",
                               h->name, r->name);
            if (r->primary_key == NULL)
                hc_conf_err_at(ctx, r->line,
                               "rule %s/%s: 'primary_key' is missing", h->name,
                               r->name);
        }
    }
    if (!ld->seen_listen)
        hc_conf_err_at(ctx, 0, "[relay] listen is missing");
    if (!ld->seen_cert)
        hc_conf_err_at(ctx, 0, "[relay] cert_file is missing");
    if (!ld->seen_key)
        hc_conf_err_at(ctx, 0, "[relay] key_file is missing");
}

int hc_relay_conf_load(const char *path, struct hc_relay_conf **out,
                       char **errors)
{
    struct hc_relay_conf *conf = hc_xcalloc(1, sizeof(*conf));
    struct load ld;
    struct hc_conf_ctx ctx;
    int rc;

    memset(&ld, 0, sizeof(ld));
    ld.conf = conf;
    conf->path = hc_xstrdup(path);
    conf->hostname = hc_xstrdup("localhost");
    conf->log_level = HC_LOG_INFO;
    conf->max_connections = 10000;
    conf->handshake_timeout = 10;
    conf->rendezvous_timeout = 30;
    conf->token_grace = 300;
    conf->ping_interval = 30;
    conf->clock_skew = 60;
    rc = hc_conf_parse(path, NULL, on_key, &ld, errors);
    if (rc != 0 && rc != HC_ECONFIG) {
        while (ld.pending != NULL) {
            struct pending_rule *p = ld.pending;
            ld.pending = p->next;
            rule_free(p->rule);
            hc_free(p->hc_name);
            hc_free(p);
        }
        hc_relay_conf_free(conf);
        return rc;
    }
    /* Checks that need the whole file; they append to the same list. */
    memset(&ctx, 0, sizeof(ctx));
    ctx.path = path;
    ctx.errors = *errors;
    ctx.errors_len = *errors ? strlen(*errors) : 0;
    ctx.nerr = rc == HC_ECONFIG;
    check_rules(&ctx, &ld);
    *errors = ctx.errors;
    if (ctx.nerr) {
        hc_relay_conf_free(conf);
        return HC_ECONFIG;
    }
    *out = conf;
    return 0;
}
