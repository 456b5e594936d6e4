/*
 * agent_int.h - what agent.c (listener role) and forward.c (sender role)
 * share. Not a public interface.
 */
#ifndef HC_AGENT_INT_H
#define HC_AGENT_INT_H

#include <stdint.h>

#include <uv.h>

#include "hc_agent.h"
#include "hc_conn.h"
#include "hc_http.h"
#include "hc_tls.h"

struct listener;
struct tunnel;
struct forwarder;
struct fconn;

struct hc_agent {
    uv_loop_t *loop;
    struct hc_io *io;
    struct hc_tls_conf *tls;
    struct hc_agent_conf *conf;
    struct listener *listeners;
    struct tunnel *tunnels;
    struct forwarder *forwarders;
    struct fconn *fconns;
    long ntunnels; /* listener tunnels and forwarded connections */
    int stopping;
    int hosts_written;              /* this process wrote the hosts block */
    uv_timer_t drain;               /* drain_timeout at stop */
    struct hc_tls_conf *old_tls[8]; /* replaced by reloads, still in use */
    struct hc_proxy proxy;          /* for relay connections */
    int use_proxy;
    char *no_proxy;
    int nold_tls;
};

/* The proxy for a connection to host, or NULL (none, or no_proxy). */
const struct hc_proxy *hc__agent_proxy_for(struct hc_agent *a,
                                           const char *host);

/* A token for hc's entity, valid lifetime seconds; *expiry gets se. */
char *hc__agent_token(const struct hc_agent_hc *hc, long lifetime,
                      uint64_t *expiry);
/*
 * A WebSocket upgrade request to /$hc/ENTITY?sb-hc-action=ACTION
 * [&sb-hc-id=ID] with a fresh token in ServiceBusAuthorization; and the
 * entity description request (Authorization). hc_malloc'd; they hold the
 * token, so free them with hc_free_secret_str. NULL when out of memory.
 */
char *hc__agent_ws_request(const struct hc_agent_hc *hc, long lifetime,
                           const char *action, const char *id,
                           const char *ws_key, uint64_t *expiry);
char *hc__agent_describe_request(const struct hc_agent_hc *hc, long lifetime);
/* The entity path for a URL, each segment percent-encoded (hc_malloc'd). */
char *hc__agent_entity_path(const char *entity);
/* A Host header value: host, [v6], with :port unless 443. */
void hc__agent_host_header(char *out, size_t len, const char *host, int port);
/* 1 if h is a 101 answering our Sec-WebSocket-Key. */
int hc__agent_upgrade_ok(const struct hc_http_head *h, const char *key);

/* forward.c: bind every [forward], write the hosts block. */
int hc__forward_start(struct hc_agent *a, char *err, size_t errlen);
/* Stop accepting and remove the hosts block; connections go on. */
void hc__forward_stop(struct hc_agent *a);
/* End every forwarded connection (1001 towards the relay). */
void hc__forward_close_all(struct hc_agent *a);
/* Append one JSON object per forward to arr (a json_t array). */
void hc__forward_status(struct hc_agent *a, void *arr);
/* Apply a new configuration's [forward] sections (a->conf is still old). */
void hc__forward_reload(struct hc_agent *a, struct hc_agent_conf *conf);
void hc__forward_free(struct hc_agent *a);

#endif
