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
/* Close control channels and tunnels; uv_run then returns. */
void hc_agent_stop(struct hc_agent *a);
void hc_agent_free(struct hc_agent *a);

#endif
