/*
 * forward.c - hcmd's sender role: what App Service does for a web app.
 *
 * Every [forward NAME] listens on a local address; every connection it
 * accepts becomes a sender WebSocket to the relay (sb-hc-action=connect)
 * and, once the relay answers 101, is spliced with the same hc_splice as
 * the listener role. A refusal (no listener, 401, 403, a listener's
 * reject) closes the local connection at once and is logged. With
 * hosts_file, a forward's hostname resolves to its own loopback address.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "agent_int.h"
#include "hc_err.h"
#include "hc_hosts.h"
#include "hc_log.h"
#include "hc_mem.h"
#include "hc_rand.h"
#include "hc_splice.h"
#include "hc_version.h"

struct forwarder {
    struct hc_agent *a;
    struct hc_agent_hc *hc;
    struct forwarder *next;
    uv_tcp_t server;
    int open;    /* the server handle is open */
    int closing; /* retired: freed when closed and unused */
    int closed;  /* the server's close callback ran (or it never opened) */
    long nconns; /* its connections still open */
    unsigned long total, refused;
    uint64_t bytes_to_relay, bytes_to_client;
    struct hc_agent_hc *own_hc; /* a removed entry this forwarder owns */
    char addr[64];
    int port;
};

static void forwarder_maybe_free(struct forwarder *f);

struct fconn {
    struct forwarder *f;
    struct hc_conn *local, *ws;
    struct hc_splice *sp;
    char ws_key[25];
    char id[37];
    char client[80];
    int client_port;
    int nconns;
    struct fconn *prev, *next;
};

static void fconn_free(struct fconn *fc)
{
    struct forwarder *f = fc->f;
    struct hc_agent *a = f->a;

    if (fc->prev != NULL)
        fc->prev->next = fc->next;
    else
        a->fconns = fc->next;
    if (fc->next != NULL)
        fc->next->prev = fc->prev;
    a->ntunnels--;
    f->nconns--;
    hc_free(fc);
    forwarder_maybe_free(f);
}

static void fconn_gone(struct fconn *fc)
{
    if (--fc->nconns == 0 && fc->sp == NULL)
        fconn_free(fc);
}

static void splice_done(struct hc_splice *sp)
{
    struct fconn *fc = sp->data;
    char esc[200];

    hc_log_info(
        "forward %s id=%s client=%s:%d bytes_to_relay=%llu "
        "bytes_to_client=%llu duration_ms=%llu reason=\"%s\"",
        fc->f->hc->name, fc->id, fc->client, fc->client_port,
        (unsigned long long)sp->bytes_from_tcp,
        (unsigned long long)sp->bytes_to_tcp,
        (unsigned long long)(sp->end_ms - sp->start_ms),
        hc_log_escape(esc, sizeof(esc), sp->reason, strlen(sp->reason)));
    fc->f->bytes_to_relay += sp->bytes_from_tcp;
    fc->f->bytes_to_client += sp->bytes_to_tcp;
    hc_splice_free(sp);
    fconn_free(fc);
}

/* ---- the sender WebSocket ---- */

static void ws_connected(struct hc_conn *c)
{
    struct fconn *fc = c->data;
    char *req =
        hc_http_ws_key(fc->ws_key) == 0
            ? hc__agent_ws_request(fc->f->hc, fc->f->a->conf->token_lifetime,
                                   "connect", fc->id, fc->ws_key, NULL)
            : NULL;

    if (req == NULL) {
        hc_conn_abort(c, UV_ENOMEM, "out of memory");
        return;
    }
    hc_conn_write(c, req, strlen(req));
    hc_free_secret_str(req);
}

static void ws_head(struct hc_conn *c, const struct hc_http_head *h)
{
    struct fconn *fc = c->data;
    char esc[200];

    hc_conn_stop_timer(c);
    if (!hc__agent_upgrade_ok(h, fc->ws_key)) {
        char why[300];
        snprintf(why, sizeof(why), "relay answered %d %s", h->status,
                 hc_log_escape(esc, sizeof(esc), h->reason, h->reason_len));
        hc_log_warn("forward %s: client %s:%d refused: %s", fc->f->hc->name,
                    fc->client, fc->client_port, why);
        fc->f->refused++;
        hc_conn_abort(c, HC_EAUTH, why); /* ws_close ends the client too */
        return;
    }
    hc_conn_ws_start(c);
    if (fc->local == NULL) {
        hc_conn_send_close(c, 1000, "client gone", 11);
        return;
    }
    hc_log_debug("forward %s: %s established", fc->f->hc->name, fc->id);
    fc->nconns = 0; /* both now belong to the splice */
    fc->f->total++;
    fc->sp = hc_splice_new(fc->local, c, splice_done, fc);
    if (fc->sp == NULL)
        fconn_free(fc);
}

static void ws_close(struct hc_conn *c, int err, const char *reason)
{
    struct fconn *fc = c->data;

    fc->ws = NULL;
    if (err != 0 && err != HC_EAUTH && err != UV_ECONNABORTED) {
        hc_log_warn("forward %s: client %s:%d: relay connection failed: %s",
                    fc->f->hc->name, fc->client, fc->client_port, reason);
    }
    if (fc->local != NULL)
        hc_conn_abort(fc->local, err ? err : UV_ECONNABORTED,
                      "relay connection failed");
    fconn_gone(fc);
}

static void ws_timeout(struct hc_conn *c)
{
    hc_conn_abort(c, UV_ETIMEDOUT, "relay handshake timed out");
}

static const struct hc_conn_cbs ws_cbs = {
    .on_connected = ws_connected,
    .on_head = ws_head,
    .on_close = ws_close,
};

/* ---- the local connection, until the splice ---- */

static void local_close(struct hc_conn *c, int err, const char *reason)
{
    struct fconn *fc = c->data;

    fc->local = NULL;
    if (fc->ws != NULL)
        hc_conn_abort(fc->ws, UV_ECONNABORTED, "client gone");
    fconn_gone(fc);
}

static const struct hc_conn_cbs local_cbs = {
    .on_close = local_close,
};

static void on_connection(uv_stream_t *server, int status)
{
    struct forwarder *f = server->data;
    struct hc_agent *a = f->a;
    struct hc_agent_hc *hc = f->hc;
    struct fconn *fc;

    if (status < 0) {
        hc_log_warn("forward %s: accept: %s", hc->name, uv_strerror(status));
        return;
    }
    fc = hc_xcalloc(1, sizeof(*fc));
    fc->f = f;
    hc_guid(fc->id);
    fc->next = a->fconns;
    if (a->fconns != NULL)
        a->fconns->prev = fc;
    a->fconns = fc;
    a->ntunnels++;
    f->nconns++;
    fc->local = hc_conn_accept(a->io, server, NULL, &local_cbs, fc);
    if (fc->local == NULL) {
        fconn_free(fc);
        return;
    }
    fc->nconns = 1;
    snprintf(fc->client, sizeof(fc->client), "%s%s%s",
             strchr(fc->local->peer_addr, ':') ? "[" : "", fc->local->peer_addr,
             strchr(fc->local->peer_addr, ':') ? "]" : "");
    fc->client_port = fc->local->peer_port;
    /* Bytes wait in the kernel until the relay has said yes. */
    hc_conn_raw_start(fc->local);
    hc_conn_read_stop(fc->local);
    if (a->stopping || a->ntunnels > a->conf->max_tunnels) {
        hc_log_warn("forward %s: tunnel limit (%ld) reached: closing client "
                    "%s:%d",
                    hc->name, a->conf->max_tunnels, fc->client,
                    fc->client_port);
        hc_conn_abort(fc->local, UV_EBUSY, "tunnel limit");
        return;
    }
    fc->ws = hc_conn_connect_via(
        a->io, hc->cs.host, hc->cs.port, a->tls, hc->cs.host,
        hc__agent_proxy_for(a, hc->cs.host), &ws_cbs, fc);
    if (fc->ws == NULL) {
        hc_conn_abort(fc->local, UV_ENOMEM, "cannot dial the relay");
        return;
    }
    fc->nconns++;
    hc_conn_set_timer(fc->ws, (uint64_t)a->conf->connect_timeout * 1000,
                      ws_timeout);
}

/* ---- starting and stopping ---- */

/* A stable loopback address per name: 127.77.X.Y, unique among forwards. */
static void pick_loopback(struct hc_agent *a, struct forwarder *f)
{
    uint32_t h = 2166136261u;
    for (const char *p = f->hc->name; *p; p++)
        h = (h ^ (unsigned char)*p) * 16777619u;
    for (int tries = 0; tries < 65536; tries++, h++) {
        unsigned x = (h >> 8) & 0xff, y = h & 0xff;
        int taken = 0;
        if (y == 0 || y == 255)
            continue;
        snprintf(f->addr, sizeof(f->addr), "127.77.%u.%u", x, y);
        for (struct forwarder *o = a->forwarders; o != NULL; o = o->next)
            if (o != f && strcmp(o->addr, f->addr) == 0)
                taken = 1;
        if (!taken)
            return;
    }
}

static int write_hosts(struct hc_agent *a, int remove, char *err, size_t errlen)
{
    struct hc_hosts_entry entries[256];
    size_t n = 0;

    if (a->conf->hosts_file == NULL)
        return 0;
    for (struct forwarder *f = a->forwarders; f && !remove; f = f->next) {
        if (f->hc->hostname == NULL || f->closing || n == 256)
            continue;
        entries[n].addr = f->addr;
        entries[n].hostname = f->hc->hostname;
        entries[n].forward = f->hc->name;
        n++;
    }
    return hc_hosts_update(a->conf->hosts_file, entries, n, err, errlen);
}

static void server_closed(uv_handle_t *h)
{
    struct forwarder *f = h->data;
    f->closed = 1;
    forwarder_maybe_free(f);
}

static void forwarder_maybe_free(struct forwarder *f)
{
    struct forwarder **pp;

    if (!f->closing || !f->closed || f->nconns > 0)
        return;
    for (pp = &f->a->forwarders; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == f) {
            *pp = f->next;
            break;
        }
    }
    if (f->own_hc != NULL)
        hc_agent_hc_free(f->own_hc);
    hc_free(f);
}

/* Stop accepting; connections go on and the forwarder goes with them. */
static void forwarder_retire(struct forwarder *f)
{
    if (f->closing)
        return;
    f->closing = 1;
    if (f->open) {
        f->open = 0;
        uv_close((uv_handle_t *)&f->server, server_closed);
    } else {
        f->closed = 1;
        forwarder_maybe_free(f);
    }
}

static struct forwarder *forwarder_new(struct hc_agent *a,
                                       struct hc_agent_hc *hc)
{
    struct forwarder *f = hc_xcalloc(1, sizeof(*f)), **tail;

    f->a = a;
    f->hc = hc;
    f->port = hc->bind_port;
    f->closed = 1; /* until the server handle exists */
    for (tail = &a->forwarders; *tail != NULL; tail = &(*tail)->next)
        ;
    *tail = f;
    if (hc->bind_host[0] != '\0')
        snprintf(f->addr, sizeof(f->addr), "%s", hc->bind_host);
    else if (hc->hostname != NULL && a->conf->hosts_file != NULL)
        pick_loopback(a, f);
    else
        snprintf(f->addr, sizeof(f->addr), "127.0.0.1");
    return f;
}

static int forwarder_bind(struct forwarder *f, char *err, size_t errlen)
{
    struct hc_agent *a = f->a;
    struct sockaddr_storage ss;
    int rc;

    if (strchr(f->addr, ':') != NULL)
        rc = uv_ip6_addr(f->addr, f->port, (struct sockaddr_in6 *)&ss);
    else
        rc = uv_ip4_addr(f->addr, f->port, (struct sockaddr_in *)&ss);
    if (rc != 0) {
        snprintf(err, errlen, "forward %s: bind: '%s' is not an IP address",
                 f->hc->name, f->addr);
        return rc;
    }
    uv_tcp_init(a->loop, &f->server);
    f->server.data = f;
    f->open = 1;
    f->closed = 0;
    rc = uv_tcp_bind(&f->server, (struct sockaddr *)&ss, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&f->server, 511, on_connection);
    if (rc != 0) {
        snprintf(err, errlen, "forward %s: listen on %s%s%s:%d: %s",
                 f->hc->name, strchr(f->addr, ':') ? "[" : "", f->addr,
                 strchr(f->addr, ':') ? "]" : "", f->port, uv_strerror(rc));
        return rc;
    }
    hc_log_info("forward %s: listening on %s%s%s:%d for %s%s%s", f->hc->name,
                strchr(f->addr, ':') ? "[" : "", f->addr,
                strchr(f->addr, ':') ? "]" : "", f->port, f->hc->cs.entity_path,
                f->hc->hostname ? ", name " : "",
                f->hc->hostname ? f->hc->hostname : "");
    return 0;
}

int hc__forward_start(struct hc_agent *a, char *err, size_t errlen)
{
    int rc;

    for (struct hc_agent_hc *hc = a->conf->hcs; hc != NULL; hc = hc->next)
        if (hc->role == HC_ROLE_FORWARD)
            forwarder_new(a, hc);
    for (struct forwarder *f = a->forwarders; f != NULL; f = f->next) {
        rc = forwarder_bind(f, err, errlen);
        if (rc != 0)
            return rc;
    }
    rc = write_hosts(a, 0, err, errlen);
    if (rc == 0 && a->conf->hosts_file != NULL) {
        a->hosts_written = 1;
        hc_log_info("hosts file %s: hcmd block written", a->conf->hosts_file);
    }
    return rc;
}

void hc__forward_reload(struct hc_agent *a, struct hc_agent_conf *conf)
{
    struct hc_agent_conf *old = a->conf;
    char err[400];

    for (struct forwarder *f = a->forwarders, *next; f != NULL; f = next) {
        struct hc_agent_hc *nh;
        next = f->next;
        if (f->closing)
            continue;
        nh = hc_agent_conf_find(conf, f->hc->name, HC_ROLE_FORWARD);
        if (nh != NULL && nh->bind_port == f->hc->bind_port &&
            strcmp(nh->bind_host, f->hc->bind_host) == 0 &&
            ((nh->hostname == NULL) == (f->hc->hostname == NULL)) &&
            (conf->hosts_file == NULL) == (old->hosts_file == NULL)) {
            /* Same address: new connections use the new string and key. */
            f->hc = nh;
            nh->matched = 1;
            continue;
        }
        hc_log_info("reload: forward %s %s", f->hc->name,
                    nh ? "changed: listening again" : "removed");
        hc_agent_conf_detach(old, f->hc);
        f->own_hc = f->hc;
        forwarder_retire(f); /* may free f */
    }
    /* New forwards take the new conf's settings (hosts_file). */
    a->conf = conf;
    for (struct hc_agent_hc *h = conf->hcs; h != NULL; h = h->next) {
        struct forwarder *f;
        if (h->role != HC_ROLE_FORWARD || h->matched)
            continue;
        f = forwarder_new(a, h);
        if (forwarder_bind(f, err, sizeof(err)) != 0) {
            hc_log_err("reload: %s", err);
            forwarder_retire(f);
        }
    }
    if (write_hosts(a, 0, err, sizeof(err)) != 0)
        hc_log_warn("hosts file: %s", err);
    else if (conf->hosts_file != NULL)
        a->hosts_written = 1;
    if (old->hosts_file != NULL &&
        (conf->hosts_file == NULL ||
         strcmp(old->hosts_file, conf->hosts_file) != 0)) {
        /* The block moves: take it out of the old file. */
        if (hc_hosts_update(old->hosts_file, NULL, 0, err, sizeof(err)) != 0)
            hc_log_warn("hosts file: %s", err);
    }
    a->conf = old;
    for (struct hc_agent_hc *h = conf->hcs; h != NULL; h = h->next)
        h->matched = 0;
}

void hc__forward_status(struct hc_agent *a, void *arr)
{
    for (struct forwarder *f = a->forwarders; f != NULL; f = f->next) {
        json_t *o;
        char bind[100];
        if (f->closing)
            continue;
        o = json_object();
        snprintf(bind, sizeof(bind), "%s%s%s:%d",
                 strchr(f->addr, ':') ? "[" : "", f->addr,
                 strchr(f->addr, ':') ? "]" : "", f->port);
        json_object_set_new(o, "name", json_string(f->hc->name));
        json_object_set_new(o, "role", json_string("forward"));
        json_object_set_new(o, "namespace", json_string(f->hc->cs.host));
        json_object_set_new(o, "port", json_integer(f->hc->cs.port));
        json_object_set_new(o, "entity", json_string(f->hc->cs.entity_path));
        json_object_set_new(o, "key_name",
                            json_string(f->hc->cs.key_name ? f->hc->cs.key_name
                                                           : "(signature)"));
        json_object_set_new(o, "bind", json_string(bind));
        json_object_set_new(o, "hostname",
                            f->hc->hostname ? json_string(f->hc->hostname)
                                            : json_null());
        json_object_set_new(
            o, "status", json_string(f->open ? "Listening" : "Not listening"));
        json_object_set_new(o, "tunnels", json_integer(f->nconns));
        json_object_set_new(o, "tunnels_total",
                            json_integer((json_int_t)f->total));
        json_object_set_new(o, "refused", json_integer((json_int_t)f->refused));
        json_object_set_new(o, "bytes_to_relay",
                            json_integer((json_int_t)f->bytes_to_relay));
        json_object_set_new(o, "bytes_to_client",
                            json_integer((json_int_t)f->bytes_to_client));
        json_array_append_new(arr, o);
    }
}

void hc__forward_stop(struct hc_agent *a)
{
    char err[300];

    /* Only a block this process wrote is ours to remove. */
    if (a->hosts_written && write_hosts(a, 1, err, sizeof(err)) != 0)
        hc_log_warn("hosts file: %s", err);
    a->hosts_written = 0;
    for (struct forwarder *f = a->forwarders, *next; f != NULL; f = next) {
        next = f->next;
        forwarder_retire(f); /* may free f */
    }
}

void hc__forward_close_all(struct hc_agent *a)
{
    for (struct fconn *fc = a->fconns, *next; fc != NULL; fc = next) {
        next = fc->next;
        if (fc->sp != NULL) {
            hc_splice_close(fc->sp, 1001, "agent stopping"); /* may free fc */
        } else {
            struct hc_conn *ws = fc->ws, *local = fc->local;
            if (ws != NULL)
                hc_conn_abort(ws, 0, "agent stopping");
            if (local != NULL)
                hc_conn_abort(local, 0, "agent stopping");
        }
    }
}

void hc__forward_free(struct hc_agent *a)
{
    while (a->forwarders != NULL) {
        struct forwarder *f = a->forwarders;
        a->forwarders = f->next;
        if (f->own_hc != NULL)
            hc_agent_hc_free(f->own_hc);
        hc_free(f);
    }
}
