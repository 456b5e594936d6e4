/*
 * hc_agent.h - the hcmd agent: its configuration (hcm.ini) and the listener
 * role, which keeps one control channel per hybrid connection and splices
 * every accepted sender to the configured endpoint.
 */
#ifndef HC_AGENT_H
#define HC_AGENT_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "hc_conn.h"
#include "hc_connstr.h"

enum hc_agent_role {
    HC_ROLE_LISTEN,  /* [connection NAME]: relay -> endpoint */
    HC_ROLE_FORWARD, /* [forward NAME]: local port -> relay */
};

struct hc_agent_hc {
    char *name;
    enum hc_agent_role role;
    struct hc_connstr cs; /* parsed connection_string; holds the key */
    /* listen */
    char endpoint_host[256];
    int endpoint_port;
    int has_endpoint; /* from the file; else read from userMetadata */
    /* forward */
    char bind_host[64]; /* empty: a loopback address chosen by hcmd */
    int bind_port;
    char *hostname; /* DNS name redirected through hosts_file, or NULL */
    int hostname_line;
    int matched; /* reload: an entry of the running config matched it */
    int line;
    struct hc_agent_hc *next;
};

struct hc_agent_conf {
    char *path;
    char *ca_file; /* NULL: the system store */
    int tls_verify;
    int log_level;
    long max_tunnels;
    long token_lifetime;  /* seconds */
    long ping_interval;   /* seconds */
    long retry_max;       /* seconds, the reconnect backoff cap */
    long connect_timeout; /* seconds, endpoint and rendezvous dials */
    char *hosts_file;     /* hosts file with hcmd's block, or NULL */
    long drain_timeout;   /* seconds live tunnels get at stop */
    char *control_socket; /* NULL: hc_control_default_path */
    char *control_group;  /* group allowed on the socket, or NULL */
    char *proxy;          /* http://[user:pass@]HOST:PORT or NULL (secret) */
    char *no_proxy;       /* hosts reached without the proxy, or NULL */
    struct hc_agent_hc *hcs;
};

/*
 * Load and validate an hcm.ini. Returns 0, HC_ECONFIG (every problem in
 * *errors as "FILE:LINE: message" lines; keys never appear in them) or a
 * libuv code for an unreadable file. *errors is hc_malloc'd or NULL.
 */
int hc_agent_conf_load(const char *path, struct hc_agent_conf **out,
                       char **errors);
void hc_agent_conf_free(struct hc_agent_conf *conf);
/* The entry named name with that role, or NULL. */
struct hc_agent_hc *hc_agent_conf_find(const struct hc_agent_conf *conf,
                                       const char *name,
                                       enum hc_agent_role role);
/* Take h out of conf's list (the caller then owns it). */
void hc_agent_conf_detach(struct hc_agent_conf *conf, struct hc_agent_hc *h);
/*
 * The proxy relay connections use: conf's proxy, else $https_proxy
 * ($HTTPS_PROXY); *no_proxy gets conf's no_proxy, else $no_proxy. Returns
 * 1 with p filled, 0 for none, or UV_EINVAL with a reason in err.
 */
int hc_agent_conf_proxy(const struct hc_agent_conf *conf, struct hc_proxy *p,
                        const char **no_proxy, char *err, size_t errlen);
/* Free one entry (its key wiped). */
void hc_agent_hc_free(struct hc_agent_hc *h);

/*
 * The endpoint in an entity description (protocol.md section 6): the Atom
 * XML's UserMetadata, a JSON array with {"key":"endpoint","value":"h:p"}.
 * Returns 0, HC_ENOTFOUND (no such item; reason in err) or HC_ESYNTAX.
 */
int hc_agent_meta_endpoint(const char *xml, size_t len, char *host,
                           size_t hostcap, int *port, char *err, size_t errlen);

struct hc_agent;

/* Create the agent on loop; it takes ownership of conf. */
int hc_agent_new(struct hc_agent **out, uv_loop_t *loop,
                 struct hc_agent_conf *conf, char *err, size_t errlen);
/*
 * Bind every [forward] (and write the hosts block), then open every
 * control channel. Returns 0 or a libuv code with the reason in err; then
 * call hc_agent_stop and let the loop end.
 */
int hc_agent_start(struct hc_agent *a, char *err, size_t errlen);
/*
 * The state of every configured connection as JSON (the control socket's
 * "status" answer): name, role, namespace, port, entity, key_name, status,
 * since, last_error, counters... hc_malloc'd, or NULL when out of memory.
 */
char *hc_agent_status_json(struct hc_agent *a);

/*
 * Apply a new configuration (SIGHUP), taking ownership of conf: unchanged
 * connections keep their control channel and tunnels, a changed key goes
 * out as renewToken on the open channel, removed ones drain, new ones
 * start. Returns 0, or an error with a reason in err (conf is freed and the
 * running configuration stays).
 */
int hc_agent_reload(struct hc_agent *a, struct hc_agent_conf *conf, char *err,
                    size_t errlen);
/*
 * Stop accepting, close control channels, let live tunnels finish for up
 * to drain_timeout, then close them with 1001; uv_run then returns.
 */
void hc_agent_stop(struct hc_agent *a);
void hc_agent_free(struct hc_agent *a);

#endif
