/*
 * hc_relay.h - the self-hosted relay (hcrelay): its configuration and the
 * server that speaks the Azure Relay Hybrid Connections protocol.
 */
#ifndef HC_RELAY_H
#define HC_RELAY_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#define HC_RELAY_MAX_LISTENERS 25

enum {
    HC_RIGHT_LISTEN = 1,
    HC_RIGHT_SEND = 2,
    HC_RIGHT_MANAGE = 4,
};

struct hc_relay_rule {
    char *name;
    int rights;
    char *primary_key; /* secret: wiped on free */
    char *secondary_key;
    int line;
    struct hc_relay_rule *next;
};

struct hc_relay_hc {
    char *name;
    int requires_client_authorization;
    char *user_metadata; /* NULL when not set */
    struct hc_relay_rule *rules;
    int line;
    struct hc_relay_hc *next;
};

struct hc_relay_conf {
    char *path;
    char listen_host[256];
    int listen_port;
    char *cert_file;
    char *key_file;
    char *hostname;
    int log_level;
    long max_connections;
    long handshake_timeout;  /* seconds */
    long rendezvous_timeout; /* seconds */
    long token_grace;        /* seconds */
    long ping_interval;      /* seconds between pings to a listener; 0: none */
    long clock_skew;         /* seconds a token stays valid after se */
    struct hc_relay_rule *rules; /* namespace level */
    struct hc_relay_hc *hcs;
};

/*
 * Load and validate a relay.ini. Returns 0, HC_ECONFIG (every problem in
 * *errors as "FILE:LINE: message" lines) or a libuv code for an unreadable
 * file. *errors is hc_malloc'd (or NULL); the caller frees it.
 */
int hc_relay_conf_load(const char *path, struct hc_relay_conf **out,
                       char **errors);
void hc_relay_conf_free(struct hc_relay_conf *conf);
/* Free (and wipe) the rules of one hybrid connection; its name stays. */
void hc_relay_conf_free_rules(struct hc_relay_hc *hc);
/* Free one hybrid connection that is no longer in any conf's list. */
void hc_relay_conf_free_hc(struct hc_relay_hc *hc);
/* The hybrid connection with that exact name (case-insensitive) or NULL. */
struct hc_relay_hc *hc_relay_conf_find_hc(const struct hc_relay_conf *conf,
                                          const char *name);
/* A rule: "NAME" on the namespace or "HC/NAME" on a hybrid connection. */
struct hc_relay_rule *hc_relay_conf_find_rule(const struct hc_relay_conf *conf,
                                              const char *spec,
                                              const char **hc_name);

struct hc_relay;

/*
 * Create the relay on loop; it takes ownership of conf. Returns 0 or an
 * error with a one-line reason in err.
 */
int hc_relay_new(struct hc_relay **out, uv_loop_t *loop,
                 struct hc_relay_conf *conf, char *err, size_t errlen);
/* Bind and listen. Returns 0 or a libuv code with the reason in err. */
int hc_relay_start(struct hc_relay *r, char *err, size_t errlen);
/* The port actually bound (after start). */
int hc_relay_port(const struct hc_relay *r);
/*
 * Apply a new configuration (SIGHUP), taking ownership of conf: rules and
 * keys change at once for new handshakes and renewTokens; hybrid
 * connections that are gone have their listeners closed (1001); open
 * tunnels are untouched. listen, cert_file and key_file need a restart.
 * Returns 0.
 */
int hc_relay_reload(struct hc_relay *r, struct hc_relay_conf *conf);
/* Stop listening and close every connection; uv_run then returns. */
void hc_relay_stop(struct hc_relay *r);
void hc_relay_free(struct hc_relay *r);

#endif
