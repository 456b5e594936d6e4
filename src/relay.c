/*
 * relay.c - hcrelay's server: listener control channels, senders, the
 * rendezvous that joins them, and the runtime entity description.
 *
 * Every accepted connection gets a struct rconn with a role. A sender waits
 * (its 101 held back) in a table keyed by a one-time rendezvous id until the
 * chosen listener opens the accept address; then both get their 101 and
 * frames pass between them unchanged, with backpressure both ways.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hc_conn.h"
#include "hc_err.h"
#include "hc_http.h"
#include "hc_json.h"
#include "hc_log.h"
#include "hc_mem.h"
#include "hc_rand.h"
#include "hc_relay.h"
#include "hc_sas.h"
#include "hc_url.h"

#define RV_BUCKETS 1024
#define CTL_MSG_MAX (64 * 1024)
#define TOKEN_MAX 4096

enum role {
    ROLE_NEW,
    ROLE_HTTP,      /* a plain HTTP answer is on its way */
    ROLE_LISTENER,  /* control channel */
    ROLE_WAITING,   /* sender held until the listener joins */
    ROLE_SENDER,    /* joined sender */
    ROLE_RENDEZVOUS /* joined listener side */
};

struct hc_rt; /* runtime state of one hybrid connection */

struct rconn {
    struct hc_relay *r;
    struct hc_conn *c;
    enum role role;
    struct rconn *all_prev, *all_next;
    struct hc_rt *rt;
    /* listener */
    struct rconn *lnext;
    char lid[130];
    uint64_t token_expiry;
    uint64_t ping_ms; /* when the last ping went out (or counting began) */
    int pings_out;    /* pings since the last pong */
    uint8_t *msg;
    size_t msg_len;
    int msg_opcode, msg_fin, msg_skip;
    /* waiting sender */
    char *rv_id;
    struct rconn *rv_next;
    char ws_key[65];
    /* joined */
    struct rconn *peer;
    int paused; /* our reads stopped because the peer is slow */
    uint64_t started_ms;
};

struct hc_rt {
    struct hc_relay_hc *hc;
    int removed; /* its hybrid connection left the configuration */
    struct rconn *listeners;
    int nlisteners;
    struct hc_rt *next;
};

struct hc_relay {
    uv_loop_t *loop;
    struct hc_io *io;
    struct hc_tls_conf *tls;
    struct hc_relay_conf *conf;
    uv_tcp_t server;
    uv_timer_t tick;
    int server_open, port, stopping;
    long nconns;
    struct hc_rt *rts;
    struct rconn *all;
    struct rconn *rv[RV_BUCKETS];
    char created[40];
    /* Hybrid connections removed by a reload that tunnels still name. */
    struct hc_relay_hc *retired;
};

static const struct hc_conn_cbs relay_cbs;

/* ---- small helpers ---- */

static unsigned rv_hash(const char *s)
{
    unsigned h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h % RV_BUCKETS;
}

static void iso_time(time_t t, char *out, size_t len)
{
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, len, "%Y-%m-%dT%H:%M:%S.0000000Z", &tm);
}

/* Characters safe in a status line or a log: printable ASCII only. */
static void sanitize(char *s, size_t max)
{
    size_t i;
    for (i = 0; s[i] && i < max; i++)
        if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e)
            s[i] = ' ';
    s[i] = '\0';
}

/* Decoded value of query parameter name, or NULL (hc_malloc'd). */
static char *query_value(const char *q, size_t qlen, const char *name,
                         int plus_is_space)
{
    const char *v;
    size_t vlen;
    char *out;

    if (!hc_query_get(q, qlen, name, &v, &vlen))
        return NULL;
    out = hc_malloc(vlen + 1);
    if (out == NULL)
        return NULL;
    if (hc_url_decode(out, v, vlen, plus_is_space) < 0) {
        hc_free(out);
        return NULL;
    }
    return out;
}

static char *header_value(const struct hc_http_head *h, const char *name)
{
    const struct hc_http_header *hd = hc_http_find(h, name);
    return hd ? hc_strndup(hd->value, hd->value_len) : NULL;
}

/* ---- HTTP answers ---- */

static void respond(struct rconn *rc, int status, const char *reason,
                    const char *extra, const char *ctype, const char *body)
{
    char head[1024];
    size_t blen = body ? strlen(body) : 0;
    int n;

    if (reason == NULL)
        reason = hc_http_reason(status);
    n = snprintf(head, sizeof(head),
                 "HTTP/1.1 %d %s\r\nContent-Length: %zu\r\n%s%s%s%s"
                 "Connection: close\r\n\r\n",
                 status, reason, blen, ctype ? "Content-Type: " : "",
                 ctype ? ctype : "", ctype ? "\r\n" : "", extra ? extra : "");
    rc->role = ROLE_HTTP;
    hc_conn_write(rc->c, head,
                  (size_t)n < sizeof(head) ? (size_t)n : sizeof(head) - 1);
    if (blen > 0)
        hc_conn_write(rc->c, body, blen);
    hc_conn_close(rc->c, 0, reason);
}

static void respond_101(struct hc_conn *c, const char *key, size_t key_len,
                        const char *protocol)
{
    char accept[29];
    char head[512];
    int n;

    hc_http_ws_accept(key, key_len, accept);
    n = snprintf(head, sizeof(head),
                 "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                 "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n%s%s%s"
                 "\r\n",
                 accept, protocol ? "Sec-WebSocket-Protocol: " : "",
                 protocol ? protocol : "", protocol ? "\r\n" : "");
    hc_conn_write(c, head, (size_t)n);
    hc_conn_ws_start(c);
}

/* ---- runtime state per hybrid connection ---- */

static struct hc_rt *rt_for(struct hc_relay *r, struct hc_relay_hc *hc)
{
    struct hc_rt *rt;
    for (rt = r->rts; rt != NULL; rt = rt->next)
        if (rt->hc == hc)
            return rt;
    rt = hc_xcalloc(1, sizeof(*rt));
    rt->hc = hc;
    rt->next = r->rts;
    r->rts = rt;
    return rt;
}

/*
 * The hybrid connection a decoded path names: the longest configured name
 * that is the path or a prefix of it on a '/' boundary, ignoring case.
 */
static struct hc_relay_hc *find_entity(struct hc_relay *r, const char *path)
{
    struct hc_relay_hc *best = NULL;
    size_t best_len = 0;

    for (struct hc_relay_hc *h = r->conf->hcs; h != NULL; h = h->next) {
        size_t n = strlen(h->name);
        if (n > best_len && strncasecmp(path, h->name, n) == 0 &&
            (path[n] == '\0' || path[n] == '/')) {
            best = h;
            best_len = n;
        }
    }
    return best;
}

static struct hc_relay_rule *find_rule(struct hc_relay_rule *list,
                                       const char *name)
{
    for (; list != NULL; list = list->next)
        if (strcmp(list->name, name) == 0)
            return list;
    return NULL;
}

/*
 * Check a SAS token for a right on a path (entity plus any suffix). Returns
 * 0, or the HTTP status to answer (401 or 403) with a reason in why.
 */
static int authorize(struct hc_relay *r, struct hc_relay_hc *hc,
                     const char *path, const char *token, size_t len, int right,
                     uint64_t *expiry, char *why, size_t whylen)
{
    struct hc_sas_token t;
    struct hc_relay_rule *rule;
    uint64_t now = (uint64_t)time(NULL);

    if (token == NULL || len == 0) {
        snprintf(why, whylen, "token missing");
        return 401;
    }
    if (hc_sas_parse(token, len, &t) != 0) {
        snprintf(why, whylen, "token malformed");
        return 401;
    }
    rule = find_rule(hc->rules, t.skn);
    if (rule == NULL)
        rule = find_rule(r->conf->rules, t.skn);
    if (rule == NULL) {
        snprintf(why, whylen, "no rule named in token");
        return 401;
    }
    if (hc_sas_verify(&t, rule->primary_key) != 0 &&
        (rule->secondary_key == NULL ||
         hc_sas_verify(&t, rule->secondary_key) != 0)) {
        snprintf(why, whylen, "invalid signature for rule %s", rule->name);
        return 401;
    }
    if (hc_sas_check_expiry(&t, now, (uint64_t)r->conf->clock_skew) != 0) {
        snprintf(why, whylen, "token expired");
        return 401;
    }
    if (!hc_sas_in_scope(&t, r->conf->hostname, path)) {
        snprintf(why, whylen, "token not valid for %s", path);
        return 403;
    }
    if (!(rule->rights & (right | HC_RIGHT_MANAGE))) {
        snprintf(why, whylen, "rule %s lacks the %s right", rule->name,
                 right == HC_RIGHT_LISTEN ? "Listen" : "Send");
        return 403;
    }
    if (expiry != NULL)
        *expiry = t.se;
    return 0;
}

/* The token of a request: header first, then the sb-hc-token query. */
static char *request_token(const struct hc_http_head *h, const char *q,
                           size_t qlen, int allow_authorization)
{
    const struct hc_http_header *hd =
        hc_http_find(h, "ServiceBusAuthorization");
    if (hd == NULL && allow_authorization)
        hd = hc_http_find(h, "Authorization");
    if (hd != NULL)
        return hd->value_len <= TOKEN_MAX ? hc_strndup(hd->value, hd->value_len)
                                          : NULL;
    return query_value(q, qlen, "sb-hc-token", 1);
}

/* ---- listeners ---- */

static void listener_remove(struct rconn *rc)
{
    struct rconn **pp;
    if (rc->rt == NULL)
        return;
    for (pp = &rc->rt->listeners; *pp != NULL; pp = &(*pp)->lnext) {
        if (*pp == rc) {
            *pp = rc->lnext;
            rc->rt->nlisteners--;
            break;
        }
    }
    rc->rt = NULL;
}

static void ctl_message(struct rconn *rc)
{
    struct hc_ctl_msg m;
    char why[200];
    uint64_t expiry;
    int status;

    if (rc->msg_opcode != WSLAY_TEXT_FRAME) {
        hc_log_debug("conn %u: binary message on control channel ignored",
                     rc->c->id);
        return;
    }
    if (hc_json_parse_ctl((const char *)rc->msg, rc->msg_len, &m) != 0) {
        hc_log_warn("listener %s: malformed control message", rc->lid);
        hc_conn_send_close(rc->c, 1008, "malformed control message", 25);
        return;
    }
    if (m.type == HC_CTL_RENEW_TOKEN) {
        status = authorize(rc->r, rc->rt->hc, rc->rt->hc->name, m.token,
                           strlen(m.token), HC_RIGHT_LISTEN, &expiry, why,
                           sizeof(why));
        if (status != 0) {
            hc_log_warn("listener %s: renewToken refused: %s", rc->lid, why);
            hc_conn_send_close(rc->c, 1008, why, strlen(why));
        } else {
            rc->token_expiry = expiry;
            hc_log_debug("listener %s: token renewed", rc->lid);
        }
    } else {
        char name[80];
        hc_log_debug("listener %s: ignoring control message %s", rc->lid,
                     hc_log_escape(name, sizeof(name), m.name,
                                   m.name ? strlen(m.name) : 0));
    }
    hc_ctl_msg_free(&m);
}

static void listen_request(struct rconn *rc, struct hc_relay_hc *hc,
                           const char *path, const struct hc_http_head *h,
                           const char *q, size_t qlen, const char *key,
                           size_t key_len)
{
    struct hc_relay *r = rc->r;
    struct hc_rt *rt = rt_for(r, hc);
    char why[200];
    char *token = request_token(h, q, qlen, 0);
    char *id;
    uint64_t expiry = 0;
    int status = authorize(r, hc, path, token, token ? strlen(token) : 0,
                           HC_RIGHT_LISTEN, &expiry, why, sizeof(why));

    hc_free_secret_str(token);
    if (status != 0) {
        hc_log_warn("conn %u: listen on %s from %s refused: %s", rc->c->id,
                    hc->name, rc->c->peer_addr, why);
        respond(rc, status, status == 401 ? "Unauthorized" : "Forbidden", NULL,
                NULL, NULL);
        return;
    }
    if (rt->nlisteners >= HC_RELAY_MAX_LISTENERS) {
        hc_log_warn("conn %u: listen on %s refused: %d listeners already",
                    rc->c->id, hc->name, rt->nlisteners);
        respond(rc, 403,
                "QuotaExceeded: at most 25 listeners per hybrid connection",
                NULL, NULL, NULL);
        return;
    }
    id = query_value(q, qlen, "sb-hc-id", 0);
    if (id != NULL && strlen(id) < sizeof(rc->lid) && id[0] != '\0') {
        snprintf(rc->lid, sizeof(rc->lid), "%s", id);
        sanitize(rc->lid, sizeof(rc->lid) - 1);
    } else {
        hc_guid(rc->lid);
    }
    hc_free(id);
    rc->role = ROLE_LISTENER;
    rc->rt = rt;
    rc->token_expiry = expiry;
    rc->lnext = rt->listeners;
    rt->listeners = rc;
    rt->nlisteners++;
    respond_101(rc->c, key, key_len, NULL);
    hc_log_info("listener %s on %s connected from %s:%d (%d listening)",
                rc->lid, hc->name, rc->c->peer_addr, rc->c->peer_port,
                rt->nlisteners);
}

/* ---- senders and the rendezvous ---- */

static void rv_remove(struct rconn *rc)
{
    struct rconn **pp;
    if (rc->rv_id == NULL)
        return;
    for (pp = &rc->r->rv[rv_hash(rc->rv_id)]; *pp != NULL;
         pp = &(*pp)->rv_next) {
        if (*pp == rc) {
            *pp = rc->rv_next;
            break;
        }
    }
    hc_free(rc->rv_id);
    rc->rv_id = NULL;
}

static struct rconn *rv_take(struct hc_relay *r, const char *id)
{
    struct rconn **pp;
    for (pp = &r->rv[rv_hash(id)]; *pp != NULL; pp = &(*pp)->rv_next) {
        if (strcmp((*pp)->rv_id, id) == 0) {
            struct rconn *rc = *pp;
            *pp = rc->rv_next;
            hc_free(rc->rv_id);
            rc->rv_id = NULL;
            return rc;
        }
    }
    return NULL;
}

static void sender_timeout(struct hc_conn *c)
{
    struct rconn *rc = c->data;
    hc_log_warn("conn %u: no listener joined rendezvous %s in time", c->id,
                rc->rv_id ? rc->rv_id : "?");
    rv_remove(rc);
    respond(rc, 404,
            "ConnectionNotEstablished: none of the connected listeners "
            "accepted the connection in time",
            NULL, NULL, NULL);
}

static void connect_request(struct rconn *rc, struct hc_relay_hc *hc,
                            const char *path, const char *raw_path,
                            const struct hc_http_head *h, const char *q,
                            size_t qlen, const char *key, size_t key_len)
{
    struct hc_relay *r = rc->r;
    struct hc_rt *rt = rt_for(r, hc);
    struct hc_http_header hdrs[HC_HTTP_MAX_HEADERS];
    struct rconn *l;
    char addr[4096], guid[37], id[200], why[200];
    char *sid, *json, *encid;
    const char *cur = q, *end = q + qlen;
    struct hc_query_param p;
    size_t n = 0, alen;
    uint32_t pick;

    if (hc->requires_client_authorization) {
        char *token = request_token(h, q, qlen, 0);
        int status = authorize(r, hc, path, token, token ? strlen(token) : 0,
                               HC_RIGHT_SEND, NULL, why, sizeof(why));
        hc_free_secret_str(token);
        if (status != 0) {
            hc_log_warn("conn %u: connect to %s from %s refused: %s", rc->c->id,
                        hc->name, rc->c->peer_addr, why);
            respond(rc, status, status == 401 ? "Unauthorized" : "Forbidden",
                    NULL, NULL, NULL);
            return;
        }
    }
    if (rt->nlisteners == 0) {
        hc_log_info("conn %u: connect to %s: no listener", rc->c->id, hc->name);
        respond(rc, 404, "There are no listeners connected for the endpoint",
                NULL, NULL, NULL);
        return;
    }
    hc_random(&pick, sizeof(pick));
    pick %= (uint32_t)rt->nlisteners;
    for (l = rt->listeners; pick > 0; pick--)
        l = l->lnext;

    /* The id: the sender's own, if any, plus 128 random bits. */
    hc_guid(guid);
    sid = query_value(q, qlen, "sb-hc-id", 0);
    if (sid != NULL && sid[0] != '\0' && strlen(sid) <= 128) {
        for (char *s = sid; *s; s++)
            if (!isalnum((unsigned char)*s) && *s != '-' && *s != '.')
                *s = '-';
        snprintf(id, sizeof(id), "%s_%s", sid, guid);
    } else {
        snprintf(id, sizeof(id), "%s", guid);
    }
    hc_free(sid);

    /* Address: the sender's path and its own query, then ours. */
    alen = (size_t)snprintf(addr, sizeof(addr), "wss://%s:%d%s?",
                            r->conf->hostname, r->port, raw_path);
    while (hc_query_next(&cur, end, &p)) {
        if (p.name_len >= 6 && strncmp(p.name, "sb-hc-", 6) == 0)
            continue;
        if (alen + p.name_len + p.value_len + 2 >= sizeof(addr) - 200)
            break;
        alen += (size_t)snprintf(
            addr + alen, sizeof(addr) - alen, "%.*s%s%.*s&", (int)p.name_len,
            p.name, p.value_len || p.value != p.name + p.name_len ? "=" : "",
            (int)p.value_len, p.value);
    }
    encid = hc_url_encode(id, strlen(id));
    if (encid == NULL) {
        respond(rc, 500, NULL, NULL, NULL, NULL);
        return;
    }
    snprintf(addr + alen, sizeof(addr) - alen,
             "sb-hc-action=accept&sb-hc-id=%s", encid);
    hc_free(encid);

    /* The listener sees the sender's headers, but never its credentials. */
    for (size_t i = 0; i < h->nheaders; i++) {
        const struct hc_http_header *hd = &h->headers[i];
        if ((hd->name_len == 23 &&
             strncasecmp(hd->name, "ServiceBusAuthorization", 23) == 0) ||
            (hd->name_len == 13 &&
             strncasecmp(hd->name, "Authorization", 13) == 0))
            continue;
        hdrs[n++] = *hd;
    }
    json = hc_json_accept(addr, id, hdrs, n,
                          rc->c->peer_addr[0] ? rc->c->peer_addr : NULL,
                          rc->c->peer_port);
    if (json == NULL) {
        respond(rc, 500, NULL, NULL, NULL, NULL);
        return;
    }
    hc_conn_send_frame(l->c, WSLAY_TEXT_FRAME, 1, json, strlen(json));
    hc_free(json);

    rc->role = ROLE_WAITING;
    rc->rt = rt;
    rc->rv_id = hc_xstrdup(id);
    snprintf(rc->ws_key, sizeof(rc->ws_key), "%.*s", (int)key_len, key);
    rc->rv_next = r->rv[rv_hash(id)];
    r->rv[rv_hash(id)] = rc;
    hc_conn_set_timer(rc->c, (uint64_t)r->conf->rendezvous_timeout * 1000,
                      sender_timeout);
    hc_log_debug("conn %u: sender for %s from %s:%d offered to listener %s "
                 "as %s",
                 rc->c->id, hc->name, rc->c->peer_addr, rc->c->peer_port,
                 l->lid, id);
}

static void accept_request(struct rconn *rc, const struct hc_http_head *h,
                           const char *q, size_t qlen, const char *key,
                           size_t key_len)
{
    struct hc_relay *r = rc->r;
    char *id = query_value(q, qlen, "sb-hc-id", 0);
    struct rconn *s = id ? rv_take(r, id) : NULL;
    char *code_s, *desc;

    if (s == NULL) {
        hc_log_warn("conn %u: rendezvous address invalid or expired",
                    rc->c->id);
        hc_free(id);
        respond(rc, 403, "Rendezvous address is invalid or expired", NULL, NULL,
                NULL);
        return;
    }
    hc_conn_stop_timer(s->c);
    code_s = query_value(q, qlen, "sb-hc-statusCode", 1);
    if (code_s == NULL)
        code_s = query_value(q, qlen, "statusCode", 1);
    if (code_s != NULL) {
        /* The listener rejects: it gets 410, the sender its status. */
        char reason[260];
        long code = strtol(code_s, NULL, 10);
        desc = query_value(q, qlen, "sb-hc-statusDescription", 1);
        if (desc == NULL)
            desc = query_value(q, qlen, "statusDescription", 1);
        if (code < 300 || code > 599)
            code = 400;
        snprintf(reason, sizeof(reason), "%s",
                 desc && desc[0] ? desc : "Rejected by listener");
        sanitize(reason, 256);
        hc_log_info("rendezvous %s: listener rejected the sender with %ld "
                    "%s",
                    id, code, reason);
        respond(s, (int)code, reason, NULL, NULL, NULL);
        respond(rc, 410, "Gone", NULL, NULL, NULL);
        hc_free(code_s);
        hc_free(desc);
        hc_free(id);
        return;
    }
    {
        /* The listener's choice of sub-protocol goes back to the sender. */
        char *proto = header_value(h, "Sec-WebSocket-Protocol");
        if (proto != NULL) {
            char *comma = strchr(proto, ',');
            if (comma != NULL)
                *comma = '\0';
            sanitize(proto, 200);
        }
        respond_101(rc->c, key, key_len, proto);
        respond_101(s->c, s->ws_key, strlen(s->ws_key), proto);
        hc_free(proto);
    }
    s->role = ROLE_SENDER;
    rc->role = ROLE_RENDEZVOUS;
    s->peer = rc;
    rc->peer = s;
    rc->rt = s->rt;
    s->started_ms = rc->started_ms = uv_now(r->loop);
    hc_log_info("rendezvous %s: sender %s:%d joined listener %s:%d on %s", id,
                s->c->peer_addr, s->c->peer_port, rc->c->peer_addr,
                rc->c->peer_port, s->rt ? s->rt->hc->name : "?");
    hc_free(id);
}

/* ---- the runtime entity description (protocol.md §6) ---- */

static char *xml_escape(const char *s)
{
    size_t len = 0;
    char *out, *o;
    for (const char *p = s; *p; p++)
        len += *p == '<' || *p == '>' ? 4 : *p == '&' ? 5 : *p == '"' ? 6 : 1;
    out = o = hc_xmalloc(len + 1);
    for (; *s; s++) {
        const char *rep = *s == '<'   ? "&lt;"
                          : *s == '>' ? "&gt;"
                          : *s == '&' ? "&amp;"
                          : *s == '"' ? "&quot;"
                                      : NULL;
        if (rep != NULL) {
            memcpy(o, rep, strlen(rep));
            o += strlen(rep);
        } else {
            *o++ = *s;
        }
    }
    *o = '\0';
    return out;
}

static void describe(struct rconn *rc, const char *path,
                     const struct hc_http_head *h, const char *q, size_t qlen)
{
    struct hc_relay *r = rc->r;
    struct hc_relay_hc *hc = find_entity(r, path);
    char now[40], why[200];
    char *body, *meta, *token;
    size_t blen;
    int status;

    iso_time(time(NULL), now, sizeof(now));
    if (hc == NULL || strcasecmp(hc->name, path) != 0) {
        char feed[512];
        snprintf(feed, sizeof(feed),
                 "<feed xmlns=\"http://www.w3.org/2005/Atom\"><title "
                 "type=\"text\">Publicly Listed Services</title><id>"
                 "uuid:00000000-0000-0000-0000-000000000000</id><updated>%s"
                 "</updated></feed>",
                 now);
        respond(rc, 200, "OK", NULL,
                "application/atom+xml;type=feed;charset=utf-8", feed);
        return;
    }
    token = request_token(h, q, qlen, 1);
    status = authorize(r, hc, hc->name, token, token ? strlen(token) : 0,
                       HC_RIGHT_LISTEN, NULL, why, sizeof(why));
    hc_free_secret_str(token);
    if (status != 0) {
        hc_log_warn("conn %u: description of %s refused: %s", rc->c->id,
                    hc->name, why);
        respond(rc, status, status == 401 ? "Unauthorized" : "Forbidden", NULL,
                NULL, NULL);
        return;
    }
    meta = xml_escape(hc->user_metadata ? hc->user_metadata : "");
    blen = strlen(meta) + 1024 + 2 * strlen(hc->name);
    body = hc_xmalloc(blen);
    snprintf(body, blen,
             "<entry xmlns=\"http://www.w3.org/2005/Atom\"><id>https://%s/%s"
             "?api-version=2016-07</id><title type=\"text\">%s</title>"
             "<updated>%s</updated><content type=\"application/xml\">"
             "<HybridConnectionDescription xmlns=\"http://schemas.microsoft."
             "com/netservices/2010/10/servicebus/connect\" xmlns:i=\"http://"
             "www.w3.org/2001/XMLSchema-instance\"><CreatedAt>%s</CreatedAt>"
             "<UpdatedAt>%s</UpdatedAt><RequiresClientAuthorization>%s"
             "</RequiresClientAuthorization><UserMetadata>%s</UserMetadata>"
             "<ListenerCount>%d</ListenerCount></HybridConnectionDescription>"
             "</content></entry>",
             r->conf->hostname, hc->name, hc->name, now, r->created, r->created,
             hc->requires_client_authorization ? "true" : "false", meta,
             rt_for(r, hc)->nlisteners);
    respond(rc, 200, "OK", NULL,
            "application/atom+xml;type=entry;charset=utf-8", body);
    hc_free(meta);
    hc_free(body);
}

/* ---- request dispatch ---- */

static void on_head(struct hc_conn *c, const struct hc_http_head *h)
{
    struct rconn *rc = c->data;
    const struct hc_http_header *key, *ver, *up, *conn;
    const char *target = h->target, *qm, *q = "";
    size_t plen, qlen = 0;
    char *raw_path, *path, *action;
    struct hc_relay_hc *hc;
    int is_ws;

    hc_conn_stop_timer(c);
    qm = memchr(target, '?', h->target_len);
    plen = qm ? (size_t)(qm - target) : h->target_len;
    if (qm != NULL) {
        q = qm + 1;
        qlen = h->target_len - plen - 1;
    }
    if (plen == 0 || target[0] != '/') {
        respond(rc, 400, NULL, NULL, NULL, NULL);
        return;
    }
    if (h->method_len != 3 || memcmp(h->method, "GET", 3) != 0) {
        respond(rc, 405, NULL, "Allow: GET\r\n", NULL, NULL);
        return;
    }
    raw_path = hc_xmalloc(plen + 1);
    memcpy(raw_path, target, plen);
    raw_path[plen] = '\0';
    path = hc_xmalloc(plen + 1);
    if (hc_url_decode(path, target, plen, 0) < 0) {
        respond(rc, 400, NULL, NULL, NULL, NULL);
        goto done;
    }
    /* No trailing '/' in entity paths. */
    for (size_t n = strlen(path); n > 1 && path[n - 1] == '/'; n--)
        path[n - 1] = '\0';

    if (strncmp(path, "/$hc/", 5) != 0) {
        if (hc_query_get(q, qlen, "api-version", &(const char *){NULL},
                         &(size_t){0})) {
            describe(rc, path + 1, h, q, qlen);
        } else {
            hc = find_entity(rc->r, path + 1);
            respond(rc, hc ? 501 : 404,
                    hc ? "HTTP request mode is not supported by this relay"
                       : "Endpoint does not exist",
                    NULL, NULL, NULL);
        }
        goto done;
    }
    up = hc_http_find(h, "Upgrade");
    conn = hc_http_find(h, "Connection");
    key = hc_http_find(h, "Sec-WebSocket-Key");
    ver = hc_http_find(h, "Sec-WebSocket-Version");
    is_ws = up && hc_http_has_token(up->value, up->value_len, "websocket") &&
            conn &&
            hc_http_has_token(conn->value, conn->value_len, "upgrade") && key &&
            key->value_len > 0 && key->value_len <= 64;
    if (!is_ws) {
        respond(rc, 400, "WebSocket upgrade required", NULL, NULL, NULL);
        goto done;
    }
    if (ver == NULL || ver->value_len != 2 || memcmp(ver->value, "13", 2)) {
        respond(rc, 426, "Upgrade Required", "Sec-WebSocket-Version: 13\r\n",
                NULL, NULL);
        goto done;
    }
    hc = find_entity(rc->r, path + 5);
    if (hc == NULL) {
        char esc[120];
        hc_log_info(
            "conn %u: no hybrid connection for %s", c->id,
            hc_log_escape(esc, sizeof(esc), path + 5, strlen(path + 5)));
        respond(rc, 404, "Endpoint does not exist", NULL, NULL, NULL);
        goto done;
    }
    action = query_value(q, qlen, "sb-hc-action", 0);
    if (action == NULL || strcmp(action, "connect") == 0) {
        connect_request(rc, hc, path + 5, raw_path, h, q, qlen, key->value,
                        key->value_len);
    } else if (strcmp(action, "listen") == 0) {
        listen_request(rc, hc, path + 5, h, q, qlen, key->value,
                       key->value_len);
    } else if (strcmp(action, "accept") == 0) {
        accept_request(rc, h, q, qlen, key->value, key->value_len);
    } else {
        respond(rc, 400, "Unknown sb-hc-action", NULL, NULL, NULL);
    }
    hc_free(action);
done:
    hc_free(raw_path);
    hc_free(path);
}

/* ---- frames ---- */

static void on_frame(struct hc_conn *c, int opcode, int fin, uint64_t len)
{
    struct rconn *rc = c->data;

    if (rc->role == ROLE_LISTENER) {
        if (opcode != WSLAY_CONTINUATION_FRAME) {
            rc->msg_len = 0;
            rc->msg_opcode = opcode;
            rc->msg_skip = 0;
        }
        rc->msg_fin = fin;
        if (rc->msg_len + len > CTL_MSG_MAX) {
            hc_log_warn("listener %s: control message over 64 KiB", rc->lid);
            hc_conn_send_close(c, 1009, "control message too big", 23);
            rc->msg_skip = 1;
        }
        return;
    }
    if (rc->peer != NULL && !rc->peer->c->closing)
        hc_conn_send_start(rc->peer->c, opcode, fin, len);
}

static void on_data(struct hc_conn *c, const uint8_t *data, size_t len)
{
    struct rconn *rc = c->data;

    if (rc->role == ROLE_LISTENER) {
        if (rc->msg_skip)
            return;
        if (rc->msg == NULL)
            rc->msg = hc_xmalloc(CTL_MSG_MAX);
        memcpy(rc->msg + rc->msg_len, data, len);
        rc->msg_len += len;
        return;
    }
    if (rc->peer == NULL || rc->peer->c->closing)
        return;
    hc_conn_send_data(rc->peer->c, data, len);
    if (!rc->paused && hc_conn_queued(rc->peer->c) > rc->peer->c->high_water) {
        /* The peer reads slower than we do: wait for it to drain. */
        rc->paused = 1;
        hc_conn_read_stop(c);
        hc_conn_want_drain(rc->peer->c);
    }
}

static void on_frame_end(struct hc_conn *c)
{
    struct rconn *rc = c->data;

    if (rc->role == ROLE_LISTENER && rc->msg_fin && !rc->msg_skip)
        ctl_message(rc);
}

static void on_drain(struct hc_conn *c)
{
    struct rconn *rc = c->data;

    if (rc->peer != NULL && rc->peer->paused) {
        rc->peer->paused = 0;
        hc_conn_read_start(rc->peer->c);
    }
}

static void on_control(struct hc_conn *c, int opcode, const uint8_t *data,
                       size_t len)
{
    struct rconn *rc = c->data;
    int code = 0;

    if (opcode == WSLAY_PONG)
        rc->pings_out = 0;
    if (opcode != WSLAY_CONNECTION_CLOSE)
        return;
    if (len >= 2)
        code = (data[0] << 8) | data[1];
    if (rc->peer != NULL && !rc->peer->c->closing) {
        /* End to end: the peer sees the same code and reason. */
        hc_conn_send_close(rc->peer->c, code, (const char *)data + 2,
                           len >= 2 ? len - 2 : 0);
    } else {
        hc_conn_send_close(c, code ? code : 1000, "", 0);
    }
}

static void log_tunnel_end(struct rconn *rc, const char *reason)
{
    struct rconn *s = rc->role == ROLE_SENDER ? rc : rc->peer;
    struct rconn *l = rc->role == ROLE_SENDER ? rc->peer : rc;
    char esc[160];

    hc_log_info("tunnel on %s ended: sender %s:%d, listener %s:%d, "
                "%llu bytes to listener, %llu bytes to sender, %llu ms, %s",
                rc->rt ? rc->rt->hc->name : "?", s ? s->c->peer_addr : "-",
                s ? s->c->peer_port : 0, l ? l->c->peer_addr : "-",
                l ? l->c->peer_port : 0,
                (unsigned long long)(s ? s->c->bytes_in : 0),
                (unsigned long long)(l ? l->c->bytes_in : 0),
                (unsigned long long)(uv_now(rc->r->loop) - rc->started_ms),
                hc_log_escape(esc, sizeof(esc), reason, strlen(reason)));
}

static void on_close(struct hc_conn *c, int err, const char *reason)
{
    struct rconn *rc = c->data;
    struct hc_relay *r = rc->r;

    switch (rc->role) {
    case ROLE_LISTENER:
        listener_remove(rc);
        hc_log_info("listener %s disconnected: %s", rc->lid, reason);
        break;
    case ROLE_WAITING:
        rv_remove(rc);
        hc_log_info("conn %u: sender left before the listener joined: %s",
                    c->id, reason);
        break;
    case ROLE_SENDER:
    case ROLE_RENDEZVOUS:
        if (rc->peer != NULL) {
            struct rconn *p = rc->peer;
            log_tunnel_end(rc, reason);
            p->peer = NULL;
            if (!p->c->closing && p->c->in_tx_frame) {
                /* Half a frame went out: the stream cannot be ended cleanly. */
                hc_conn_abort(p->c, HC_EPROTO, "peer went away mid-frame");
            } else if (!p->c->closing) {
                if (p->c->close_sent)
                    hc_conn_close(p->c, 0, "peer closed");
                else
                    hc_conn_send_close(p->c, 1001, "peer went away", 14);
            }
        }
        break;
    default:
        if (err != 0 && rc->role == ROLE_NEW)
            hc_log_debug("conn %u from %s: %s", c->id, c->peer_addr, reason);
        break;
    }
    rc->peer = NULL;
    if (rc->all_prev != NULL)
        rc->all_prev->all_next = rc->all_next;
    else
        r->all = rc->all_next;
    if (rc->all_next != NULL)
        rc->all_next->all_prev = rc->all_prev;
    r->nconns--;
    hc_free(rc->msg);
    hc_free(rc->rv_id);
    hc_free(rc);
    c->data = NULL;
}

static const struct hc_conn_cbs relay_cbs = {
    .on_head = on_head,
    .on_frame = on_frame,
    .on_data = on_data,
    .on_frame_end = on_frame_end,
    .on_control = on_control,
    .on_drain = on_drain,
    .on_close = on_close,
};

/* ---- accepting and housekeeping ---- */

static void handshake_timeout(struct hc_conn *c)
{
    hc_log_info("conn %u from %s: handshake timed out", c->id, c->peer_addr);
    hc_conn_abort(c, UV_ETIMEDOUT, "handshake timed out");
}

static void on_connection(uv_stream_t *server, int status)
{
    struct hc_relay *r = server->data;
    struct rconn *rc;
    struct hc_conn *c;

    if (status < 0) {
        hc_log_warn("accept: %s", uv_strerror(status));
        return;
    }
    rc = hc_xcalloc(1, sizeof(*rc));
    rc->r = r;
    c = hc_conn_accept(r->io, server, r->tls, &relay_cbs, rc);
    if (c == NULL) {
        hc_free(rc);
        return;
    }
    rc->c = c;
    rc->all_next = r->all;
    if (r->all != NULL)
        r->all->all_prev = rc;
    r->all = rc;
    r->nconns++;
    if (r->nconns > r->conf->max_connections || r->stopping) {
        static uint64_t last_warn;
        if (uv_now(r->loop) - last_warn > 10000) {
            hc_log_warn("connection limit (%ld) reached: refusing",
                        r->conf->max_connections);
            last_warn = uv_now(r->loop);
        }
        hc_conn_abort(c, UV_EMFILE, "connection limit");
        return;
    }
    hc_conn_set_timer(c, (uint64_t)r->conf->handshake_timeout * 1000,
                      handshake_timeout);
}

/*
 * Once a second for every listener: close it when its token is past
 * expiry + clock_skew + token_grace, and ping it every ping_interval.
 * Returns a listener that left two pings unanswered (a dead path that
 * dropped the connection silently), for the caller to close, or NULL.
 */
static struct rconn *check_listeners(struct hc_relay *r)
{
    uint64_t now = (uint64_t)time(NULL), now_ms = uv_now(r->loop);
    uint64_t every = (uint64_t)r->conf->ping_interval * 1000;

    for (struct hc_rt *rt = r->rts; rt != NULL; rt = rt->next) {
        for (struct rconn *l = rt->listeners; l != NULL; l = l->lnext) {
            if (l->c->close_sent || l->c->closing)
                continue;
            if (now > l->token_expiry + (uint64_t)r->conf->clock_skew +
                          (uint64_t)r->conf->token_grace) {
                hc_log_info("listener %s: token expired, closing", l->lid);
                hc_conn_send_close(l->c, 1008, "token expired", 13);
                continue;
            }
            if (every == 0 || l->c->in_tx_frame)
                continue;
            if (l->ping_ms == 0) {
                l->ping_ms = now_ms;
            } else if (now_ms - l->ping_ms >= every) {
                if (l->pings_out >= 2)
                    return l;
                hc_conn_send_ping(l->c);
                l->pings_out++;
                l->ping_ms = now_ms;
            }
        }
    }
    return NULL;
}

static void on_tick(uv_timer_t *t)
{
    struct hc_relay *r = t->data;
    struct rconn *l;
    int n = 0;

    /* Closing one changes the lists: look again after each. */
    while ((l = check_listeners(r)) != NULL && n++ < 1000) {
        hc_log_warn("listener %s: no answer to two pings, closing", l->lid);
        hc_conn_abort(l->c, UV_ETIMEDOUT, "no answer to pings");
    }
}

int hc_relay_new(struct hc_relay **out, uv_loop_t *loop,
                 struct hc_relay_conf *conf, char *err, size_t errlen)
{
    struct hc_relay *r = hc_calloc(1, sizeof(*r));
    int rc;

    if (r == NULL) {
        snprintf(err, errlen, "out of memory");
        hc_relay_conf_free(conf);
        return UV_ENOMEM;
    }
    r->loop = loop;
    r->conf = conf;
    rc = hc_tls_conf_server(&r->tls, conf->cert_file, conf->key_file, err,
                            errlen);
    if (rc != 0) {
        hc_relay_conf_free(conf);
        hc_free(r);
        return rc;
    }
    r->io = hc_io_new(loop);
    if (r->io == NULL) {
        snprintf(err, errlen, "out of memory");
        hc_tls_conf_free(r->tls);
        hc_relay_conf_free(conf);
        hc_free(r);
        return UV_ENOMEM;
    }
    iso_time(time(NULL), r->created, sizeof(r->created));
    *out = r;
    return 0;
}

int hc_relay_start(struct hc_relay *r, char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    int rc;

    if (strchr(r->conf->listen_host, ':') != NULL)
        rc = uv_ip6_addr(r->conf->listen_host, r->conf->listen_port,
                         (struct sockaddr_in6 *)&ss);
    else
        rc = uv_ip4_addr(r->conf->listen_host, r->conf->listen_port,
                         (struct sockaddr_in *)&ss);
    if (rc != 0) {
        snprintf(err, errlen, "listen: '%s' is not an IP address",
                 r->conf->listen_host);
        return rc;
    }
    uv_timer_init(r->loop, &r->tick); /* hc_relay_stop closes it */
    r->tick.data = r;
    uv_tcp_init(r->loop, &r->server);
    r->server.data = r;
    r->server_open = 1;
    rc = uv_tcp_bind(&r->server, (struct sockaddr *)&ss, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&r->server, 511, on_connection);
    if (rc != 0) {
        snprintf(err, errlen, "listen on %s:%d: %s", r->conf->listen_host,
                 r->conf->listen_port, uv_strerror(rc));
        return rc;
    }
    uv_tcp_getsockname(&r->server, (struct sockaddr *)&ss, &len);
    r->port =
        ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                       : ((struct sockaddr_in *)&ss)->sin_port);
    uv_timer_start(&r->tick, on_tick, 1000, 1000);
    return 0;
}

int hc_relay_port(const struct hc_relay *r)
{
    return r->port;
}

void hc_relay_stop(struct hc_relay *r)
{
    if (r->stopping)
        return;
    r->stopping = 1;
    if (r->server_open) {
        r->server_open = 0;
        uv_close((uv_handle_t *)&r->server, NULL);
        uv_timer_stop(&r->tick);
        uv_close((uv_handle_t *)&r->tick, NULL);
    }
    while (r->all != NULL) {
        struct hc_conn *c = r->all->c;
        if (r->all->role == ROLE_LISTENER || r->all->role == ROLE_SENDER ||
            r->all->role == ROLE_RENDEZVOUS)
            hc_conn_send_close(c, 1001, "relay shutting down", 19);
        hc_conn_close(c, 0, "relay shutting down");
    }
}

int hc_relay_reload(struct hc_relay *r, struct hc_relay_conf *conf)
{
    struct hc_relay_conf *old = r->conf;

    if (r->stopping) {
        hc_relay_conf_free(conf);
        return UV_ECANCELED;
    }

    if (strcmp(conf->listen_host, old->listen_host) != 0 ||
        conf->listen_port != old->listen_port ||
        strcmp(conf->cert_file, old->cert_file) != 0 ||
        strcmp(conf->key_file, old->key_file) != 0)
        hc_log_warn("reload: listen, cert_file and key_file take effect at "
                    "the next start");
    for (struct hc_rt *rt = r->rts; rt != NULL; rt = rt->next) {
        struct hc_relay_hc *nh, **pp;
        if (rt->removed)
            continue; /* retired by an earlier reload */
        nh = hc_relay_conf_find_hc(conf, rt->hc->name);
        if (nh != NULL) {
            rt->hc = nh;
            continue;
        }
        hc_log_info("reload: hybrid connection %s removed: closing its %d "
                    "listeners",
                    rt->hc->name, rt->nlisteners);
        for (struct rconn *l = rt->listeners; l != NULL; l = l->lnext)
            hc_conn_send_close(l->c, 1001, "hybrid connection removed", 25);
        /* Keep the name for the tunnels still open; drop the keys now. */
        for (pp = &old->hcs; *pp != NULL; pp = &(*pp)->next) {
            if (*pp == rt->hc) {
                *pp = rt->hc->next;
                break;
            }
        }
        hc_relay_conf_free_rules(rt->hc);
        rt->hc->next = r->retired;
        r->retired = rt->hc;
        rt->removed = 1;
    }
    r->conf = conf;
    hc_relay_conf_free(old);
    return 0;
}

void hc_relay_free(struct hc_relay *r)
{
    if (r == NULL)
        return;
    while (r->retired != NULL) {
        struct hc_relay_hc *h = r->retired;
        r->retired = h->next;
        h->next = NULL;
        hc_relay_conf_free_hc(h);
    }
    while (r->rts != NULL) {
        struct hc_rt *rt = r->rts;
        r->rts = rt->next;
        hc_free(rt);
    }
    hc_io_free(r->io);
    hc_tls_conf_free(r->tls);
    hc_relay_conf_free(r->conf);
    hc_free(r);
}
