/*
 * hc_tls.h - TLS over memory buffers (mbedTLS with non-blocking BIO
 * callbacks). No socket here: ciphertext comes in with hc_tls_feed and goes
 * out through hc_tls_take_output; the connection layer moves it to libuv.
 *
 * Policy for every context: TLS 1.2 at least, AEAD suites only, ChaCha20-
 * Poly1305 offered before AES-GCM, P-256 first in the curve list. Clients
 * always set the host name (SNI and certificate name check).
 */
#ifndef HC_TLS_H
#define HC_TLS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <mbedtls/ssl.h>

struct hc_tls_conf;

/*
 * Server configuration from PEM files. Returns 0, or HC_ETLS/HC_ECONFIG with
 * a one-line reason in err (errlen bytes). *out is owned by the caller.
 */
int hc_tls_conf_server(struct hc_tls_conf **out, const char *cert_file,
                       const char *key_file, char *err, size_t errlen);
/*
 * Client configuration. ca_file NULL means the system store
 * (/etc/ssl/certs/ca-certificates.crt). verify 0 turns certificate checks off
 * (tests only; the caller logs it loudly). Returns 0 or HC_ETLS with err.
 */
int hc_tls_conf_client(struct hc_tls_conf **out, const char *ca_file,
                       int verify, char *err, size_t errlen);
void hc_tls_conf_free(struct hc_tls_conf *conf);

struct hc_tls {
    mbedtls_ssl_context ssl;
    /* Ciphertext received and not yet read by mbedTLS. */
    const uint8_t *in;
    size_t in_len;
    uint8_t *in_own; /* owned copy of a leftover */
    int in_is_own;   /* in points into in_own */
    /* Ciphertext produced and not yet taken. */
    uint8_t *out;
    size_t out_len, out_cap;
    int handshake_done;
    int closed; /* close_notify received */
    struct hc_tls_conf *conf;
    char host[256]; /* client: for the session cache */
};

/*
 * Set up t for one connection. hostname (client only) is used for SNI and
 * the certificate check; NULL on a server. Returns 0, UV_ENOMEM or HC_ETLS.
 */
int hc_tls_init(struct hc_tls *t, struct hc_tls_conf *conf,
                const char *hostname);
void hc_tls_free(struct hc_tls *t);

/*
 * Make len bytes of ciphertext available to mbedTLS. The bytes are borrowed
 * until hc_tls_keep_input is called, which copies what is left; callers run
 * handshake/read until HC_EAGAIN and then call hc_tls_keep_input before the
 * data goes away. Returns 0 or UV_ENOMEM.
 */
int hc_tls_feed(struct hc_tls *t, const uint8_t *data, size_t len);
int hc_tls_keep_input(struct hc_tls *t);

/* Drive the handshake: 0 when done, HC_EAGAIN for more input, HC_ETLS. */
int hc_tls_handshake(struct hc_tls *t, char *err, size_t errlen);
/*
 * Read plaintext: >0 bytes, 0 on close_notify, HC_EAGAIN when no whole record
 * is buffered, HC_ETLS on error (reason in err).
 */
ssize_t hc_tls_read(struct hc_tls *t, uint8_t *buf, size_t cap, char *err,
                    size_t errlen);
/* Encrypt all len bytes into the output. Returns 0 or HC_ETLS. */
int hc_tls_write(struct hc_tls *t, const uint8_t *data, size_t len);
/* Queue a close_notify alert. */
void hc_tls_close_notify(struct hc_tls *t);
/*
 * Hand over the ciphertext produced so far: returns a malloc'd buffer the
 * caller frees (or NULL when there is none) and its length in *len.
 */
uint8_t *hc_tls_take_output(struct hc_tls *t, size_t *len);
/* Name of the negotiated suite, e.g. "TLS-ECDHE-...". */
const char *hc_tls_suite(const struct hc_tls *t);

#endif
