/*
 * agent.c - hcmd's listener role (the Hybrid Connection Manager).
 *
 * Per hybrid connection a struct listener keeps a control channel to the
 * relay: it reconnects forever with full-jitter exponential backoff, renews
 * its token at 80% of the lifetime with renewToken and pings the relay,
 * declaring the channel dead after two unanswered pings. When the endpoint
 * is not configured it is read from the relay's entity description first.
 *
 * An accept starts a struct tunnel: the endpoint is dialled while the TLS
 * connection to the rendezvous address opens; once both are up the
 * rendezvous is joined and hc_splice takes over. If the endpoint cannot be
 * reached the rendezvous is rejected with 502 so the sender fails at once.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <mbedtls/platform_util.h>

#include "agent_int.h"
#include "hc_agent.h"
#include "hc_conn.h"
#include "hc_err.h"
#include "hc_http.h"
#include "hc_json.h"
#include "hc_log.h"
#include "hc_mem.h"
#include "hc_rand.h"
#include "hc_proxy.h"
#include "hc_sas.h"
#include "hc_splice.h"
#include "hc_url.h"
#include "hc_version.h"

#include <jansson.h>
#include <unistd.h>

#define RETRY_FIRST_MS 250
/*
 * A refused connection (nothing listens on the relay's port, as while it
 * restarts) costs nothing to retry: for this long after the start or after
 * losing the channel, it is retried within REFUSED_MAX_MS.
 */
#define RESTART_MS 60000
#define REFUSED_MAX_MS 500
#define META_BODY_MAX (64 * 1024)
#define CTL_MSG_MAX (64 * 1024)

enum status {
    ST_CONNECTING,
    ST_CONNECTED,
    ST_UNAUTHORIZED,
    ST_NOT_FOUND,
    ST_NO_ENDPOINT,
    ST_DISCONNECTED,
};

static const char *status_names[] = {"Connecting",   "Connected",
                                     "Unauthorized", "Not found",
                                     "No endpoint",  "Not connected"};

struct hc_agent;

struct listener {
    struct hc_agent *a;
    struct hc_agent_hc *hc;
    struct listener *next;
    enum status status;
    char last_error[256];
    struct hc_conn *ctl;  /* control channel, NULL when down */
    struct hc_conn *meta; /* entity description request */
    uv_timer_t retry, renew, ping;
    int attempt;
    int slow_retry; /* the last failure was an auth or not-found answer */
    int refused;    /* the last attempt was refused (ECONNREFUSED) */
    uint64_t connected_ms;
    uint64_t lost_ms; /* the start, or when the channel was last lost */
    int pings_out;
    char ws_key[25];
    char lid[37];
    char ep_host[256];
    int ep_port, have_ep;
    uint8_t *msg;
    size_t msg_len;
    int msg_opcode, msg_fin, msg_skip;
    char *meta_body;
    size_t meta_len;
    long meta_status;
    int ntunnels;
    int closing;        /* retired: no reconnects; freed once all is closed */
    int answered;       /* the relay refused this attempt with a status */
    int pending_closes; /* timers still closing */
    /* For list and show. */
    time_t since, last_error_time;
    uint64_t token_expiry;
    unsigned long tunnels_total, rejects;
    uint64_t bytes_to_endpoint, bytes_to_sender;
    struct hc_agent_hc *own_hc; /* a removed entry this listener owns */
};

struct tunnel {
    struct listener *l;
    struct hc_agent *a;
    struct hc_conn *ep, *rv;
    struct hc_splice *sp;
    struct hc_url url;
    char *id;
    char *protocol;
    char remote[64];
    int remote_port;
    char ws_key[25];
    int ep_state;    /* 0 pending, 1 connected, -1 failed */
    int reject_code; /* 502 endpoint unreachable, 503 tunnel limit */
    int rv_up, requested, rejecting;
    char ep_err[400];
    int nconns;
    uint64_t start_ms;
    struct tunnel *prev, *next;
};

static void listener_connect(struct listener *l);
static void schedule_retry(struct listener *l);
static void on_renew(uv_timer_t *h);
static void listener_maybe_free(struct listener *l);

/* ---- small helpers ---- */

static uint32_t rnd(void)
{
    uint32_t x;
    hc_random(&x, sizeof(x));
    return x;
}

static void set_status(struct listener *l, enum status st, const char *err)
{
    if (err != NULL) {
        snprintf(l->last_error, sizeof(l->last_error), "%s", err);
        l->last_error_time = time(NULL);
    }
    if (l->status != st || l->since == 0)
        l->since = time(NULL);
    if (l->status != st)
        hc_log_debug("%s: status %s -> %s", l->hc->name,
                     status_names[l->status], status_names[st]);
    l->status = st;
}

/* A fresh token for this hybrid connection, .NET-style audience. */
char *hc__agent_token(const struct hc_agent_hc *hc, long lifetime,
                      uint64_t *expiry)
{
    char *aud, *tok;
    uint64_t se;

    if (hc->cs.sas != NULL) {
        if (expiry != NULL)
            *expiry = 0;
        return hc_strdup(hc->cs.sas); /* given whole; cannot be renewed */
    }
    se = (uint64_t)time(NULL) + (uint64_t)lifetime;
    aud = hc_sas_audience(hc->cs.host, hc->cs.entity_path);
    if (aud == NULL)
        return NULL;
    tok = hc_sas_sign(aud, hc->cs.key_name, hc->cs.key, se);
    hc_free(aud);
    if (expiry != NULL)
        *expiry = se;
    return tok;
}

/* What every request to the relay carries: path, Host and a token. */
struct req_parts {
    char host[300];
    char *path;
    char *tok;  /* secret */
    size_t len; /* of the three, for sizing the request */
};

static int req_parts_get(const struct hc_agent_hc *hc, long lifetime,
                         uint64_t *expiry, struct req_parts *rp)
{
    rp->tok = hc__agent_token(hc, lifetime, expiry);
    rp->path = hc__agent_entity_path(hc->cs.entity_path);
    hc__agent_host_header(rp->host, sizeof(rp->host), hc->cs.host, hc->cs.port);
    if (rp->tok == NULL || rp->path == NULL) {
        hc_free_secret_str(rp->tok);
        hc_free(rp->path);
        return UV_ENOMEM;
    }
    rp->len = strlen(rp->host) + strlen(rp->path) + strlen(rp->tok);
    return 0;
}

static void req_parts_free(struct req_parts *rp)
{
    hc_free_secret_str(rp->tok);
    hc_free(rp->path);
}

char *hc__agent_ws_request(const struct hc_agent_hc *hc, long lifetime,
                           const char *action, const char *id,
                           const char *ws_key, uint64_t *expiry)
{
    struct req_parts rp;
    char *req;
    size_t n;

    if (req_parts_get(hc, lifetime, expiry, &rp) != 0)
        return NULL;
    n = rp.len + strlen(action) + (id ? strlen(id) : 0) + strlen(ws_key) + 300;
    req = hc_malloc(n);
    if (req != NULL)
        snprintf(req, n,
                 "GET /$hc/%s?sb-hc-action=%s%s%s HTTP/1.1\r\nHost: %s\r\n"
                 "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                 "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n"
                 "ServiceBusAuthorization: %s\r\n"
                 "Relay-User-Agent: hcmd/%s\r\n\r\n",
                 rp.path, action, id ? "&sb-hc-id=" : "", id ? id : "", rp.host,
                 ws_key, rp.tok, HC_VERSION);
    req_parts_free(&rp);
    return req;
}

char *hc__agent_describe_request(const struct hc_agent_hc *hc, long lifetime)
{
    struct req_parts rp;
    char *req;
    size_t n;

    if (req_parts_get(hc, lifetime, NULL, &rp) != 0)
        return NULL;
    n = rp.len + 200;
    req = hc_malloc(n);
    if (req != NULL)
        snprintf(req, n,
                 "GET /%s?api-version=2016-07 HTTP/1.1\r\nHost: %s\r\n"
                 "Authorization: %s\r\nX-PROCESS-AT: ServiceBus\r\n"
                 "Connection: close\r\n\r\n",
                 rp.path, rp.host, rp.tok);
    req_parts_free(&rp);
    return req;
}

/* The entity path for a URL: each segment percent-encoded. */
char *hc__agent_entity_path(const char *entity)
{
    size_t cap = strlen(entity) * 3 + 2, o = 0;
    char *out = hc_malloc(cap);
    const char *seg = entity;

    if (out == NULL)
        return NULL;
    while (1) {
        const char *slash = strchr(seg, '/');
        size_t n = slash ? (size_t)(slash - seg) : strlen(seg);
        char *enc = hc_url_encode(seg, n);
        if (enc == NULL) {
            hc_free(out);
            return NULL;
        }
        o += (size_t)snprintf(out + o, cap - o, "%s%s", enc, slash ? "/" : "");
        hc_free(enc);
        if (slash == NULL)
            break;
        seg = slash + 1;
    }
    return out;
}

void hc__agent_host_header(char *out, size_t len, const char *host, int port)
{
    int v6 = strchr(host, ':') != NULL;
    if (port == 443)
        snprintf(out, len, "%s%s%s", v6 ? "[" : "", host, v6 ? "]" : "");
    else
        snprintf(out, len, "%s%s%s:%d", v6 ? "[" : "", host, v6 ? "]" : "",
                 port);
}

/* Is this response a valid 101 for our key? */
int hc__agent_upgrade_ok(const struct hc_http_head *h, const char *key)
{
    char want[29];
    const struct hc_http_header *acc;

    if (h->status != 101)
        return 0;
    acc = hc_http_find(h, "Sec-WebSocket-Accept");
    hc_http_ws_accept(key, strlen(key), want);
    return acc != NULL && acc->value_len == 28 &&
           memcmp(acc->value, want, 28) == 0;
}

/* ---- tunnels ---- */

static void tunnel_free(struct tunnel *t)
{
    struct hc_agent *a = t->a;

    if (t->prev != NULL)
        t->prev->next = t->next;
    else
        a->tunnels = t->next;
    if (t->next != NULL)
        t->next->prev = t->prev;
    a->ntunnels--;
    hc_url_free(&t->url);
    hc_free(t->id);
    hc_free(t->protocol);
    if (t->l != NULL) {
        t->l->ntunnels--;
        listener_maybe_free(t->l);
    }
    hc_free(t);
}

static void splice_done(struct hc_splice *sp)
{
    struct tunnel *t = sp->data;
    char esc[200], ep[300] = "-";
    int v6;

    if (t->l != NULL) {
        v6 = strchr(t->l->ep_host, ':') != NULL;
        snprintf(ep, sizeof(ep), "%s%s%s:%d", v6 ? "[" : "", t->l->ep_host,
                 v6 ? "]" : "", t->l->ep_port);
    }
    hc_log_info(
        "tunnel %s id=%s sender=%s:%d endpoint=%s "
        "bytes_to_endpoint=%llu bytes_to_sender=%llu duration_ms=%llu "
        "reason=\"%s\"",
        t->l ? t->l->hc->name : "?", t->id, t->remote[0] ? t->remote : "-",
        t->remote_port, ep, (unsigned long long)sp->bytes_to_tcp,
        (unsigned long long)sp->bytes_from_tcp,
        (unsigned long long)(sp->end_ms - sp->start_ms),
        hc_log_escape(esc, sizeof(esc), sp->reason, strlen(sp->reason)));
    if (t->l != NULL) {
        t->l->bytes_to_endpoint += sp->bytes_to_tcp;
        t->l->bytes_to_sender += sp->bytes_from_tcp;
    }
    hc_splice_free(sp);
    tunnel_free(t);
}

static void rv_timeout(struct hc_conn *c)
{
    hc_conn_abort(c, UV_ETIMEDOUT, "rendezvous timed out");
}

/* Both dials are done (or one failed): join or reject the rendezvous. */
static void tunnel_request(struct tunnel *t)
{
    char head[4096], host[300], reject[600] = "";
    const char *q = t->url.query;
    const char *proto = t->protocol;
    int n;

    if (t->requested || !t->rv_up || t->rv == NULL || t->ep_state == 0)
        return;
    t->requested = 1;
    hc__agent_host_header(host, sizeof(host), t->url.host, t->url.port);
    if (hc_http_ws_key(t->ws_key) != 0) {
        hc_conn_abort(t->rv, UV_EIO, "no random key");
        return;
    }
    if (t->ep_state < 0) {
        /* Reject: the relay answers 410 and the sender gets our status. */
        if (t->l != NULL)
            t->l->rejects++;
        char *desc = hc_url_encode(t->ep_err, strlen(t->ep_err));
        t->rejecting = 1;
        proto = NULL;
        snprintf(reject, sizeof(reject),
                 "%ssb-hc-statusCode=%d&sb-hc-statusDescription=%s",
                 q[0] ? "&" : "?", t->reject_code ? t->reject_code : 502,
                 desc ? desc : "");
        hc_free(desc);
    }
    n = snprintf(head, sizeof(head),
                 "GET %s%s%s%s HTTP/1.1\r\nHost: %s\r\n"
                 "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                 "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n"
                 "%s%s%s\r\n",
                 t->url.path, q[0] ? "?" : "", q, reject, host, t->ws_key,
                 proto ? "Sec-WebSocket-Protocol: " : "", proto ? proto : "",
                 proto ? "\r\n" : "");
    if (n < 0 || (size_t)n >= sizeof(head)) {
        hc_conn_abort(t->rv, HC_ETOOBIG, "rendezvous address too long");
        return;
    }
    hc_conn_write(t->rv, head, (size_t)n);
    hc_conn_set_timer(t->rv, (uint64_t)t->a->conf->connect_timeout * 1000,
                      rv_timeout);
}

static void tunnel_conn_gone(struct tunnel *t)
{
    if (--t->nconns == 0 && t->sp == NULL)
        tunnel_free(t);
}

static void ep_connected(struct hc_conn *c)
{
    struct tunnel *t = c->data;

    hc_conn_raw_start(c);
    hc_conn_read_stop(c); /* bytes wait in the kernel until the splice */
    hc_conn_stop_timer(c);
    t->ep_state = 1;
    tunnel_request(t);
}

static void ep_close(struct hc_conn *c, int err, const char *reason)
{
    struct tunnel *t = c->data;

    t->ep = NULL;
    if (t->ep_state == 0 || t->ep_state == 1) {
        snprintf(t->ep_err, sizeof(t->ep_err), "endpoint %s:%d: %s",
                 t->l ? t->l->ep_host : "?", t->l ? t->l->ep_port : 0, reason);
        t->ep_state = -1;
        if (t->rv != NULL && !t->requested)
            tunnel_request(t);
        else if (t->rv != NULL && !t->rejecting)
            hc_conn_abort(t->rv, err, "endpoint gone before the splice");
    }
    tunnel_conn_gone(t);
}

static void ep_timeout(struct hc_conn *c)
{
    hc_conn_abort(c, UV_ETIMEDOUT, "connect timed out");
}

static void rv_connected(struct hc_conn *c)
{
    struct tunnel *t = c->data;
    t->rv_up = 1;
    tunnel_request(t);
}

static void rv_head(struct hc_conn *c, const struct hc_http_head *h)
{
    struct tunnel *t = c->data;

    hc_conn_stop_timer(c);
    if (t->rejecting) {
        if (h->status == 410)
            hc_log_info("%s: rejected sender %s:%d (%d): %s",
                        t->l ? t->l->hc->name : "?",
                        t->remote[0] ? t->remote : "-", t->remote_port,
                        t->reject_code ? t->reject_code : 502, t->ep_err);
        else
            hc_log_warn("%s: reject of %s answered %d",
                        t->l ? t->l->hc->name : "?", t->id, h->status);
        hc_conn_close(c, 0, "rejected");
        return;
    }
    if (!hc__agent_upgrade_ok(h, t->ws_key)) {
        char why[120];
        snprintf(why, sizeof(why), "rendezvous answered %d", h->status);
        hc_log_warn("%s: tunnel %s: %s", t->l ? t->l->hc->name : "?", t->id,
                    why);
        hc_conn_abort(c, HC_EPROTO, why); /* rv_close aborts the endpoint */
        return;
    }
    hc_conn_ws_start(c);
    if (t->ep == NULL) {
        hc_conn_send_close(c, 1011, "endpoint gone", 13);
        return;
    }
    hc_log_debug("%s: tunnel %s established", t->l ? t->l->hc->name : "?",
                 t->id);
    t->nconns = 0; /* both connections now belong to the splice */
    if (t->l != NULL)
        t->l->tunnels_total++;
    t->sp = hc_splice_new(t->ep, c, splice_done, t);
    if (t->sp == NULL)
        tunnel_free(t);
}

static void rv_close(struct hc_conn *c, int err, const char *reason)
{
    struct tunnel *t = c->data;

    t->rv = NULL;
    /*
     * Before the splice any end of the rendezvous is a failure, a clean
     * close by the relay (it stopped) too: the endpoint would wait forever.
     */
    if (!t->rejecting && (err != 0 || t->ep != NULL)) {
        hc_log_warn("%s: tunnel %s: rendezvous failed: %s",
                    t->l ? t->l->hc->name : "?", t->id, reason);
        if (t->ep != NULL)
            hc_conn_abort(t->ep, err != 0 ? err : UV_ECONNABORTED,
                          "rendezvous failed");
    }
    tunnel_conn_gone(t);
}

static const struct hc_conn_cbs ep_cbs = {
    .on_connected = ep_connected,
    .on_close = ep_close,
};

static const struct hc_conn_cbs rv_cbs = {
    .on_connected = rv_connected,
    .on_head = rv_head,
    .on_close = rv_close,
};

/* Digits and dots only, or a ':' (IPv6): an address, not a name. */
static int is_ip_literal(const char *host)
{
    return strchr(host, ':') != NULL ||
           strspn(host, "0123456789.") == strlen(host);
}

/*
 * May a rendezvous go to u? Only over TLS, and to the relay's host or a
 * name next to it in its domain: Azure hands out gateway hosts such as
 * g17-prod-x-sb.servicebus.windows.net for the namespace
 * ns.servicebus.windows.net. Anything else would let whoever sends accept
 * messages make hcmd dial any host, or drop TLS. (Any port: TLS checks the
 * name, not the port.)
 */
static int rendezvous_allowed(const struct hc_agent_hc *hc,
                              const struct hc_url *u)
{
    const char *ns = hc->cs.host, *parent = strchr(ns, '.');
    size_t hlen = strlen(u->host), plen;

    if (strcmp(u->scheme, "wss") != 0)
        return 0;
    if (strcasecmp(u->host, ns) == 0)
        return 1;
    /* A sibling: one more label in a parent of two labels or more. */
    if (is_ip_literal(ns) || parent == NULL || strchr(parent + 1, '.') == NULL)
        return 0;
    plen = strlen(parent);
    return hlen > plen && strcasecmp(u->host + hlen - plen, parent) == 0 &&
           memchr(u->host, '.', hlen - plen) == NULL;
}

static void on_accept(struct listener *l, const struct hc_ctl_msg *m)
{
    struct hc_agent *a = l->a;
    struct tunnel *t;
    const char *proto;
    int tls;

    if (!l->have_ep) {
        hc_log_warn("%s: accept before the endpoint is known", l->hc->name);
        return;
    }
    t = hc_xcalloc(1, sizeof(*t));
    t->a = a;
    t->l = l;
    t->id = hc_xstrdup(m->id);
    t->start_ms = uv_now(a->loop);
    if (m->remote_addr != NULL) {
        int v6 = strchr(m->remote_addr, ':') != NULL;
        snprintf(t->remote, sizeof(t->remote), "%s%s%s", v6 ? "[" : "",
                 m->remote_addr, v6 ? "]" : "");
        t->remote_port = m->remote_port;
    }
    proto = hc_ctl_header(m, "Sec-WebSocket-Protocol");
    if (proto != NULL) {
        /* The first name; a line break ends it too (it goes into a head). */
        size_t n = strcspn(proto, ", \t\r\n");
        if (n > 0 && n < 200)
            t->protocol = hc_strndup(proto, n);
    }
    t->next = a->tunnels;
    if (a->tunnels != NULL)
        a->tunnels->prev = t;
    a->tunnels = t;
    a->ntunnels++;
    l->ntunnels++;
    if (hc_url_parse(m->address, &t->url) != 0 ||
        (strcmp(t->url.scheme, "wss") != 0 &&
         strcmp(t->url.scheme, "ws") != 0)) {
        hc_log_warn("%s: accept with a bad address ignored", l->hc->name);
        tunnel_free(t);
        return;
    }
    if (!rendezvous_allowed(l->hc, &t->url)) {
        int v6 = strchr(t->url.host, ':') != NULL;
        hc_log_warn("%s: accept ignored: its rendezvous %s://%s%s%s:%d is not "
                    "wss at the relay's host %s",
                    l->hc->name, t->url.scheme, v6 ? "[" : "", t->url.host,
                    v6 ? "]" : "", t->url.port, l->hc->cs.host);
        tunnel_free(t);
        return;
    }
    tls = strcmp(t->url.scheme, "wss") == 0;
    if (a->ntunnels > a->conf->max_tunnels) {
        t->ep_state = -1;
        t->reject_code = 503;
        snprintf(t->ep_err, sizeof(t->ep_err), "tunnel limit (%ld) reached",
                 a->conf->max_tunnels);
        hc_log_warn("%s: %s: rejecting sender", l->hc->name, t->ep_err);
    } else {
        t->ep = hc_conn_connect(a->io, l->ep_host, l->ep_port, NULL, NULL,
                                &ep_cbs, t);
        if (t->ep == NULL) {
            t->ep_state = -1;
            snprintf(t->ep_err, sizeof(t->ep_err), "cannot dial endpoint");
        } else {
            t->nconns++;
            hc_conn_set_timer(t->ep, (uint64_t)a->conf->connect_timeout * 1000,
                              ep_timeout);
        }
    }
    t->rv = hc_conn_connect_via(
        a->io, t->url.host, t->url.port, tls ? a->tls : NULL, t->url.host,
        hc__agent_proxy_for(a, t->url.host), &rv_cbs, t);
    if (t->rv == NULL) {
        /* The endpoint's on_close frees t along with its last connection. */
        if (t->ep != NULL)
            hc_conn_abort(t->ep, UV_ENOMEM, "cannot dial rendezvous");
        else
            tunnel_free(t);
        return;
    }
    t->nconns++;
    hc_conn_set_timer(t->rv, (uint64_t)a->conf->connect_timeout * 1000,
                      rv_timeout);
}

/* ---- the control channel ---- */

static void ctl_message(struct listener *l)
{
    struct hc_ctl_msg m;
    char esc[80];

    if (l->msg_opcode != WSLAY_TEXT_FRAME)
        return;
    if (hc_json_parse_ctl((const char *)l->msg, l->msg_len, &m) != 0) {
        hc_log_warn("%s: malformed control message ignored", l->hc->name);
        return;
    }
    if (m.type == HC_CTL_ACCEPT)
        on_accept(l, &m);
    else if (m.type == HC_CTL_REQUEST)
        hc_log_warn("%s: HTTP request mode is not supported; request "
                    "ignored",
                    l->hc->name);
    else
        hc_log_debug("%s: control message %s ignored", l->hc->name,
                     hc_log_escape(esc, sizeof(esc), m.name,
                                   m.name ? strlen(m.name) : 0));
    hc_ctl_msg_free(&m);
}

static void ctl_frame(struct hc_conn *c, int opcode, int fin, uint64_t len)
{
    struct listener *l = c->data;

    if (opcode != WSLAY_CONTINUATION_FRAME) {
        l->msg_len = 0;
        l->msg_opcode = opcode;
        l->msg_skip = 0;
    }
    l->msg_fin = fin;
    if (l->msg_len + len > CTL_MSG_MAX) {
        hc_log_warn("%s: control message over 64 KiB dropped", l->hc->name);
        l->msg_skip = 1;
    }
}

static void ctl_data(struct hc_conn *c, const uint8_t *data, size_t len)
{
    struct listener *l = c->data;

    if (l->msg_skip)
        return;
    if (l->msg == NULL)
        l->msg = hc_xmalloc(CTL_MSG_MAX);
    memcpy(l->msg + l->msg_len, data, len);
    l->msg_len += len;
}

static void ctl_frame_end(struct hc_conn *c)
{
    struct listener *l = c->data;
    if (l->msg_fin && !l->msg_skip)
        ctl_message(l);
}

static void ctl_control(struct hc_conn *c, int opcode, const uint8_t *data,
                        size_t len)
{
    struct listener *l = c->data;

    if (opcode == WSLAY_PONG) {
        l->pings_out = 0;
    } else if (opcode == WSLAY_CONNECTION_CLOSE) {
        int code = len >= 2 ? (data[0] << 8) | data[1] : 1005;
        char esc[130];
        hc_log_warn(
            "%s: relay closed the control channel (%d %s)", l->hc->name, code,
            hc_log_escape(esc, sizeof(esc), data + 2, len >= 2 ? len - 2 : 0));
        hc_conn_send_close(c, code == 1005 ? 1000 : code, "", 0);
    }
}

/* A fresh token on the open channel; the next renewal at 80% of it. */
static void send_renew(struct listener *l)
{
    uint64_t expiry;
    char *tok, *json;

    if (l->ctl == NULL || l->status != ST_CONNECTED)
        return;
    tok = hc__agent_token(l->hc, l->a->conf->token_lifetime, &expiry);
    l->token_expiry = expiry;
    json = tok ? hc_json_renew_token(tok) : NULL;
    hc_free_secret_str(tok);
    if (json == NULL) {
        hc_log_err("%s: cannot make a token", l->hc->name);
        return;
    }
    hc_conn_send_frame(l->ctl, WSLAY_TEXT_FRAME, 1, json, strlen(json));
    hc_free_secret_str(json);
    hc_log_debug("%s: token renewed", l->hc->name);
    if (l->hc->cs.key != NULL)
        uv_timer_start(&l->renew, on_renew,
                       (uint64_t)l->a->conf->token_lifetime * 800, 0);
}

static void on_renew(uv_timer_t *h)
{
    send_renew(h->data);
}

static void on_ping(uv_timer_t *h)
{
    struct listener *l = h->data;

    if (l->ctl == NULL || l->status != ST_CONNECTED)
        return;
    if (l->pings_out >= 2) {
        hc_log_warn("%s: no pong for two pings: control channel is dead",
                    l->hc->name);
        hc_conn_abort(l->ctl, UV_ETIMEDOUT, "no answer to pings");
        return;
    }
    l->pings_out++;
    hc_conn_send_ping(l->ctl);
}

static void ctl_connected(struct hc_conn *c)
{
    struct listener *l = c->data;
    char *req;

    hc_guid(l->lid);
    req =
        hc_http_ws_key(l->ws_key) == 0
            ? hc__agent_ws_request(l->hc, l->a->conf->token_lifetime, "listen",
                                   l->lid, l->ws_key, &l->token_expiry)
            : NULL;
    if (req == NULL) {
        hc_conn_abort(c, UV_ENOMEM, "out of memory");
        return;
    }
    hc_conn_write(c, req, strlen(req));
    hc_free_secret_str(req);
}

static void ctl_head(struct hc_conn *c, const struct hc_http_head *h)
{
    struct listener *l = c->data;
    char why[300], esc[200];

    hc_conn_stop_timer(c);
    l->answered = !hc__agent_upgrade_ok(h, l->ws_key);
    if (!l->answered) {
        hc_conn_ws_start(c);
        set_status(l, ST_CONNECTED, NULL);
        l->connected_ms = uv_now(l->a->loop);
        l->pings_out = 0;
        l->slow_retry = 0;
        l->attempt = 0; /* online: the backoff starts afresh */
        hc_log_info("%s: connected to %s:%d as listener %s (endpoint %s:%d)",
                    l->hc->name, l->hc->cs.host, l->hc->cs.port, l->lid,
                    l->ep_host, l->ep_port);
        if (l->hc->cs.key != NULL)
            uv_timer_start(&l->renew, on_renew,
                           (uint64_t)l->a->conf->token_lifetime * 800, 0);
        uv_timer_start(&l->ping, on_ping,
                       (uint64_t)l->a->conf->ping_interval * 1000,
                       (uint64_t)l->a->conf->ping_interval * 1000);
        return;
    }
    snprintf(why, sizeof(why), "relay answered %d %s", h->status,
             hc_log_escape(esc, sizeof(esc), h->reason, h->reason_len));
    if (h->status == 401 || h->status == 403) {
        set_status(l, ST_UNAUTHORIZED, why);
        l->slow_retry = 1;
    } else if (h->status == 404) {
        set_status(l, ST_NOT_FOUND, why);
        l->slow_retry = 1;
    } else {
        set_status(l, ST_DISCONNECTED, why);
    }
    hc_conn_abort(c, HC_EAUTH, why);
}

static void ctl_close(struct hc_conn *c, int err, const char *reason)
{
    struct listener *l = c->data;

    l->ctl = NULL;
    if (l->closing) {
        listener_maybe_free(l);
        return;
    }
    uv_timer_stop(&l->renew);
    uv_timer_stop(&l->ping);
    /*
     * An answer such as 401 already set the status and the reason; any
     * other end (the relay unreachable, a dropped channel) is told as it is,
     * and retried at the normal pace.
     */
    if (!l->answered) {
        set_status(l, ST_DISCONNECTED, reason);
        l->slow_retry = 0;
    }
    l->refused = err == UV_ECONNREFUSED;
    if (l->connected_ms != 0)
        l->lost_ms = uv_now(l->a->loop);
    l->connected_ms = 0;
    hc_log_warn("%s: control channel down: %s", l->hc->name, l->last_error);
    schedule_retry(l);
}

static void ctl_timeout(struct hc_conn *c)
{
    hc_conn_abort(c, UV_ETIMEDOUT, "handshake timed out");
}

static const struct hc_conn_cbs ctl_cbs = {
    .on_connected = ctl_connected,
    .on_head = ctl_head,
    .on_frame = ctl_frame,
    .on_data = ctl_data,
    .on_frame_end = ctl_frame_end,
    .on_control = ctl_control,
    .on_close = ctl_close,
};

/* ---- the entity description (endpoint from userMetadata) ---- */

static void meta_connected(struct hc_conn *c)
{
    struct listener *l = c->data;
    char *req = hc__agent_describe_request(l->hc, l->a->conf->token_lifetime);

    if (req == NULL) {
        hc_conn_abort(c, UV_ENOMEM, "out of memory");
        return;
    }
    hc_conn_write(c, req, strlen(req));
    hc_free_secret_str(req);
}

static void meta_head(struct hc_conn *c, const struct hc_http_head *h)
{
    struct listener *l = c->data;
    l->meta_status = h->status;
    hc_conn_raw_start(c);
}

static void meta_data(struct hc_conn *c, const uint8_t *data, size_t len)
{
    struct listener *l = c->data;
    char *p;

    if (l->meta_len + len > META_BODY_MAX) {
        hc_conn_abort(c, HC_ETOOBIG, "entity description too large");
        return;
    }
    p = hc_realloc(l->meta_body, l->meta_len + len + 1);
    if (p == NULL) {
        hc_conn_abort(c, UV_ENOMEM, "out of memory");
        return;
    }
    memcpy(p + l->meta_len, data, len);
    l->meta_body = p;
    l->meta_len += len;
    p[l->meta_len] = '\0';
}

static void meta_close(struct hc_conn *c, int err, const char *reason)
{
    struct listener *l = c->data;
    char why[300];
    long status = l->meta_status;

    l->meta = NULL;
    if (l->closing)
        goto out;
    l->refused = status == 0 && err == UV_ECONNREFUSED;
    if (status == 0) {
        snprintf(why, sizeof(why), "reading the endpoint from the relay: %s",
                 reason);
        set_status(l, ST_DISCONNECTED, why);
        l->slow_retry = 0;
    } else if (status == 401 || status == 403) {
        snprintf(why, sizeof(why),
                 "reading the endpoint from the relay: "
                 "relay answered %ld",
                 status);
        set_status(l, ST_UNAUTHORIZED, why);
        l->slow_retry = 1;
    } else if (status != 200) {
        snprintf(why, sizeof(why),
                 "reading the endpoint from the relay: "
                 "relay answered %ld",
                 status);
        set_status(l, ST_NOT_FOUND, why);
        l->slow_retry = 1;
    } else {
        char e[200];
        int rc = hc_agent_meta_endpoint(
            l->meta_body ? l->meta_body : "", l->meta_len, l->ep_host,
            sizeof(l->ep_host), &l->ep_port, e, sizeof(e));
        if (rc == 0) {
            l->have_ep = 1;
            hc_log_info("%s: endpoint %s:%d (from the relay's user "
                        "metadata)",
                        l->hc->name, l->ep_host, l->ep_port);
            hc_free(l->meta_body);
            l->meta_body = NULL;
            l->meta_len = 0;
            listener_connect(l);
            return;
        }
        snprintf(why, sizeof(why), "hybrid connection %s: %s",
                 l->hc->cs.entity_path, e);
        set_status(l, ST_NO_ENDPOINT, why);
        l->slow_retry = 1;
    }
    hc_log_warn("%s: %s", l->hc->name, why);
    schedule_retry(l);
out:
    hc_free(l->meta_body);
    l->meta_body = NULL;
    l->meta_len = 0;
    if (l->closing)
        listener_maybe_free(l);
}

static const struct hc_conn_cbs meta_cbs = {
    .on_connected = meta_connected,
    .on_head = meta_head,
    .on_data = meta_data,
    .on_close = meta_close,
};

/* ---- connecting and retrying ---- */

static void listener_connect(struct listener *l)
{
    struct hc_agent *a = l->a;
    struct hc_agent_hc *hc = l->hc;

    if (l->closing || a->stopping)
        return;
    if (!hc->has_endpoint && !l->have_ep) {
        l->meta_status = 0;
        l->meta = hc_conn_connect_via(
            a->io, hc->cs.host, hc->cs.port, a->tls, hc->cs.host,
            hc__agent_proxy_for(a, hc->cs.host), &meta_cbs, l);
        if (l->meta == NULL)
            schedule_retry(l);
        else
            hc_conn_set_timer(l->meta,
                              (uint64_t)a->conf->connect_timeout * 1000,
                              ctl_timeout);
        return;
    }
    if (l->status != ST_UNAUTHORIZED && l->status != ST_NOT_FOUND)
        set_status(l, ST_CONNECTING, NULL);
    l->answered = 0;
    l->ctl = hc_conn_connect_via(
        a->io, hc->cs.host, hc->cs.port, a->tls, hc->cs.host,
        hc__agent_proxy_for(a, hc->cs.host), &ctl_cbs, l);
    if (l->ctl == NULL) {
        schedule_retry(l);
        return;
    }
    hc_conn_set_timer(l->ctl, (uint64_t)a->conf->connect_timeout * 1000,
                      ctl_timeout);
}

static void on_retry(uv_timer_t *h)
{
    struct listener *l = h->data;
    /* The endpoint may have changed in the metadata: read it again. */
    if (!l->hc->has_endpoint)
        l->have_ep = 0;
    listener_connect(l);
}

/* Full jitter: a random delay up to min(cap, 250 ms * 2^attempt). */
static void schedule_retry(struct listener *l)
{
    uint64_t cap = (uint64_t)l->a->conf->retry_max * 1000;
    uint64_t ceiling, delay;

    if (l->closing || l->a->stopping)
        return;
    if (l->slow_retry) {
        delay = cap; /* auth or missing entity: try again, but slowly */
    } else {
        ceiling = RETRY_FIRST_MS << (l->attempt < 20 ? l->attempt : 20);
        if (ceiling > cap)
            ceiling = cap;
        if (l->refused && ceiling > REFUSED_MAX_MS &&
            uv_now(l->a->loop) - l->lost_ms < RESTART_MS)
            ceiling = REFUSED_MAX_MS;
        delay = rnd() % (ceiling + 1);
        l->attempt++;
    }
    hc_log_debug("%s: next attempt in %llu ms", l->hc->name,
                 (unsigned long long)delay);
    uv_timer_start(&l->retry, on_retry, delay, 0);
}

/* ---- the agent ---- */

static void listener_timer_closed(uv_handle_t *h)
{
    struct listener *l = h->data;
    l->pending_closes--;
    listener_maybe_free(l);
}

static struct listener *listener_new(struct hc_agent *a, struct hc_agent_hc *hc)
{
    struct listener *l = hc_xcalloc(1, sizeof(*l)), **tail;

    l->a = a;
    l->hc = hc;
    l->status = ST_CONNECTING;
    l->lost_ms = uv_now(a->loop);
    if (hc->has_endpoint) {
        snprintf(l->ep_host, sizeof(l->ep_host), "%s", hc->endpoint_host);
        l->ep_port = hc->endpoint_port;
        l->have_ep = 1;
    }
    uv_timer_init(a->loop, &l->retry);
    uv_timer_init(a->loop, &l->renew);
    uv_timer_init(a->loop, &l->ping);
    l->retry.data = l->renew.data = l->ping.data = l;
    for (tail = &a->listeners; *tail != NULL; tail = &(*tail)->next)
        ;
    *tail = l;
    if (hc->cs.sas != NULL)
        hc_log_warn("%s: the connection string holds a fixed "
                    "SharedAccessSignature; it cannot be renewed",
                    hc->name);
    return l;
}

/* Stop for good: no reconnects; live tunnels may finish. */
static void listener_retire(struct listener *l)
{
    if (l->closing)
        return;
    l->closing = 1;
    l->pending_closes = 3;
    uv_close((uv_handle_t *)&l->retry, listener_timer_closed);
    uv_close((uv_handle_t *)&l->renew, listener_timer_closed);
    uv_close((uv_handle_t *)&l->ping, listener_timer_closed);
    if (l->ctl != NULL) {
        hc_conn_send_close(l->ctl, 1000, "Normal Closure", 14);
        hc_conn_close(l->ctl, 0, "listener stopped");
    }
    if (l->meta != NULL)
        hc_conn_abort(l->meta, 0, "listener stopped");
}

static void listener_maybe_free(struct listener *l)
{
    struct listener **pp;

    if (!l->closing || l->pending_closes > 0 || l->ctl != NULL ||
        l->meta != NULL || l->ntunnels > 0)
        return;
    for (pp = &l->a->listeners; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == l) {
            *pp = l->next;
            break;
        }
    }
    if (l->own_hc != NULL)
        hc_agent_hc_free(l->own_hc);
    hc_free(l->msg);
    hc_free(l->meta_body);
    hc_free(l);
}

const struct hc_proxy *hc__agent_proxy_for(struct hc_agent *a, const char *host)
{
    if (!a->use_proxy || hc_proxy_exempt(a->no_proxy, host))
        return NULL;
    return &a->proxy;
}

/* Take the proxy setting of conf; 0, or an error with err. */
static int set_proxy(struct hc_agent *a, const struct hc_agent_conf *conf,
                     char *err, size_t errlen)
{
    struct hc_proxy p;
    const char *no_proxy;
    int rc = hc_agent_conf_proxy(conf, &p, &no_proxy, err, errlen);

    if (rc < 0)
        return rc;
    a->use_proxy = rc;
    a->proxy = p;
    hc_free(a->no_proxy);
    a->no_proxy = no_proxy ? hc_xstrdup(no_proxy) : NULL;
    if (rc)
        hc_log_info("relay connections go through the proxy %s:%d%s", p.host,
                    p.port, p.auth[0] ? " (with credentials)" : "");
    return 0;
}

int hc_agent_new(struct hc_agent **out, uv_loop_t *loop,
                 struct hc_agent_conf *conf, char *err, size_t errlen)
{
    struct hc_agent *a = hc_calloc(1, sizeof(*a));
    int rc;

    if (a == NULL) {
        snprintf(err, errlen, "out of memory");
        hc_agent_conf_free(conf);
        return UV_ENOMEM;
    }
    a->loop = loop;
    a->conf = conf;
    rc = hc_tls_conf_client(&a->tls, conf->ca_file, conf->tls_verify, err,
                            errlen);
    if (rc != 0) {
        hc_agent_conf_free(conf);
        hc_free(a);
        return rc;
    }
    if (!conf->tls_verify)
        hc_log_warn("TLS CERTIFICATE VERIFICATION IS OFF (tls_verify = "
                    "false): anyone on the path can read and change the "
                    "traffic. Use this for tests only.");
    if (set_proxy(a, conf, err, errlen) != 0) {
        hc_tls_conf_free(a->tls);
        hc_agent_conf_free(conf);
        hc_free(a);
        return UV_EINVAL;
    }
    a->io = hc_io_new(loop);
    if (a->io == NULL) {
        snprintf(err, errlen, "out of memory");
        hc_free(a->no_proxy);
        hc_tls_conf_free(a->tls);
        hc_agent_conf_free(conf);
        hc_free(a);
        return UV_ENOMEM;
    }
    uv_timer_init(loop, &a->drain);
    a->drain.data = a;
    for (struct hc_agent_hc *hc = conf->hcs; hc != NULL; hc = hc->next)
        if (hc->role == HC_ROLE_LISTEN)
            listener_new(a, hc);
    *out = a;
    return 0;
}

int hc_agent_start(struct hc_agent *a, char *err, size_t errlen)
{
    int rc = hc__forward_start(a, err, errlen);
    if (rc != 0)
        return rc;
    for (struct listener *l = a->listeners; l != NULL; l = l->next)
        listener_connect(l);
    return 0;
}

static int same_target(const struct hc_agent_hc *x, const struct hc_agent_hc *y)
{
    return strcmp(x->cs.host, y->cs.host) == 0 && x->cs.port == y->cs.port &&
           strcmp(x->cs.entity_path, y->cs.entity_path) == 0;
}

static int same_str(const char *x, const char *y)
{
    return (x == NULL && y == NULL) ||
           (x != NULL && y != NULL && strcmp(x, y) == 0);
}

int hc_agent_reload(struct hc_agent *a, struct hc_agent_conf *conf, char *err,
                    size_t errlen)
{
    struct hc_agent_conf *old = a->conf;
    struct listener *l;

    if (a->stopping) {
        /* Draining tunnels still use the running configuration. */
        snprintf(err, errlen, "stopping: reload ignored");
        hc_agent_conf_free(conf);
        return UV_ECANCELED;
    }

    if (!same_str(conf->ca_file, old->ca_file) ||
        conf->tls_verify != old->tls_verify) {
        struct hc_tls_conf *tls;
        if (hc_tls_conf_client(&tls, conf->ca_file, conf->tls_verify, err,
                               errlen) != 0) {
            hc_agent_conf_free(conf);
            return HC_ETLS;
        }
        /* Live connections still use the old one: keep it until exit. */
        a->old_tls[a->nold_tls < 8 ? a->nold_tls++ : 7] = a->tls;
        a->tls = tls;
    }
    if (set_proxy(a, conf, err, errlen) != 0) {
        hc_agent_conf_free(conf);
        return UV_EINVAL;
    }
    for (l = a->listeners; l != NULL; l = l->next) {
        struct hc_agent_hc *nh;
        if (l->closing)
            continue;
        nh = hc_agent_conf_find(conf, l->hc->name, HC_ROLE_LISTEN);
        if (nh == NULL || !same_target(l->hc, nh)) {
            hc_log_info("reload: %s %s: its tunnels may finish", l->hc->name,
                        nh ? "changed target, reconnecting" : "removed");
            hc_agent_conf_detach(old, l->hc);
            l->own_hc = l->hc;
            listener_retire(l);
            continue;
        }
        if (nh->has_endpoint) {
            snprintf(l->ep_host, sizeof(l->ep_host), "%s", nh->endpoint_host);
            l->ep_port = nh->endpoint_port;
            l->have_ep = 1;
        }
        if (!same_str(nh->cs.key_name, l->hc->cs.key_name) ||
            !same_str(nh->cs.key, l->hc->cs.key) ||
            !same_str(nh->cs.sas, l->hc->cs.sas)) {
            l->hc = nh;
            if (l->status == ST_CONNECTED) {
                hc_log_info("reload: %s: key changed, sending renewToken",
                            nh->name);
                uv_timer_stop(&l->renew);
                send_renew(l);
            } else if (uv_is_active((uv_handle_t *)&l->retry)) {
                hc_log_info("reload: %s: key changed, connecting now",
                            nh->name);
                uv_timer_stop(&l->retry);
                l->attempt = 0;
                l->slow_retry = 0;
                listener_connect(l);
            }
        }
        l->hc = nh;
        nh->matched = 1;
    }
    for (struct hc_agent_hc *h = conf->hcs; h != NULL; h = h->next) {
        if (h->role != HC_ROLE_LISTEN || h->matched)
            continue;
        hc_log_info("reload: %s added", h->name);
        listener_connect(listener_new(a, h));
    }
    hc__forward_reload(a, conf);
    a->conf = conf;
    hc_agent_conf_free(old);
    return 0;
}

char *hc_agent_status_json(struct hc_agent *a)
{
    json_t *root = json_object(), *arr = json_array();
    char *text;

    json_object_set_new(root, "version", json_string(HC_VERSION));
    json_object_set_new(root, "pid", json_integer((json_int_t)getpid()));
    json_object_set_new(root, "config", json_string(a->conf->path));
    for (struct hc_agent_hc *hc = a->conf->hcs; hc != NULL; hc = hc->next) {
        struct listener *l;
        json_t *o;
        char ep[300];
        if (hc->role != HC_ROLE_LISTEN)
            continue;
        for (l = a->listeners; l != NULL; l = l->next)
            if (l->hc == hc && !l->closing)
                break;
        if (l == NULL)
            continue;
        o = json_object();
        json_object_set_new(o, "name", json_string(hc->name));
        json_object_set_new(o, "role", json_string("listener"));
        json_object_set_new(o, "namespace", json_string(hc->cs.host));
        json_object_set_new(o, "port", json_integer(hc->cs.port));
        json_object_set_new(o, "entity", json_string(hc->cs.entity_path));
        json_object_set_new(o, "key_name",
                            hc->cs.key_name ? json_string(hc->cs.key_name)
                                            : json_string("(signature)"));
        if (l->have_ep) {
            snprintf(ep, sizeof(ep), "%s%s%s:%d",
                     strchr(l->ep_host, ':') ? "[" : "", l->ep_host,
                     strchr(l->ep_host, ':') ? "]" : "", l->ep_port);
            json_object_set_new(o, "endpoint", json_string(ep));
        } else {
            json_object_set_new(o, "endpoint", json_null());
        }
        json_object_set_new(
            o, "endpoint_source",
            json_string(hc->has_endpoint ? "config" : "metadata"));
        json_object_set_new(o, "status", json_string(status_names[l->status]));
        json_object_set_new(o, "since", json_integer((json_int_t)l->since));
        json_object_set_new(o, "last_error", json_string(l->last_error));
        json_object_set_new(o, "last_error_time",
                            json_integer((json_int_t)l->last_error_time));
        json_object_set_new(o, "tunnels", json_integer(l->ntunnels));
        json_object_set_new(o, "tunnels_total",
                            json_integer((json_int_t)l->tunnels_total));
        json_object_set_new(o, "rejects", json_integer((json_int_t)l->rejects));
        json_object_set_new(o, "bytes_to_endpoint",
                            json_integer((json_int_t)l->bytes_to_endpoint));
        json_object_set_new(o, "bytes_to_sender",
                            json_integer((json_int_t)l->bytes_to_sender));
        json_object_set_new(o, "token_expiry",
                            json_integer((json_int_t)l->token_expiry));
        json_array_append_new(arr, o);
    }
    hc__forward_status(a, arr);
    json_object_set_new(root, "connections", arr);
    text = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    if (text != NULL) {
        char *out = hc_malloc(strlen(text) + 2);
        if (out != NULL)
            snprintf(out, strlen(text) + 2, "%s\n", text);
        free(text);
        return out;
    }
    return NULL;
}

static void close_tunnels(struct hc_agent *a)
{
    for (struct tunnel *t = a->tunnels, *next; t != NULL; t = next) {
        next = t->next;
        if (t->sp != NULL) {
            hc_splice_close(t->sp, 1001, "agent stopping"); /* may free t */
        } else {
            /* The last of the two to close frees t. */
            struct hc_conn *rv = t->rv, *ep = t->ep;
            if (rv != NULL)
                hc_conn_abort(rv, 0, "agent stopping");
            if (ep != NULL)
                hc_conn_abort(ep, 0, "agent stopping");
        }
    }
    hc__forward_close_all(a);
}

static void on_drain_timeout(uv_timer_t *h)
{
    struct hc_agent *a = h->data;
    hc_log_info("drain_timeout: closing the %ld tunnels left", a->ntunnels);
    close_tunnels(a);
}

void hc_agent_stop(struct hc_agent *a)
{
    if (a->stopping)
        return;
    a->stopping = 1;
    hc__forward_stop(a);
    for (struct listener *l = a->listeners, *next; l != NULL; l = next) {
        next = l->next;
        listener_retire(l);
    }
    if (a->ntunnels > 0 && a->conf->drain_timeout > 0) {
        hc_log_info("stopping: %ld tunnels may finish within %ld s",
                    a->ntunnels, a->conf->drain_timeout);
        uv_timer_start(&a->drain, on_drain_timeout,
                       (uint64_t)a->conf->drain_timeout * 1000, 0);
        uv_unref((uv_handle_t *)&a->drain); /* the tunnels keep us alive */
    } else {
        close_tunnels(a);
    }
}

void hc_agent_free(struct hc_agent *a)
{
    if (a == NULL)
        return;
    uv_close((uv_handle_t *)&a->drain, NULL);
    while (a->listeners != NULL) {
        struct listener *l = a->listeners;
        a->listeners = l->next;
        if (l->own_hc != NULL)
            hc_agent_hc_free(l->own_hc);
        hc_free(l->msg);
        hc_free(l->meta_body);
        hc_free(l);
    }
    hc__forward_free(a);
    hc_io_free(a->io);
    hc_tls_conf_free(a->tls);
    for (int i = 0; i < a->nold_tls; i++)
        hc_tls_conf_free(a->old_tls[i]);
    hc_agent_conf_free(a->conf);
    mbedtls_platform_zeroize(&a->proxy, sizeof(a->proxy));
    hc_free(a->no_proxy);
    hc_free(a);
}
