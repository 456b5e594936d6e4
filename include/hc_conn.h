/*
 * hc_conn.h - one network connection on the libuv loop: TCP, optional TLS,
 * the HTTP/1.1 upgrade head, then WebSocket frames (wslay's frame layer).
 *
 * Frames are streamed, never reassembled: on_frame announces a frame, its
 * payload follows in on_data pieces, on_frame_end closes it. Control frames
 * (at most 125 bytes) arrive whole through on_control; pings are answered
 * here. Output written during one loop turn leaves in one uv_write, from a
 * uv_check handle; hc_conn_queued() tells how much is waiting, so owners can
 * apply backpressure with hc_conn_read_stop/start and on_drain.
 *
 * Lifetime: hc_conn_close/abort (or an error, or EOF) calls on_close exactly
 * once; after that the owner must drop its pointer. Memory is freed later,
 * after libuv has closed the handles, so a pointer stays valid until the
 * current callback returns.
 */
#ifndef HC_CONN_H
#define HC_CONN_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>
#include <wslay/wslay.h>

#include "hc_http.h"
#include "hc_tls.h"

#define HC_CONN_HEAD_MAX (32 * 1024)  /* request or response head */
#define HC_CONN_EARLY_MAX (64 * 1024) /* bytes held before the upgrade */

enum hc_conn_state {
    HC_CONN_RESOLVING,
    HC_CONN_PROXY, /* CONNECT sent to an HTTP proxy, waiting for 200 */
    HC_CONN_CONNECTING,
    HC_CONN_TLS_HANDSHAKE,
    HC_CONN_HTTP_HEAD,
    HC_CONN_WS_OPEN,
    HC_CONN_RAW, /* bytes as they come, through on_data */
    HC_CONN_CLOSING,
};

struct hc_conn;
struct hc_io;

/* An outbound HTTP proxy (CONNECT). */
struct hc_proxy {
    char host[256];
    int port;
    char auth[400]; /* "Basic BASE64(user:pass)", or empty */
};

typedef void (*hc_conn_timer_cb)(struct hc_conn *c);

struct hc_conn_cbs {
    /* Client: TCP and TLS are up; send the request head now. */
    void (*on_connected)(struct hc_conn *c);
    /*
     * A whole head arrived (a request on a server, the response on a
     * client). h and its pointers are valid during the call only. The owner
     * answers (hc_conn_write), and calls hc_conn_ws_start to switch to
     * WebSocket frames, now or later; until then further bytes are held.
     */
    void (*on_head)(struct hc_conn *c, const struct hc_http_head *h);
    void (*on_frame)(struct hc_conn *c, int opcode, int fin, uint64_t len);
    void (*on_data)(struct hc_conn *c, const uint8_t *data, size_t len);
    void (*on_frame_end)(struct hc_conn *c);
    /*
     * A whole control frame: ping (already answered), pong or close. For a
     * close, data holds the code and reason as sent. Without an on_control
     * the close is echoed and the connection closed.
     */
    void (*on_control)(struct hc_conn *c, int opcode, const uint8_t *data,
                       size_t len);
    /* hc_conn_queued() fell below the low-water mark after being above. */
    void (*on_drain)(struct hc_conn *c);
    /* The connection is going away; err is 0 for a normal end. */
    void (*on_close)(struct hc_conn *c, int err, const char *reason);
    /*
     * The peer finished sending (TCP FIN). Without on_eof the connection is
     * closed; with it, it stays open for writing (a half-close).
     */
    void (*on_eof)(struct hc_conn *c);
};

struct hc_conn {
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_getaddrinfo_t gai;
    uv_connect_t connect_req;
    uv_shutdown_t shutdown_req;
    struct hc_io *io;
    const struct hc_conn_cbs *cbs;
    void *data; /* the owner's */
    hc_conn_timer_cb timer_cb;
    unsigned id;
    enum hc_conn_state state;
    unsigned is_client : 1, use_tls : 1, head_done : 1, closing : 1,
        on_close_called : 1, reading : 1, read_paused : 1, want_drain : 1,
        close_sent : 1, close_rcvd : 1, in_rx_frame : 1, in_tx_frame : 1,
        rx_msg_open : 1, dirty : 1, tcp_open : 1, graceful : 1,
        shut_started : 1, gai_pending : 1, eof : 1, write_shut : 1;
    int pending;     /* handles and requests whose callbacks are outstanding */
    char *sni;       /* client: host name for SNI and the certificate check */
    char *proxy_req; /* CONNECT request, sent once TCP is up */
    char *dial;      /* "host:port" (or "proxy P for host:port"), for errors */
    int port;
    struct hc_tls tls;
    /* HTTP head, then whatever came after it before the upgrade. */
    char *head;
    size_t head_len, head_cap, head_used;
    /* Plaintext waiting to be encrypted and written. */
    uint8_t *pout;
    size_t pout_len, pout_cap;
    size_t queued; /* bytes handed to uv_write and not yet written */
    size_t high_water, low_water;
    /* WebSocket receive state. */
    wslay_frame_context_ptr wsf;
    const uint8_t *rx;
    size_t rx_len;
    uint8_t rx_opcode, rx_fin;
    uint64_t rx_frame_len, rx_frame_off;
    uint8_t ctl[125];
    size_t ctl_len;
    /* WebSocket send state: a frame may be streamed in pieces. */
    struct wslay_frame_iocb tx;
    uint8_t pending_pong[125];
    int pending_pong_len; /* -1 when none */
    uint8_t pending_close[125];
    int pending_close_len; /* -1 when none */
    char peer_addr[64];
    int peer_port;
    uint64_t bytes_in, bytes_out; /* WebSocket payload bytes */
    struct hc_conn *dirty_next;
};

/* One per loop: the flush handles and shared read buffers; NULL when out
 * of memory. */
struct hc_io *hc_io_new(uv_loop_t *loop);
/* After every connection has closed. */
void hc_io_free(struct hc_io *io);
uv_loop_t *hc_io_loop(struct hc_io *io);

/*
 * Accept a connection from a listening server and start the TLS handshake
 * (tls NULL: plain TCP). Returns the connection or NULL (logged).
 */
struct hc_conn *hc_conn_accept(struct hc_io *io, uv_stream_t *server,
                               struct hc_tls_conf *tls,
                               const struct hc_conn_cbs *cbs, void *data);
/*
 * Connect to host:port (name resolved here), then TLS with sni as the name
 * checked (tls NULL: plain TCP). on_connected or on_close follows.
 */
struct hc_conn *hc_conn_connect(struct hc_io *io, const char *host, int port,
                                struct hc_tls_conf *tls, const char *sni,
                                const struct hc_conn_cbs *cbs, void *data);

/*
 * The same through an HTTP proxy (proxy NULL: direct): TCP to the proxy,
 * CONNECT host:port, then TLS with the relay as if direct.
 */
struct hc_conn *hc_conn_connect_via(struct hc_io *io, const char *host,
                                    int port, struct hc_tls_conf *tls,
                                    const char *sni,
                                    const struct hc_proxy *proxy,
                                    const struct hc_conn_cbs *cbs, void *data);

/* Queue bytes as they are (HTTP heads). Returns 0 or UV_ENOMEM. */
int hc_conn_write(struct hc_conn *c, const void *data, size_t len);
/* Switch to WebSocket frames; bytes held since the head are parsed next. */
int hc_conn_ws_start(struct hc_conn *c);
/*
 * Switch to raw bytes: every byte read from now on (and any held since the
 * head) goes to on_data. A plain TCP client calls this in on_connected.
 */
int hc_conn_raw_start(struct hc_conn *c);
/* Flush what is queued, then shut down the write side (send FIN). */
void hc_conn_shutdown(struct hc_conn *c);

/* A whole frame. Returns 0, UV_ENOMEM or HC_EPROTO (bad use). */
int hc_conn_send_frame(struct hc_conn *c, int opcode, int fin, const void *data,
                       size_t len);
/* A frame of len payload bytes given in pieces by hc_conn_send_data. */
int hc_conn_send_start(struct hc_conn *c, int opcode, int fin, uint64_t len);
int hc_conn_send_data(struct hc_conn *c, const void *data, size_t len);
/* Close frame with code (0: none) and reason; sent once. */
int hc_conn_send_close(struct hc_conn *c, int code, const char *reason,
                       size_t reason_len);
int hc_conn_send_ping(struct hc_conn *c);

/* Bytes waiting to reach the kernel. */
size_t hc_conn_queued(const struct hc_conn *c);
void hc_conn_set_water(struct hc_conn *c, size_t high, size_t low);
/* Call on_drain once hc_conn_queued(c) falls to the low-water mark. */
void hc_conn_want_drain(struct hc_conn *c);
void hc_conn_read_stop(struct hc_conn *c);
void hc_conn_read_start(struct hc_conn *c);

/* One timer per connection: (re)arm for ms milliseconds, or stop. */
void hc_conn_set_timer(struct hc_conn *c, uint64_t ms, hc_conn_timer_cb cb);
void hc_conn_stop_timer(struct hc_conn *c);

/* Flush what is queued, then close (TLS close_notify, FIN). Idempotent. */
void hc_conn_close(struct hc_conn *c, int err, const char *reason);
/* Close at once, dropping what is queued. Idempotent. */
void hc_conn_abort(struct hc_conn *c, int err, const char *reason);

const char *hc_conn_state_name(enum hc_conn_state s);

#endif
