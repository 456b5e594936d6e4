#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/error.h>
#include <mbedtls/pk.h>
#include <mbedtls/ssl.h>
#include <mbedtls/ssl_ticket.h>
#include <mbedtls/x509_crt.h>
#include <uv.h>

#include "hc_err.h"
#include "hc_mem.h"
#include "hc_tls.h"

#define SYSTEM_CA_FILE "/etc/ssl/certs/ca-certificates.crt"

#define SESSION_CACHE 16

/*
 * Session resumption: an ECDHE handshake with ECDSA costs milliseconds of
 * CPU in this mbedTLS, a resumed one almost nothing, and every tunnel opens
 * a new TLS connection to the relay. Servers issue tickets (keys from the
 * DRBG, rotated daily); clients keep the last session per host name.
 */
struct cached_session {
    char host[256];
    mbedtls_ssl_session session;
    int used;
};

struct hc_tls_conf {
    mbedtls_ssl_config conf;
    mbedtls_entropy_context entropy;
    mbedtls_ctr_drbg_context drbg;
    mbedtls_x509_crt cert; /* server: own chain; client: trusted CAs */
    mbedtls_pk_context key;
    mbedtls_ssl_ticket_context ticket; /* server */
    int ticket_ready;
    struct cached_session cache[SESSION_CACHE]; /* client */
    unsigned next_slot;
};

/* AEAD only, ChaCha20-Poly1305 first: it is the faster one here. */
static const int suites[] = {
    MBEDTLS_TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    MBEDTLS_TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    MBEDTLS_TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    MBEDTLS_TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    0};

/* P-256 first: the library default starts with P-521, twice the cost. */
static const mbedtls_ecp_group_id curves[] = {
    MBEDTLS_ECP_DP_SECP256R1, MBEDTLS_ECP_DP_CURVE25519,
    MBEDTLS_ECP_DP_SECP384R1, MBEDTLS_ECP_DP_NONE};

static void tls_err(char *err, size_t errlen, const char *what, int rc)
{
    char buf[160];
    if (err == NULL || errlen == 0)
        return;
    mbedtls_strerror(rc, buf, sizeof(buf));
    snprintf(err, errlen, "%s: %s", what, buf);
}

static struct hc_tls_conf *conf_new(int endpoint, char *err, size_t errlen)
{
    static const char pers[] = "hcmd";
    struct hc_tls_conf *c = hc_calloc(1, sizeof(*c));
    int rc;

    if (c == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    mbedtls_ssl_config_init(&c->conf);
    mbedtls_entropy_init(&c->entropy);
    mbedtls_ctr_drbg_init(&c->drbg);
    mbedtls_x509_crt_init(&c->cert);
    mbedtls_pk_init(&c->key);
    rc = mbedtls_ctr_drbg_seed(&c->drbg, mbedtls_entropy_func, &c->entropy,
                               (const unsigned char *)pers, sizeof(pers) - 1);
    if (rc != 0) {
        tls_err(err, errlen, "random generator", rc);
        goto fail;
    }
    rc = mbedtls_ssl_config_defaults(&c->conf, endpoint,
                                     MBEDTLS_SSL_TRANSPORT_STREAM,
                                     MBEDTLS_SSL_PRESET_DEFAULT);
    if (rc != 0) {
        tls_err(err, errlen, "TLS defaults", rc);
        goto fail;
    }
    mbedtls_ssl_conf_rng(&c->conf, mbedtls_ctr_drbg_random, &c->drbg);
    mbedtls_ssl_conf_min_version(&c->conf, MBEDTLS_SSL_MAJOR_VERSION_3,
                                 MBEDTLS_SSL_MINOR_VERSION_3);
    mbedtls_ssl_conf_ciphersuites(&c->conf, suites);
    mbedtls_ssl_conf_curves(&c->conf, curves);
    return c;
fail:
    hc_tls_conf_free(c);
    return NULL;
}

int hc_tls_conf_server(struct hc_tls_conf **out, const char *cert_file,
                       const char *key_file, char *err, size_t errlen)
{
    struct hc_tls_conf *c = conf_new(MBEDTLS_SSL_IS_SERVER, err, errlen);
    int rc;

    if (c == NULL)
        return HC_ETLS;
    rc = mbedtls_x509_crt_parse_file(&c->cert, cert_file);
    if (rc != 0) {
        tls_err(err, errlen, cert_file, rc);
        goto fail;
    }
    rc = mbedtls_pk_parse_keyfile(&c->key, key_file, NULL);
    if (rc != 0) {
        tls_err(err, errlen, key_file, rc);
        goto fail;
    }
    rc = mbedtls_ssl_conf_own_cert(&c->conf, &c->cert, &c->key);
    if (rc != 0) {
        tls_err(err, errlen, "certificate and key", rc);
        goto fail;
    }
    mbedtls_ssl_ticket_init(&c->ticket);
    c->ticket_ready = 1;
    rc = mbedtls_ssl_ticket_setup(&c->ticket, mbedtls_ctr_drbg_random, &c->drbg,
                                  MBEDTLS_CIPHER_AES_256_GCM, 86400);
    if (rc != 0) {
        tls_err(err, errlen, "session tickets", rc);
        goto fail;
    }
    mbedtls_ssl_conf_session_tickets_cb(&c->conf, mbedtls_ssl_ticket_write,
                                        mbedtls_ssl_ticket_parse, &c->ticket);
    *out = c;
    return 0;
fail:
    hc_tls_conf_free(c);
    return HC_ETLS;
}

int hc_tls_conf_client(struct hc_tls_conf **out, const char *ca_file,
                       int verify, char *err, size_t errlen)
{
    struct hc_tls_conf *c = conf_new(MBEDTLS_SSL_IS_CLIENT, err, errlen);
    int rc;

    if (c == NULL)
        return HC_ETLS;
    if (verify) {
        const char *file = ca_file ? ca_file : SYSTEM_CA_FILE;
        rc = mbedtls_x509_crt_parse_file(&c->cert, file);
        /* A store with a few unparsable entries still has the rest. */
        if (rc < 0 || (rc > 0 && c->cert.version == 0)) {
            tls_err(err, errlen, file, rc < 0 ? rc : -1);
            goto fail;
        }
        mbedtls_ssl_conf_ca_chain(&c->conf, &c->cert, NULL);
        mbedtls_ssl_conf_authmode(&c->conf, MBEDTLS_SSL_VERIFY_REQUIRED);
    } else {
        mbedtls_ssl_conf_authmode(&c->conf, MBEDTLS_SSL_VERIFY_NONE);
    }
    *out = c;
    return 0;
fail:
    hc_tls_conf_free(c);
    return HC_ETLS;
}

void hc_tls_conf_free(struct hc_tls_conf *c)
{
    if (c == NULL)
        return;
    mbedtls_ssl_config_free(&c->conf);
    mbedtls_ctr_drbg_free(&c->drbg);
    mbedtls_entropy_free(&c->entropy);
    mbedtls_x509_crt_free(&c->cert);
    mbedtls_pk_free(&c->key);
    if (c->ticket_ready)
        mbedtls_ssl_ticket_free(&c->ticket);
    for (int i = 0; i < SESSION_CACHE; i++)
        if (c->cache[i].used)
            mbedtls_ssl_session_free(&c->cache[i].session);
    hc_free(c);
}

static int bio_send(void *ctx, const unsigned char *buf, size_t len)
{
    struct hc_tls *t = ctx;

    if (t->out_len + len > t->out_cap) {
        size_t cap = t->out_cap ? t->out_cap : 16 * 1024 + 64;
        uint8_t *p;
        while (cap < t->out_len + len)
            cap *= 2;
        p = hc_realloc(t->out, cap);
        if (p == NULL)
            return MBEDTLS_ERR_SSL_ALLOC_FAILED;
        t->out = p;
        t->out_cap = cap;
    }
    memcpy(t->out + t->out_len, buf, len);
    t->out_len += len;
    return (int)len;
}

static int bio_recv(void *ctx, unsigned char *buf, size_t len)
{
    struct hc_tls *t = ctx;

    if (t->in_len == 0)
        return MBEDTLS_ERR_SSL_WANT_READ;
    if (len > t->in_len)
        len = t->in_len;
    memcpy(buf, t->in, len);
    t->in += len;
    t->in_len -= len;
    return (int)len;
}

int hc_tls_init(struct hc_tls *t, struct hc_tls_conf *conf,
                const char *hostname)
{
    memset(t, 0, sizeof(*t));
    mbedtls_ssl_init(&t->ssl);
    if (mbedtls_ssl_setup(&t->ssl, &conf->conf) != 0)
        goto fail;
    if (hostname != NULL && mbedtls_ssl_set_hostname(&t->ssl, hostname) != 0)
        goto fail;
    t->conf = conf;
    if (hostname != NULL) {
        /* Offer the last session with this host; a failed offer is fine. */
        snprintf(t->host, sizeof(t->host), "%s", hostname);
        for (int i = 0; i < SESSION_CACHE; i++) {
            struct cached_session *s = &conf->cache[i];
            if (s->used && strcmp(s->host, hostname) == 0) {
                (void)mbedtls_ssl_set_session(&t->ssl, &s->session);
                break;
            }
        }
    }
    mbedtls_ssl_set_bio(&t->ssl, t, bio_send, bio_recv, NULL);
    return 0;
fail:
    mbedtls_ssl_free(&t->ssl);
    return HC_ETLS;
}

void hc_tls_free(struct hc_tls *t)
{
    mbedtls_ssl_free(&t->ssl);
    hc_free(t->in_own);
    hc_free(t->out);
    t->in_own = t->out = NULL;
    t->in = NULL;
    t->in_len = t->out_len = t->out_cap = 0;
}

int hc_tls_feed(struct hc_tls *t, const uint8_t *data, size_t len)
{
    uint8_t *p;

    if (t->in_len == 0) {
        t->in = data;
        t->in_len = len;
        t->in_is_own = 0;
        return 0;
    }
    /* A leftover was kept: append to it so the order is kept. */
    p = hc_malloc(t->in_len + len);
    if (p == NULL)
        return UV_ENOMEM;
    memcpy(p, t->in, t->in_len);
    memcpy(p + t->in_len, data, len);
    hc_free(t->in_own);
    t->in_own = p;
    t->in = p;
    t->in_len += len;
    t->in_is_own = 1;
    return 0;
}

int hc_tls_keep_input(struct hc_tls *t)
{
    uint8_t *p;

    if (t->in_len == 0 || t->in_is_own)
        return 0;
    p = hc_malloc(t->in_len);
    if (p == NULL)
        return UV_ENOMEM;
    memcpy(p, t->in, t->in_len);
    hc_free(t->in_own);
    t->in_own = p;
    t->in = p;
    t->in_is_own = 1;
    return 0;
}

/* Remember this client session for the next connection to the host. */
static void keep_session(struct hc_tls *t)
{
    struct hc_tls_conf *c = t->conf;
    struct cached_session *s = NULL;

    for (int i = 0; i < SESSION_CACHE && s == NULL; i++)
        if (c->cache[i].used && strcmp(c->cache[i].host, t->host) == 0)
            s = &c->cache[i];
    if (s == NULL)
        s = &c->cache[c->next_slot++ % SESSION_CACHE];
    if (s->used)
        mbedtls_ssl_session_free(&s->session);
    mbedtls_ssl_session_init(&s->session);
    s->used = mbedtls_ssl_get_session(&t->ssl, &s->session) == 0;
    if (!s->used)
        mbedtls_ssl_session_free(&s->session);
    snprintf(s->host, sizeof(s->host), "%s", t->host);
}

/* Append text to the NUL-terminated buf, after "; " unless it is empty. */
static void add_reason(char *buf, size_t len, const char *text)
{
    size_t o = strlen(buf);
    snprintf(buf + o, len - o, "%s%s", o ? "; " : "", text);
}

/*
 * Why the peer's certificate was refused, on one line: the usual causes
 * in words (with the host name checked), anything else as mbedTLS says it.
 */
static void verify_err(struct hc_tls *t, char *err, size_t errlen)
{
    const uint32_t known =
        MBEDTLS_X509_BADCERT_EXPIRED | MBEDTLS_X509_BADCERT_FUTURE |
        MBEDTLS_X509_BADCERT_CN_MISMATCH | MBEDTLS_X509_BADCERT_NOT_TRUSTED;
    uint32_t flags = mbedtls_ssl_get_verify_result(&t->ssl);
    char why[512] = "", text[300];

    if (flags & MBEDTLS_X509_BADCERT_EXPIRED)
        add_reason(why, sizeof(why), "the certificate has expired");
    if (flags & MBEDTLS_X509_BADCERT_FUTURE)
        add_reason(why, sizeof(why), "the certificate is not valid yet");
    if (flags & MBEDTLS_X509_BADCERT_CN_MISMATCH) {
        snprintf(text, sizeof(text), "the certificate is not for host %s",
                 t->host[0] ? t->host : "(none given)");
        add_reason(why, sizeof(why), text);
    }
    if (flags & MBEDTLS_X509_BADCERT_NOT_TRUSTED)
        add_reason(why, sizeof(why),
                   "the certificate is not signed by a trusted CA "
                   "(ca_file or the system store)");
    flags &= ~known;
    if (flags != 0 &&
        mbedtls_x509_crt_verify_info(text, sizeof(text), "", flags) > 0) {
        /* One line per reason. */
        for (char *line = text, *nl; *line != '\0'; line = nl + 1) {
            nl = strchr(line, '\n');
            if (nl == NULL)
                nl = line + strlen(line) - 1;
            else
                *nl = '\0';
            add_reason(why, sizeof(why), line);
        }
    }
    snprintf(err, errlen, "certificate verification failed: %s",
             why[0] ? why : "unknown reason");
}

/*
 * The fatal alert the peer ended the handshake with, named, with the
 * likely cause. Returns 0 when the last record read was not an alert.
 */
static int alert_err(struct hc_tls *t, char *err, size_t errlen)
{
    static const char no_common[] =
        ": no TLS version or cipher suite in common (TLS 1.2 with ECDHE "
        "and AES-GCM or ChaCha20-Poly1305 is required)";
    const mbedtls_ssl_context *s = &t->ssl;
    const char *peer =
        s->conf->endpoint == MBEDTLS_SSL_IS_CLIENT ? "server" : "client";
    const char *name = NULL, *hint = "";

    if (s->in_msgtype != MBEDTLS_SSL_MSG_ALERT || s->in_msg == NULL ||
        s->in_msglen < 2)
        return 0;
    switch (s->in_msg[1]) {
    case MBEDTLS_SSL_ALERT_MSG_HANDSHAKE_FAILURE:
        name = "handshake failure";
        hint = no_common;
        break;
    case MBEDTLS_SSL_ALERT_MSG_PROTOCOL_VERSION:
        name = "protocol version";
        hint = no_common;
        break;
    case MBEDTLS_SSL_ALERT_MSG_INSUFFICIENT_SECURITY:
        name = "insufficient security";
        hint = no_common;
        break;
    case MBEDTLS_SSL_ALERT_MSG_UNRECOGNIZED_NAME:
        name = "unrecognized name";
        hint = ": it does not serve this host name";
        break;
    }
    snprintf(err, errlen, "TLS handshake: the %s sent fatal alert %d%s%s%s%s",
             peer, s->in_msg[1], name ? " (" : "", name ? name : "",
             name ? ")" : "", hint);
    return 1;
}

int hc_tls_handshake(struct hc_tls *t, char *err, size_t errlen)
{
    int rc;

    if (t->handshake_done)
        return 0;
    rc = mbedtls_ssl_handshake(&t->ssl);
    if (rc == 0) {
        t->handshake_done = 1;
        if (t->host[0] != '\0')
            keep_session(t);
        return 0;
    }
    if (rc == MBEDTLS_ERR_SSL_WANT_READ || rc == MBEDTLS_ERR_SSL_WANT_WRITE)
        return HC_EAGAIN;
    if (rc == MBEDTLS_ERR_X509_CERT_VERIFY_FAILED) {
        if (err != NULL)
            verify_err(t, err, errlen);
        return HC_ETLS;
    }
    if (rc == MBEDTLS_ERR_SSL_FATAL_ALERT_MESSAGE && err != NULL &&
        alert_err(t, err, errlen))
        return HC_ETLS;
    tls_err(err, errlen, "TLS handshake", rc);
    return HC_ETLS;
}

ssize_t hc_tls_read(struct hc_tls *t, uint8_t *buf, size_t cap, char *err,
                    size_t errlen)
{
    int rc = mbedtls_ssl_read(&t->ssl, buf, cap);

    if (rc > 0)
        return rc;
    if (rc == 0 || rc == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY) {
        t->closed = 1;
        return 0;
    }
    if (rc == MBEDTLS_ERR_SSL_WANT_READ || rc == MBEDTLS_ERR_SSL_WANT_WRITE)
        return HC_EAGAIN;
    tls_err(err, errlen, "TLS read", rc);
    return HC_ETLS;
}

int hc_tls_write(struct hc_tls *t, const uint8_t *data, size_t len)
{
    /* The BIO never says WANT_WRITE, so every call takes a whole record. */
    while (len > 0) {
        int rc = mbedtls_ssl_write(&t->ssl, data, len);
        if (rc <= 0)
            return HC_ETLS;
        data += rc;
        len -= (size_t)rc;
    }
    return 0;
}

void hc_tls_close_notify(struct hc_tls *t)
{
    if (t->handshake_done)
        (void)mbedtls_ssl_close_notify(&t->ssl);
}

uint8_t *hc_tls_take_output(struct hc_tls *t, size_t *len)
{
    uint8_t *p = t->out;

    *len = t->out_len;
    if (t->out_len == 0)
        return NULL;
    t->out = NULL;
    t->out_len = t->out_cap = 0;
    return p;
}

const char *hc_tls_suite(const struct hc_tls *t)
{
    return mbedtls_ssl_get_ciphersuite(&t->ssl);
}
