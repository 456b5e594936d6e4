/*
 * diag.c - "hcmd test": diagnostics from this host, one step at a time,
 * stopping at the first that fails and saying why.
 *
 *   hcmd test HOST:PORT   DNS of the endpoint, TCP connect to it
 *   hcmd test NAME        for a [connection NAME]: the endpoint steps, DNS
 *                         of the namespace, TCP and TLS (certificate and
 *                         name) to it, the listen authorization, and, when
 *                         the config also has a [forward] for the same
 *                         hybrid connection, a round trip through the relay
 *                         to the endpoint.
 *
 * The listen authorization is checked with the entity description request,
 * which needs the Listen right but registers no listener: the relay can
 * never hand a real sender to the test.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <uv.h>

#include "agent_int.h"
#include "hc_agent.h"
#include "hc_cli.h"
#include "hc_conf.h"
#include "hc_conn.h"
#include "hc_err.h"
#include "hc_http.h"
#include "hc_log.h"
#include "hc_mem.h"
#include "hc_proxy.h"
#include "hc_sas.h"
#include "hc_tls.h"
#include "hc_version.h"

#define STEP_TIMEOUT_MS 10000
#define BODY_MAX (64 * 1024)

struct probe {
    uv_loop_t *loop;
    struct hc_io *io;
    int done;
    int connected;
    int status; /* HTTP status of the answer, 0 when none */
    char err[400];
    char suite[100];
    char *request; /* sent when connected; NULL: just connect */
    int want_body;
    char *body;
    size_t body_len;
    char ws_key[25];
    int upgrade_ok;
};

static int failed;

static void report(const char *result, const char *step, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void report(const char *result, const char *step, const char *fmt, ...)
{
    char msg[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    printf("  %-5s %-22s %s\n", result, step, msg);
    fflush(stdout);
    if (strcmp(result, "FAIL") == 0)
        failed = 1;
}

/* ---- one connection, run to its end ---- */

static void p_connected(struct hc_conn *c)
{
    struct probe *p = c->data;
    p->connected = 1;
    if (c->use_tls)
        snprintf(p->suite, sizeof(p->suite), "%s", hc_tls_suite(&c->tls));
    if (p->request == NULL) {
        p->done = 1;
        hc_conn_close(c, 0, "done");
        return;
    }
    hc_conn_write(c, p->request, strlen(p->request));
}

static void p_head(struct hc_conn *c, const struct hc_http_head *h)
{
    struct probe *p = c->data;
    p->status = h->status;
    if (h->status == 101) {
        char want[29];
        const struct hc_http_header *acc =
            hc_http_find(h, "Sec-WebSocket-Accept");
        hc_http_ws_accept(p->ws_key, strlen(p->ws_key), want);
        p->upgrade_ok = acc != NULL && acc->value_len == 28 &&
                        memcmp(acc->value, want, 28) == 0;
    }
    if (h->status >= 300 || h->status == 101 || !p->want_body) {
        if (h->reason_len > 0 && h->status != 101 && h->status != 200)
            hc_log_escape(p->err, sizeof(p->err), h->reason, h->reason_len);
        p->done = 1;
        hc_conn_close(c, 0, "done");
        return;
    }
    hc_conn_raw_start(c);
}

static void p_data(struct hc_conn *c, const uint8_t *data, size_t len)
{
    struct probe *p = c->data;
    char *nb;
    if (p->body_len + len > BODY_MAX) {
        hc_conn_abort(c, HC_ETOOBIG, "answer too large");
        return;
    }
    nb = hc_realloc(p->body, p->body_len + len + 1);
    if (nb == NULL) {
        hc_conn_abort(c, UV_ENOMEM, "out of memory");
        return;
    }
    memcpy(nb + p->body_len, data, len);
    p->body = nb;
    p->body_len += len;
    nb[p->body_len] = '\0';
}

static void p_close(struct hc_conn *c, int err, const char *reason)
{
    struct probe *p = c->data;
    if (!p->done && err != 0)
        snprintf(p->err, sizeof(p->err), "%s", reason);
    p->done = 1;
}

static void p_timeout(struct hc_conn *c)
{
    hc_conn_abort(c, UV_ETIMEDOUT, "no answer within 10 s");
}

static const struct hc_conn_cbs probe_cbs = {
    .on_connected = p_connected,
    .on_head = p_head,
    .on_data = p_data,
    .on_close = p_close,
};

/* Connect (TLS when tls is set), send request, wait for the answer. */
/* The proxy for relay connections, when the config or environment has one. */
static const struct hc_proxy *relay_proxy;
static const char *relay_no_proxy;

static void run_probe(struct probe *p, const char *host, int port,
                      struct hc_tls_conf *tls)
{
    const struct hc_proxy *proxy = NULL;
    struct hc_conn *c;
    uint64_t deadline = uv_now(p->loop) + STEP_TIMEOUT_MS + 1000;

    /* Endpoints (tls NULL) are reached directly, relays maybe not. */
    if (tls != NULL && relay_proxy != NULL &&
        !hc_proxy_exempt(relay_no_proxy, host))
        proxy = relay_proxy;
    c = hc_conn_connect_via(p->io, host, port, tls, host, proxy, &probe_cbs, p);
    if (c == NULL) {
        snprintf(p->err, sizeof(p->err), "cannot start a connection");
        return;
    }
    hc_conn_set_timer(c, STEP_TIMEOUT_MS, p_timeout);
    while (!p->done && uv_now(p->loop) < deadline)
        uv_run(p->loop, UV_RUN_ONCE);
    /* Let the closing handles finish. */
    for (int i = 0; i < 20; i++)
        uv_run(p->loop, UV_RUN_NOWAIT);
}

static void probe_reset(struct probe *p)
{
    hc_free(p->request);
    hc_free(p->body);
    memset((char *)p + offsetof(struct probe, done), 0,
           sizeof(*p) - offsetof(struct probe, done));
}

/* ---- the steps ---- */

static int step_dns(uv_loop_t *loop, const char *what, const char *host)
{
    uv_getaddrinfo_t req;
    struct addrinfo hints, *ai;
    char list[300] = "";
    size_t o = 0;
    int rc;

    memset(&hints, 0, sizeof(hints));
    hints.ai_socktype = SOCK_STREAM;
    rc = uv_getaddrinfo(loop, &req, NULL, host, NULL, &hints);
    if (rc != 0) {
        report("FAIL", what, "%s: %s", host, uv_strerror(rc));
        return -1;
    }
    for (ai = req.addrinfo; ai != NULL && o < sizeof(list) - 60;
         ai = ai->ai_next) {
        char a[64] = "";
        if (ai->ai_family == AF_INET)
            uv_ip4_name((struct sockaddr_in *)ai->ai_addr, a, sizeof(a));
        else if (ai->ai_family == AF_INET6)
            uv_ip6_name((struct sockaddr_in6 *)ai->ai_addr, a, sizeof(a));
        if (a[0] != '\0' && strstr(list, a) == NULL)
            o += (size_t)snprintf(list + o, sizeof(list) - o, "%s%s",
                                  o ? ", " : "", a);
    }
    uv_freeaddrinfo(req.addrinfo);
    report("ok", what, "%s -> %s", host, list);
    return 0;
}

static int step_tcp(struct probe *p, const char *what, const char *host,
                    int port)
{
    uint64_t t0 = uv_hrtime();

    probe_reset(p);
    run_probe(p, host, port, NULL);
    if (!p->connected) {
        report("FAIL", what, "%s:%d: %s", host, port,
               p->err[0] ? p->err : "no connection");
        return -1;
    }
    report("ok", what, "%s:%d connected in %.1f ms", host, port,
           (double)(uv_hrtime() - t0) / 1e6);
    return 0;
}

/* The entity description with the Listen key: authorization and metadata. */
static int step_listen(struct probe *p, struct hc_tls_conf *tls,
                       const struct hc_agent_hc *hc, char *ep_host,
                       size_t ep_cap, int *ep_port)
{
    probe_reset(p);
    p->request = hc__agent_describe_request(hc, 600);
    if (p->request == NULL) {
        report("FAIL", "listen authorization", "out of memory");
        return -1;
    }
    p->want_body = 1;
    run_probe(p, hc->cs.host, hc->cs.port, tls);
    hc_free_secret_str(p->request);
    p->request = NULL;
    if (p->status == 401 || p->status == 403) {
        report("FAIL", "listen authorization",
               "the relay refused rule %s for %s: %d %s",
               hc->cs.key_name ? hc->cs.key_name : "(signature)",
               hc->cs.entity_path, p->status, p->err);
        return -1;
    }
    if (p->status != 200) {
        report("FAIL", "listen authorization", "%s",
               p->err[0] ? p->err : "no answer from the relay");
        return -1;
    }
    if (p->body == NULL ||
        strstr(p->body, "HybridConnectionDescription") == NULL) {
        report("FAIL", "listen authorization",
               "the relay has no hybrid connection %s", hc->cs.entity_path);
        return -1;
    }
    report("ok", "listen authorization", "rule %s may listen on %s",
           hc->cs.key_name ? hc->cs.key_name : "(signature)",
           hc->cs.entity_path);
    if (ep_host != NULL) {
        char err[200];
        if (hc_agent_meta_endpoint(p->body, p->body_len, ep_host, ep_cap,
                                   ep_port, err, sizeof(err)) != 0) {
            report("FAIL", "endpoint (metadata)", "%s", err);
            return -1;
        }
        report("ok", "endpoint (metadata)", "%s:%d from the user metadata",
               ep_host, *ep_port);
    }
    return 0;
}

/* A sender through the relay: 101 means a listener joined and its
 * endpoint answered (hcmd rejects when it cannot reach the endpoint). */
static int step_round_trip(struct probe *p, struct hc_tls_conf *tls,
                           const struct hc_agent_hc *fwd)
{
    probe_reset(p);
    if (hc_http_ws_key(p->ws_key) != 0 ||
        (p->request = hc__agent_ws_request(fwd, 600, "connect", NULL, p->ws_key,
                                           NULL)) == NULL) {
        report("FAIL", "round trip", "out of memory");
        return -1;
    }
    run_probe(p, fwd->cs.host, fwd->cs.port, tls);
    hc_free_secret_str(p->request);
    p->request = NULL;
    if (p->status == 101 && p->upgrade_ok) {
        report("ok", "round trip",
               "a sender with rule %s reached the endpoint through the "
               "relay (forward %s)",
               fwd->cs.key_name ? fwd->cs.key_name : "(signature)", fwd->name);
        return 0;
    }
    report("FAIL", "round trip", "%s%d %s (forward %s)",
           p->status ? "relay answered " : "", p->status,
           p->err[0] ? p->err : "", fwd->name);
    return -1;
}

static const char usage[] =
    "usage: hcmd test HOST:PORT            DNS and TCP connect to an "
    "endpoint\n"
    "       hcmd test NAME [-c FILE]       every step for [connection "
    "NAME]\n";

int hc_diag_main(int argc, char **argv)
{
    const char *path = "/etc/hcmd/hcm.ini", *target = NULL;
    struct hc_agent_conf *conf = NULL;
    struct hc_agent_hc *hc = NULL, *fwd = NULL;
    struct hc_tls_conf *tls = NULL;
    struct probe p;
    uv_loop_t loop;
    char host[256], err[400], *errors = NULL;
    int port;

    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "-c") == 0 && i + 1 < argc) {
            path = argv[++i];
        } else if (strcmp(argv[i], "--help") == 0 ||
                   strcmp(argv[i], "-h") == 0) {
            fputs(usage, stdout);
            return 0;
        } else if (target == NULL && argv[i][0] != '-') {
            target = argv[i];
        } else {
            fprintf(stderr, "hcmd: test: unexpected argument '%s'\n%s", argv[i],
                    usage);
            return 2;
        }
    }
    if (target == NULL) {
        fprintf(stderr, "hcmd: test: name or HOST:PORT missing\n%s", usage);
        return 2;
    }
    hc_log_set_level(HC_LOG_ERR); /* the steps say what matters */
    uv_loop_init(&loop);
    memset(&p, 0, sizeof(p));
    p.loop = &loop;
    p.io = hc_io_new(&loop);
    if (p.io == NULL) {
        fprintf(stderr, "hcmd: test: out of memory\n");
        return 1;
    }

    if (hc_conf_hostport(target, host, sizeof(host), &port) == 0) {
        printf("hcmd test %s\n", target);
        if (port == 0)
            report("FAIL", "endpoint", "port 0");
        else if (step_dns(&loop, "endpoint DNS", host) == 0)
            step_tcp(&p, "endpoint TCP", host, port);
        goto out;
    }
    if (hc_agent_conf_load(path, &conf, &errors) != 0) {
        fputs(errors ? errors : "hcmd: cannot load configuration\n", stderr);
        hc_free(errors);
        failed = 1;
        goto out;
    }
    hc = hc_agent_conf_find(conf, target, HC_ROLE_LISTEN);
    if (hc == NULL) {
        fprintf(stderr, "hcmd: test: no [connection %s] in %s\n", target, path);
        failed = 1;
        goto out;
    }
    for (struct hc_agent_hc *h = conf->hcs; h != NULL; h = h->next)
        if (h->role == HC_ROLE_FORWARD &&
            strcmp(h->cs.host, hc->cs.host) == 0 && h->cs.port == hc->cs.port &&
            strcasecmp(h->cs.entity_path, hc->cs.entity_path) == 0)
            fwd = h;
    printf("hcmd test %s (%s, hybrid connection %s on %s:%d)\n", target, path,
           hc->cs.entity_path, hc->cs.host, hc->cs.port);
    if (hc_tls_conf_client(&tls, conf->ca_file, conf->tls_verify, err,
                           sizeof(err)) != 0) {
        report("FAIL", "TLS setup", "%s", err);
        goto out;
    }
    {
        static struct hc_proxy proxy;
        int rc = hc_agent_conf_proxy(conf, &proxy, &relay_no_proxy, err,
                                     sizeof(err));
        if (rc < 0) {
            report("FAIL", "proxy", "%s", err);
            goto out;
        }
        if (rc > 0 && !hc_proxy_exempt(relay_no_proxy, hc->cs.host)) {
            relay_proxy = &proxy;
            report("ok", "proxy", "relay connections go through %s:%d%s",
                   proxy.host, proxy.port,
                   proxy.auth[0] ? " with credentials" : "");
        }
    }
    if (hc->has_endpoint) {
        if (step_dns(&loop, "endpoint DNS", hc->endpoint_host) != 0 ||
            step_tcp(&p, "endpoint TCP", hc->endpoint_host,
                     hc->endpoint_port) != 0)
            goto out;
    }
    if (step_dns(&loop, "namespace DNS", hc->cs.host) != 0)
        goto out;
    probe_reset(&p);
    run_probe(&p, hc->cs.host, hc->cs.port, tls);
    if (!p.connected) {
        report("FAIL", "namespace TCP+TLS", "%s:%d: %s", hc->cs.host,
               hc->cs.port, p.err[0] ? p.err : "no connection");
        goto out;
    }
    report("ok", "namespace TCP+TLS", "%s:%d, %s, %s", hc->cs.host, hc->cs.port,
           p.suite,
           conf->tls_verify ? "certificate and name verified"
                            : "CERTIFICATE NOT VERIFIED (tls_verify = false)");
    if (step_listen(&p, tls, hc, hc->has_endpoint ? NULL : host, sizeof(host),
                    &port) != 0)
        goto out;
    if (!hc->has_endpoint && (step_dns(&loop, "endpoint DNS", host) != 0 ||
                              step_tcp(&p, "endpoint TCP", host, port) != 0))
        goto out;
    if (fwd != NULL)
        step_round_trip(&p, tls, fwd);
    else
        report("skip", "round trip",
               "no [forward] for %s in the config (a Send rule is needed)",
               hc->cs.entity_path);
out:
    probe_reset(&p);
    hc_io_free(p.io);
    uv_run(&loop, UV_RUN_NOWAIT);
    uv_loop_close(&loop);
    hc_tls_conf_free(tls);
    hc_agent_conf_free(conf);
    printf("%s\n", failed ? "result: FAILED (the first FAIL line says why)"
                          : "result: all checks passed");
    return failed ? 1 : 0;
}
