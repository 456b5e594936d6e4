#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/platform_util.h>

#include "hc_conn.h"
#include "hc_err.h"
#include "hc_log.h"
#include "hc_mem.h"

#define READ_BUF_SIZE (64 * 1024)
#define PLAIN_BUF_SIZE (16 * 1024 + 256)
#define DEFAULT_HIGH_WATER (1024 * 1024)
#define DEFAULT_LOW_WATER (256 * 1024)

struct hc_io {
    uv_loop_t *loop;
    uv_check_t check;
    uv_idle_t idle;
    struct hc_conn *dirty;
    unsigned next_id;
    uint8_t rbuf[READ_BUF_SIZE];
    uint8_t pbuf[PLAIN_BUF_SIZE];
    mbedtls_entropy_context entropy;
    mbedtls_ctr_drbg_context drbg; /* WebSocket masks */
};

struct wreq {
    uv_write_t req;
    struct hc_conn *c;
    uint8_t *buf;
    size_t len;
};

static void flush(struct hc_conn *c);
static void after_connect(struct hc_conn *c);
static void tls_input(struct hc_conn *c, const uint8_t *data, size_t len);
static void process_held(struct hc_conn *c);
static void conn_fail(struct hc_conn *c, int err, const char *reason);
static int send_pending_control(struct hc_conn *c);

/* ---- the per-loop part ---- */

static void on_idle(uv_idle_t *h)
{
    /* Only there to make the poll phase return at once. */
}

static void mark_dirty(struct hc_conn *c)
{
    struct hc_io *io = c->io;
    if (c->dirty)
        return;
    c->dirty = 1;
    c->dirty_next = io->dirty;
    if (io->dirty == NULL)
        uv_idle_start(&io->idle, on_idle);
    io->dirty = c;
}

static void on_check(uv_check_t *h)
{
    struct hc_io *io = h->data;
    /* Flushing may mark other connections dirty; bound the rounds. */
    for (int round = 0; round < 8 && io->dirty != NULL; round++) {
        struct hc_conn *list = io->dirty;
        io->dirty = NULL;
        while (list != NULL) {
            struct hc_conn *c = list;
            list = c->dirty_next;
            c->dirty = 0;
            c->dirty_next = NULL;
            process_held(c);
            flush(c);
        }
    }
    if (io->dirty == NULL)
        uv_idle_stop(&io->idle);
}

struct hc_io *hc_io_new(uv_loop_t *loop)
{
    static const char pers[] = "hcmd-ws-mask";
    struct hc_io *io = hc_calloc(1, sizeof(*io));

    if (io == NULL)
        return NULL;
    io->loop = loop;
    uv_check_init(loop, &io->check);
    io->check.data = io;
    uv_check_start(&io->check, on_check);
    uv_unref((uv_handle_t *)&io->check);
    uv_idle_init(loop, &io->idle);
    io->idle.data = io;
    uv_unref((uv_handle_t *)&io->idle);
    mbedtls_entropy_init(&io->entropy);
    mbedtls_ctr_drbg_init(&io->drbg);
    if (mbedtls_ctr_drbg_seed(&io->drbg, mbedtls_entropy_func, &io->entropy,
                              (const unsigned char *)pers,
                              sizeof(pers) - 1) != 0) {
        hc_log_err("cannot seed the random generator");
        abort();
    }
    return io;
}

void hc_io_free(struct hc_io *io)
{
    if (io == NULL)
        return;
    uv_check_stop(&io->check);
    uv_idle_stop(&io->idle);
    uv_close((uv_handle_t *)&io->check, NULL);
    uv_close((uv_handle_t *)&io->idle, NULL);
    uv_run(io->loop, UV_RUN_NOWAIT);
    mbedtls_ctr_drbg_free(&io->drbg);
    mbedtls_entropy_free(&io->entropy);
    hc_free(io);
}

uv_loop_t *hc_io_loop(struct hc_io *io)
{
    return io->loop;
}

const char *hc_conn_state_name(enum hc_conn_state s)
{
    static const char *names[] = {"RESOLVING",     "PROXY",     "CONNECTING",
                                  "TLS_HANDSHAKE", "HTTP_HEAD", "WS_OPEN",
                                  "RAW",           "CLOSING"};
    return (unsigned)s < sizeof(names) / sizeof(names[0]) ? names[s] : "?";
}

static void set_state(struct hc_conn *c, enum hc_conn_state s)
{
    if (c->state == s)
        return;
    hc_log_debug("conn %u: %s -> %s", c->id, hc_conn_state_name(c->state),
                 hc_conn_state_name(s));
    c->state = s;
}

/* ---- freeing ---- */

static void conn_free(struct hc_conn *c)
{
    if (c->dirty) {
        struct hc_conn **pp = &c->io->dirty;
        while (*pp != NULL && *pp != c)
            pp = &(*pp)->dirty_next;
        if (*pp == c)
            *pp = c->dirty_next;
    }
    if (c->use_tls)
        hc_tls_free(&c->tls);
    if (c->wsf != NULL)
        wslay_frame_context_free(c->wsf);
    hc_free(c->head);
    hc_free(c->pout);
    hc_free(c->sni);
    hc_free(c->proxy_req);
    hc_free(c->dial);
    hc_free(c);
}

static void release(struct hc_conn *c)
{
    if (--c->pending == 0)
        conn_free(c);
}

static void on_handle_closed(uv_handle_t *h)
{
    release(h->data);
}

static void close_handles(struct hc_conn *c)
{
    if (c->tcp_open) {
        c->tcp_open = 0;
        uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
    }
    if (!uv_is_closing((uv_handle_t *)&c->timer))
        uv_close((uv_handle_t *)&c->timer, on_handle_closed);
    if (c->gai_pending)
        uv_cancel((uv_req_t *)&c->gai);
}

static void notify_close(struct hc_conn *c, int err, const char *reason)
{
    if (c->on_close_called)
        return;
    c->on_close_called = 1;
    if (c->cbs->on_close != NULL)
        c->cbs->on_close(c, err, reason);
}

void hc_conn_abort(struct hc_conn *c, int err, const char *reason)
{
    if (!c->closing) {
        c->closing = 1;
        set_state(c, HC_CONN_CLOSING);
        close_handles(c);
    } else if (c->graceful) {
        /* A graceful close in progress becomes an abort. */
        c->graceful = 0;
        close_handles(c);
    }
    notify_close(c, err, reason);
}

static void on_half_shutdown(uv_shutdown_t *req, int status)
{
    struct hc_conn *c = req->data;
    if (status < 0 && status != UV_ECANCELED && !c->closing)
        conn_fail(c, status, "shutdown failed");
    release(c);
}

void hc_conn_shutdown(struct hc_conn *c)
{
    if (c->closing || c->write_shut)
        return;
    c->write_shut = 1;
    mark_dirty(c);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    struct hc_conn *c = req->data;
    close_handles(c);
    release(c);
}

static void on_linger(uv_timer_t *t)
{
    close_handles(t->data);
}

void hc_conn_close(struct hc_conn *c, int err, const char *reason)
{
    /* Not up yet (resolving, connecting, CONNECT, TLS): nothing to flush. */
    int up = c->state != HC_CONN_RESOLVING && c->state != HC_CONN_CONNECTING &&
             c->state != HC_CONN_PROXY && c->state != HC_CONN_TLS_HANDSHAKE;

    if (c->closing) {
        notify_close(c, err, reason);
        return;
    }
    c->closing = 1;
    set_state(c, HC_CONN_CLOSING);
    if (!c->tcp_open || !up) {
        close_handles(c);
    } else {
        c->graceful = 1;
        uv_read_stop((uv_stream_t *)&c->tcp);
        mark_dirty(c);
        /* Do not wait forever for a peer that reads nothing. */
        c->timer_cb = NULL;
        uv_timer_start(&c->timer, on_linger, 10000, 0);
    }
    notify_close(c, err, reason);
}

static void conn_fail(struct hc_conn *c, int err, const char *reason)
{
    hc_conn_abort(c, err, reason);
}

/* ---- writing ---- */

static void on_write(uv_write_t *req, int status)
{
    struct wreq *w = (struct wreq *)req;
    struct hc_conn *c = w->c;

    c->queued -= w->len;
    hc_free(w->buf);
    hc_free(w);
    if (status < 0 && !c->closing) {
        conn_fail(c, status, "write failed");
    } else if (!c->closing && hc_conn_queued(c) <= c->low_water) {
        /* A pong held back while the output was backed up (handle_control). */
        if (c->pending_pong_len >= 0 && !c->in_tx_frame &&
            send_pending_control(c) != 0)
            conn_fail(c, UV_ENOMEM, "out of memory");
        if (c->want_drain && !c->closing) {
            c->want_drain = 0;
            if (c->cbs->on_drain != NULL)
                c->cbs->on_drain(c);
        }
    }
    release(c);
}

static void write_out(struct hc_conn *c, uint8_t *buf, size_t len)
{
    struct wreq *w;
    uv_buf_t b;
    int rc;

    if (!c->tcp_open || (c->closing && !c->graceful)) {
        hc_free(buf);
        return;
    }
    w = hc_malloc(sizeof(*w));
    if (w == NULL) {
        hc_free(buf);
        conn_fail(c, UV_ENOMEM, "out of memory");
        return;
    }
    w->c = c;
    w->buf = buf;
    w->len = len;
    b = uv_buf_init((char *)buf, (unsigned)len);
    rc = uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, on_write);
    if (rc < 0) {
        hc_free(buf);
        hc_free(w);
        conn_fail(c, rc, "write failed");
        return;
    }
    c->pending++;
    c->queued += len;
}

static void flush(struct hc_conn *c)
{
    if (!c->tcp_open)
        return;
    if (c->closing && c->use_tls && !c->tls.handshake_done)
        c->pout_len = 0; /* nothing can be said before the handshake */
    if (c->pout_len > 0 && (!c->use_tls || c->tls.handshake_done)) {
        if (c->use_tls) {
            if (hc_tls_write(&c->tls, c->pout, c->pout_len) != 0) {
                conn_fail(c, HC_ETLS, "TLS write failed");
                return;
            }
            c->pout_len = 0;
        } else {
            uint8_t *buf = c->pout;
            size_t len = c->pout_len;
            c->pout = NULL;
            c->pout_len = c->pout_cap = 0;
            write_out(c, buf, len);
        }
    }
    if (c->use_tls) {
        size_t len;
        uint8_t *buf = hc_tls_take_output(&c->tls, &len);
        if (buf != NULL)
            write_out(c, buf, len);
    }
    if (!c->closing && c->write_shut && c->tcp_open && !c->shut_started &&
        c->pout_len == 0) {
        c->shut_started = 1;
        c->shutdown_req.data = c;
        if (uv_shutdown(&c->shutdown_req, (uv_stream_t *)&c->tcp,
                        on_half_shutdown) == 0)
            c->pending++;
        return;
    }
    if (c->closing && c->graceful && c->tcp_open && c->shut_started &&
        c->write_shut && c->pout_len == 0) {
        /* The write side is already shut: nothing more to send. */
        close_handles(c);
        return;
    }
    if (c->closing && c->graceful && c->tcp_open && !c->shut_started &&
        c->pout_len == 0) {
        c->shut_started = 1;
        if (c->use_tls && c->tls.handshake_done) {
            size_t len;
            uint8_t *buf;
            hc_tls_close_notify(&c->tls);
            buf = hc_tls_take_output(&c->tls, &len);
            if (buf != NULL)
                write_out(c, buf, len);
        }
        c->shutdown_req.data = c;
        if (uv_shutdown(&c->shutdown_req, (uv_stream_t *)&c->tcp,
                        on_shutdown) == 0)
            c->pending++;
        else
            close_handles(c);
    }
}

static int pout_append(struct hc_conn *c, const void *data, size_t len)
{
    if (c->pout_len + len > c->pout_cap) {
        size_t cap = c->pout_cap ? c->pout_cap : 16 * 1024;
        uint8_t *p;
        while (cap < c->pout_len + len)
            cap *= 2;
        p = hc_realloc(c->pout, cap);
        if (p == NULL)
            return UV_ENOMEM;
        c->pout = p;
        c->pout_cap = cap;
    }
    memcpy(c->pout + c->pout_len, data, len);
    c->pout_len += len;
    mark_dirty(c);
    return 0;
}

int hc_conn_write(struct hc_conn *c, const void *data, size_t len)
{
    if (c->closing || c->write_shut)
        return UV_EPIPE;
    if (c->state == HC_CONN_RAW)
        c->bytes_out += len;
    return pout_append(c, data, len);
}

void hc_conn_want_drain(struct hc_conn *c)
{
    c->want_drain = 1;
}

size_t hc_conn_queued(const struct hc_conn *c)
{
    return c->queued + c->pout_len;
}

void hc_conn_set_water(struct hc_conn *c, size_t high, size_t low)
{
    c->high_water = high;
    c->low_water = low;
}

/* ---- WebSocket send ---- */

static ssize_t ws_send_cb(const uint8_t *data, size_t len, int flags,
                          void *user)
{
    struct hc_conn *c = user;
    if (pout_append(c, data, len) != 0)
        return -1;
    return (ssize_t)len;
}

static ssize_t ws_recv_cb(uint8_t *buf, size_t len, int flags, void *user)
{
    struct hc_conn *c = user;
    if (c->rx_len == 0)
        return 0;
    if (len > c->rx_len)
        len = c->rx_len;
    memcpy(buf, c->rx, len);
    c->rx += len;
    c->rx_len -= len;
    return (ssize_t)len;
}

static int ws_genmask_cb(uint8_t *buf, size_t len, void *user)
{
    struct hc_conn *c = user;
    return mbedtls_ctr_drbg_random(&c->io->drbg, buf, len) == 0 ? 0 : -1;
}

int hc_conn_send_start(struct hc_conn *c, int opcode, int fin, uint64_t len)
{
    ssize_t r;

    if (c->wsf == NULL || c->in_tx_frame || c->close_sent || c->closing)
        return HC_EPROTO;
    memset(&c->tx, 0, sizeof(c->tx));
    c->tx.fin = fin ? 1 : 0;
    c->tx.opcode = (uint8_t)opcode;
    c->tx.mask = c->is_client;
    c->tx.payload_length = len;
    r = wslay_frame_send(c->wsf, &c->tx);
    if (r < 0)
        return r == WSLAY_ERR_INVALID_ARGUMENT ? HC_EPROTO : UV_ENOMEM;
    if (len > 0)
        c->in_tx_frame = 1;
    return 0;
}

int hc_conn_send_data(struct hc_conn *c, const void *data, size_t len)
{
    const uint8_t *p = data;

    if (!c->in_tx_frame)
        return HC_EPROTO;
    while (len > 0) {
        ssize_t r;
        c->tx.data = p;
        c->tx.data_length = len;
        r = wslay_frame_send(c->wsf, &c->tx);
        if (r <= 0)
            return r == WSLAY_ERR_INVALID_ARGUMENT ? HC_EPROTO : UV_ENOMEM;
        p += r;
        len -= (size_t)r;
        c->tx.payload_length -= (uint64_t)r;
        c->bytes_out += (uint64_t)r;
    }
    if (c->tx.payload_length == 0) {
        c->in_tx_frame = 0;
        return send_pending_control(c);
    }
    return 0;
}

int hc_conn_send_frame(struct hc_conn *c, int opcode, int fin, const void *data,
                       size_t len)
{
    int rc = hc_conn_send_start(c, opcode, fin, len);
    if (rc == 0 && len > 0)
        rc = hc_conn_send_data(c, data, len);
    return rc;
}

static int send_control_now(struct hc_conn *c, int opcode, const uint8_t *p,
                            size_t len)
{
    struct wslay_frame_iocb io;
    ssize_t r;

    memset(&io, 0, sizeof(io));
    io.fin = 1;
    io.opcode = (uint8_t)opcode;
    io.mask = c->is_client;
    io.payload_length = len;
    io.data = p;
    io.data_length = len;
    r = wslay_frame_send(c->wsf, &io);
    return r < 0 ? UV_ENOMEM : 0;
}

static void maybe_finish_close(struct hc_conn *c)
{
    if (c->close_sent && c->close_rcvd)
        hc_conn_close(c, 0, "closed");
}

static int send_pending_control(struct hc_conn *c)
{
    int rc = 0;
    if (c->pending_pong_len >= 0) {
        rc = send_control_now(c, WSLAY_PONG, c->pending_pong,
                              (size_t)c->pending_pong_len);
        c->pending_pong_len = -1;
    }
    if (rc == 0 && c->pending_close_len >= 0) {
        rc = send_control_now(c, WSLAY_CONNECTION_CLOSE, c->pending_close,
                              (size_t)c->pending_close_len);
        c->pending_close_len = -1;
        maybe_finish_close(c);
    }
    return rc;
}

static void close_linger_expired(struct hc_conn *c)
{
    hc_conn_abort(c, HC_EPROTO, "peer did not answer the close");
}

int hc_conn_send_close(struct hc_conn *c, int code, const char *reason,
                       size_t reason_len)
{
    uint8_t *p = c->pending_close;
    size_t len = 0;

    if (c->wsf == NULL || c->close_sent || c->closing)
        return 0;
    c->close_sent = 1;
    if (code > 0) {
        if (reason_len > 123)
            reason_len = 123;
        p[0] = (uint8_t)(code >> 8);
        p[1] = (uint8_t)code;
        memcpy(p + 2, reason, reason_len);
        len = 2 + reason_len;
    }
    c->pending_close_len = (int)len;
    if (!c->close_rcvd)
        hc_conn_set_timer(c, 5000, close_linger_expired);
    if (c->in_tx_frame)
        return 0;
    return send_pending_control(c);
}

int hc_conn_send_ping(struct hc_conn *c)
{
    if (c->wsf == NULL || c->close_sent || c->closing)
        return 0;
    if (c->in_tx_frame)
        return 0; /* data is flowing; the peer is alive enough */
    return send_control_now(c, WSLAY_PING, NULL, 0);
}

/* ---- WebSocket receive ---- */

static void ws_protocol_error(struct hc_conn *c, int code, const char *why)
{
    char msg[160];
    snprintf(msg, sizeof(msg), "WebSocket protocol error: %s", why);
    if (!c->in_tx_frame && !c->close_sent) {
        c->close_sent = 1;
        uint8_t p[2] = {(uint8_t)(code >> 8), (uint8_t)code};
        send_control_now(c, WSLAY_CONNECTION_CLOSE, p, 2);
    }
    hc_conn_close(c, HC_EPROTO, msg);
}

static int close_code_ok(int code)
{
    if (code >= 3000 && code <= 4999)
        return 1;
    if (code < 1000 || code > 1014)
        return 0;
    return code != 1004 && code != 1005 && code != 1006;
}

static void handle_control(struct hc_conn *c)
{
    int op = c->rx_opcode;

    if (op == WSLAY_PING) {
        if (!c->close_sent) {
            /*
             * Only the latest ping needs its pong (RFC 6455 5.5.3). While
             * the output is backed up the pong waits (on_write sends it),
             * so that a peer that pings without reading cannot make us
             * queue pongs without end.
             */
            memcpy(c->pending_pong, c->ctl, c->ctl_len);
            c->pending_pong_len = (int)c->ctl_len;
            if (!c->in_tx_frame && hc_conn_queued(c) <= c->high_water)
                send_pending_control(c);
        }
    } else if (op == WSLAY_CONNECTION_CLOSE) {
        if (c->ctl_len == 1) {
            ws_protocol_error(c, 1002, "close frame of one byte");
            return;
        }
        if (c->ctl_len >= 2 && !close_code_ok((c->ctl[0] << 8) | c->ctl[1])) {
            ws_protocol_error(c, 1002, "invalid close code");
            return;
        }
        c->close_rcvd = 1;
    }
    if (c->cbs->on_control != NULL) {
        c->cbs->on_control(c, op, c->ctl, c->ctl_len);
    } else if (op == WSLAY_CONNECTION_CLOSE) {
        hc_conn_send_close(
            c, c->ctl_len >= 2 ? (c->ctl[0] << 8) | c->ctl[1] : 1000, "", 0);
    }
    if (op == WSLAY_CONNECTION_CLOSE && !c->closing)
        maybe_finish_close(c);
}

static void ws_input(struct hc_conn *c, const uint8_t *data, size_t len)
{
    c->rx = data;
    c->rx_len = len;
    while (!c->closing) {
        struct wslay_frame_iocb io;
        ssize_t r = wslay_frame_recv(c->wsf, &io);
        if (r == WSLAY_ERR_WANT_READ)
            break;
        if (r < 0) {
            ws_protocol_error(c, 1002, "bad frame header");
            break;
        }
        if (!c->in_rx_frame) {
            int op = io.opcode;
            if (io.rsv != 0) {
                ws_protocol_error(c, 1002, "reserved bits set");
                break;
            }
            if (io.mask != !c->is_client) {
                ws_protocol_error(c, 1002,
                                  c->is_client ? "masked frame from server"
                                               : "unmasked frame from client");
                break;
            }
            if (c->close_rcvd) {
                ws_protocol_error(c, 1002, "frame after close");
                break;
            }
            if (op == WSLAY_CONTINUATION_FRAME) {
                if (!c->rx_msg_open) {
                    ws_protocol_error(c, 1002, "continuation without message");
                    break;
                }
                c->rx_msg_open = !io.fin;
            } else if (op == WSLAY_TEXT_FRAME || op == WSLAY_BINARY_FRAME) {
                if (c->rx_msg_open) {
                    ws_protocol_error(c, 1002, "message inside a message");
                    break;
                }
                c->rx_msg_open = !io.fin;
            } else if (op != WSLAY_PING && op != WSLAY_PONG &&
                       op != WSLAY_CONNECTION_CLOSE) {
                ws_protocol_error(c, 1002, "reserved opcode");
                break;
            }
            c->in_rx_frame = 1;
            c->rx_opcode = (uint8_t)op;
            c->rx_fin = io.fin;
            c->rx_frame_len = io.payload_length;
            c->rx_frame_off = 0;
            c->ctl_len = 0;
            if (!wslay_is_ctrl_frame(op) && c->cbs->on_frame != NULL)
                c->cbs->on_frame(c, op, io.fin, io.payload_length);
            if (c->closing)
                break;
        }
        if (io.data_length > 0) {
            if (wslay_is_ctrl_frame(c->rx_opcode)) {
                memcpy(c->ctl + c->ctl_len, io.data, io.data_length);
                c->ctl_len += io.data_length;
            } else {
                c->bytes_in += io.data_length;
                if (c->cbs->on_data != NULL)
                    c->cbs->on_data(c, io.data, io.data_length);
            }
            c->rx_frame_off += io.data_length;
        }
        if (c->closing)
            break;
        if (c->rx_frame_off == c->rx_frame_len) {
            c->in_rx_frame = 0;
            if (wslay_is_ctrl_frame(c->rx_opcode))
                handle_control(c);
            else if (c->cbs->on_frame_end != NULL)
                c->cbs->on_frame_end(c);
        }
    }
    c->rx = NULL;
    c->rx_len = 0;
}

/* ---- HTTP head and dispatch of plaintext ---- */

static void send_http_error(struct hc_conn *c, int status, const char *why)
{
    char buf[256];
    int n = snprintf(buf, sizeof(buf),
                     "HTTP/1.1 %d %s\r\nContent-Length: 0\r\n"
                     "Connection: close\r\n\r\n",
                     status, why);
    hc_conn_write(c, buf, (size_t)n);
    hc_conn_close(c, HC_EPROTO, why);
}

static int head_append(struct hc_conn *c, const uint8_t *data, size_t len,
                       size_t max)
{
    if (c->head_len + len > max)
        return HC_ETOOBIG;
    if (c->head_len + len > c->head_cap) {
        size_t cap = c->head_cap ? c->head_cap : 2048;
        char *p;
        while (cap < c->head_len + len)
            cap *= 2;
        if (cap > max)
            cap = max;
        p = hc_realloc(c->head, cap);
        if (p == NULL)
            return UV_ENOMEM;
        c->head = p;
        c->head_cap = cap;
    }
    memcpy(c->head + c->head_len, data, len);
    c->head_len += len;
    return 0;
}

static void head_input(struct hc_conn *c, const uint8_t *data, size_t len)
{
    struct hc_http_head h;
    int rc;

    if (c->head_done) {
        /* Waiting for the owner to upgrade: hold the bytes. */
        if (head_append(c, data, len, c->head_used + HC_CONN_EARLY_MAX) != 0)
            conn_fail(c, HC_ETOOBIG, "too many bytes before the upgrade");
        return;
    }
    rc = head_append(c, data, len, HC_CONN_HEAD_MAX + HC_CONN_EARLY_MAX);
    if (rc == 0) {
        rc = c->is_client ? hc_http_parse_response(c->head, c->head_len, &h)
                          : hc_http_parse_request(c->head, c->head_len, &h);
        if (rc == 0 && h.head_len > HC_CONN_HEAD_MAX)
            rc = HC_ETOOBIG;
        if (rc == HC_EAGAIN && c->head_len > HC_CONN_HEAD_MAX)
            rc = HC_ETOOBIG;
    }
    if (rc == HC_EAGAIN)
        return;
    if (rc != 0) {
        if (c->is_client) {
            conn_fail(c, HC_EPROTO,
                      rc == HC_ETOOBIG ? "response head too large"
                                       : "malformed response head");
        } else if (rc == HC_ETOOBIG) {
            send_http_error(c, 431, "Request Header Fields Too Large");
        } else {
            send_http_error(c, 400, "Bad Request");
        }
        return;
    }
    c->head_done = 1;
    c->head_used = h.head_len;
    if (c->cbs->on_head != NULL)
        c->cbs->on_head(c, &h);
    if (!c->closing && (c->state == HC_CONN_WS_OPEN || c->state == HC_CONN_RAW))
        process_held(c);
}

/* Bytes that came after the head, once the owner has upgraded. */
static void process_held(struct hc_conn *c)
{
    char *held;
    size_t off, len;

    if (c->closing || c->head == NULL ||
        (c->state != HC_CONN_WS_OPEN && c->state != HC_CONN_RAW))
        return;
    held = c->head;
    off = c->head_used;
    len = c->head_len - off;
    c->head = NULL;
    c->head_len = c->head_cap = c->head_used = 0;
    if (len > 0 && c->state == HC_CONN_WS_OPEN)
        ws_input(c, (const uint8_t *)held + off, len);
    else if (len > 0 && c->cbs->on_data != NULL)
        c->cbs->on_data(c, (const uint8_t *)held + off, len);
    hc_free(held);
}

static void plain_input(struct hc_conn *c, const uint8_t *data, size_t len)
{
    if (c->state == HC_CONN_RAW) {
        if (c->head != NULL)
            process_held(c);
        c->bytes_in += len;
        if (!c->closing && c->cbs->on_data != NULL)
            c->cbs->on_data(c, data, len);
    } else if (c->state == HC_CONN_WS_OPEN) {
        if (c->head != NULL)
            process_held(c);
        if (!c->closing)
            ws_input(c, data, len);
    } else if (c->state == HC_CONN_HTTP_HEAD) {
        head_input(c, data, len);
    }
}

int hc_conn_ws_start(struct hc_conn *c)
{
    static const struct wslay_frame_callbacks wcb = {ws_send_cb, ws_recv_cb,
                                                     ws_genmask_cb};
    if (c->closing)
        return UV_EPIPE;
    if (c->wsf == NULL && wslay_frame_context_init(&c->wsf, &wcb, c) != 0)
        return UV_ENOMEM;
    set_state(c, HC_CONN_WS_OPEN);
    if (c->head != NULL && c->head_len > c->head_used)
        mark_dirty(c); /* held bytes are parsed from the check phase */
    return 0;
}

int hc_conn_raw_start(struct hc_conn *c)
{
    if (c->closing)
        return UV_EPIPE;
    set_state(c, HC_CONN_RAW);
    if (c->head != NULL && c->head_len > c->head_used)
        mark_dirty(c);
    return 0;
}

/* ---- reading ---- */

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    struct hc_conn *c = h->data;
    struct hc_io *io = c->io;
    /* One shared buffer: every read is consumed before the next alloc. */
    *buf = uv_buf_init((char *)io->rbuf, sizeof(io->rbuf));
}

static void tls_input(struct hc_conn *c, const uint8_t *data, size_t len)
{
    struct hc_io *io = c->io;
    char err[256] = "";

    if (hc_tls_feed(&c->tls, data, len) != 0) {
        conn_fail(c, UV_ENOMEM, "out of memory");
        return;
    }
    if (!c->tls.handshake_done) {
        int rc = hc_tls_handshake(&c->tls, err, sizeof(err));
        mark_dirty(c);
        if (rc == HC_EAGAIN)
            goto keep;
        if (rc != 0) {
            conn_fail(c, HC_ETLS, err);
            return;
        }
        hc_log_debug("conn %u: TLS up, %s", c->id, hc_tls_suite(&c->tls));
        set_state(c, HC_CONN_HTTP_HEAD);
        if (c->is_client && c->cbs->on_connected != NULL)
            c->cbs->on_connected(c);
    }
    while (!c->closing) {
        ssize_t n =
            hc_tls_read(&c->tls, io->pbuf, sizeof(io->pbuf), err, sizeof(err));
        if (n == HC_EAGAIN)
            break;
        if (n == 0) {
            hc_conn_close(c, 0, "peer closed the connection");
            return;
        }
        if (n < 0) {
            conn_fail(c, HC_ETLS, err);
            return;
        }
        plain_input(c, io->pbuf, (size_t)n);
    }
keep:
    if (!c->closing && hc_tls_keep_input(&c->tls) != 0)
        conn_fail(c, UV_ENOMEM, "out of memory");
}

/* The proxy's answer to CONNECT: 2xx, then the tunnel is ours. */
static void proxy_input(struct hc_conn *c, const uint8_t *data, size_t len)
{
    struct hc_http_head h;
    char why[400], esc[160];
    size_t extra;
    int rc = head_append(c, data, len, HC_CONN_HEAD_MAX);

    if (rc == 0)
        rc = hc_http_parse_response(c->head, c->head_len, &h);
    if (rc == HC_EAGAIN)
        return;
    if (rc != 0) {
        snprintf(why, sizeof(why), "%s: malformed answer to CONNECT", c->dial);
        conn_fail(c, HC_EPROTO, why);
        return;
    }
    if (h.status < 200 || h.status > 299) {
        snprintf(why, sizeof(why), "%s answered %d %s", c->dial, h.status,
                 hc_log_escape(esc, sizeof(esc), h.reason, h.reason_len));
        conn_fail(c, HC_EPROTO, why);
        return;
    }
    extra = c->head_len - h.head_len;
    c->head_len = 0;
    after_connect(c);
    if (extra > 0 && !c->closing) {
        /* Bytes from the relay already (none are expected before TLS). */
        uint8_t *rest = hc_malloc(extra);
        if (rest == NULL) {
            conn_fail(c, UV_ENOMEM, "out of memory");
            return;
        }
        memcpy(rest, c->head + h.head_len, extra);
        if (c->use_tls)
            tls_input(c, rest, extra);
        else
            plain_input(c, rest, extra);
        hc_free(rest);
    }
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct hc_conn *c = s->data;

    if (nread == 0 || c->closing)
        return;
    if (nread < 0) {
        if (nread == UV_EOF && c->cbs->on_eof != NULL && !c->use_tls) {
            c->eof = 1;
            uv_read_stop(s);
            c->reading = 0;
            c->cbs->on_eof(c);
        } else if (nread == UV_EOF)
            hc_conn_close(c, 0, "peer closed the connection");
        else
            conn_fail(c, (int)nread, uv_strerror((int)nread));
        return;
    }
    if (c->state == HC_CONN_PROXY)
        proxy_input(c, (const uint8_t *)buf->base, (size_t)nread);
    else if (c->use_tls)
        tls_input(c, (const uint8_t *)buf->base, (size_t)nread);
    else
        plain_input(c, (const uint8_t *)buf->base, (size_t)nread);
}

void hc_conn_read_stop(struct hc_conn *c)
{
    if (c->read_paused)
        return;
    c->read_paused = 1;
    if (c->tcp_open && c->reading)
        uv_read_stop((uv_stream_t *)&c->tcp);
}

void hc_conn_read_start(struct hc_conn *c)
{
    if (!c->read_paused)
        return;
    c->read_paused = 0;
    if (c->tcp_open && c->reading && !c->closing && !c->eof)
        uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

static void start_reading(struct hc_conn *c)
{
    c->reading = 1;
    if (!c->read_paused)
        uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

/* ---- timers ---- */

static void on_timer(uv_timer_t *t)
{
    struct hc_conn *c = t->data;
    hc_conn_timer_cb cb = c->timer_cb;
    if (cb != NULL && !c->closing)
        cb(c);
}

void hc_conn_set_timer(struct hc_conn *c, uint64_t ms, hc_conn_timer_cb cb)
{
    if (c->closing)
        return;
    c->timer_cb = cb;
    uv_timer_start(&c->timer, on_timer, ms, 0);
}

void hc_conn_stop_timer(struct hc_conn *c)
{
    c->timer_cb = NULL;
    if (!uv_is_closing((uv_handle_t *)&c->timer))
        uv_timer_stop(&c->timer);
}

/* ---- construction ---- */

static struct hc_conn *conn_new(struct hc_io *io, struct hc_tls_conf *tls,
                                const struct hc_conn_cbs *cbs, void *data)
{
    struct hc_conn *c = hc_calloc(1, sizeof(*c));
    if (c == NULL)
        return NULL;
    c->io = io;
    c->cbs = cbs;
    c->data = data;
    c->id = ++io->next_id;
    c->high_water = DEFAULT_HIGH_WATER;
    c->low_water = DEFAULT_LOW_WATER;
    c->pending_pong_len = -1;
    c->pending_close_len = -1;
    c->use_tls = tls != NULL;
    uv_timer_init(io->loop, &c->timer);
    c->timer.data = c;
    c->pending = 1; /* the timer */
    return c;
}

static void tune_socket(struct hc_conn *c)
{
    uv_tcp_nodelay(&c->tcp, 1);
    uv_tcp_keepalive(&c->tcp, 1, 60);
}

/*
 * Out of memory for a connection that libuv has already accepted: close it.
 * A connection callback that leaves server->accepted_fd set makes libuv stop
 * watching the listening socket until the next uv_accept, which would never
 * come; with the fd closed and reset here, libuv goes on accepting (unix
 * stream.c, uv__server_io). No memory is needed for this.
 */
static void refuse_pending(uv_stream_t *server)
{
    if (server->accepted_fd >= 0) {
        close(server->accepted_fd);
        server->accepted_fd = -1;
    }
    hc_log_err("out of memory: incoming connection closed");
}

struct hc_conn *hc_conn_accept(struct hc_io *io, uv_stream_t *server,
                               struct hc_tls_conf *tls,
                               const struct hc_conn_cbs *cbs, void *data)
{
    struct hc_conn *c = conn_new(io, tls, cbs, data);
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    int rc;

    if (c == NULL) {
        refuse_pending(server);
        return NULL;
    }
    uv_tcp_init(io->loop, &c->tcp);
    c->tcp.data = c;
    c->tcp_open = 1;
    c->pending++;
    rc = uv_accept(server, (uv_stream_t *)&c->tcp);
    if (rc != 0) {
        hc_log_warn("accept: %s", uv_strerror(rc));
        c->closing = 1;
        c->on_close_called = 1;
        close_handles(c);
        return NULL;
    }
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) == 0) {
        if (ss.ss_family == AF_INET6) {
            struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
            uv_ip6_name(a, c->peer_addr, sizeof(c->peer_addr));
            c->peer_port = ntohs(a->sin6_port);
        } else {
            struct sockaddr_in *a = (struct sockaddr_in *)&ss;
            uv_ip4_name(a, c->peer_addr, sizeof(c->peer_addr));
            c->peer_port = ntohs(a->sin_port);
        }
    }
    tune_socket(c);
    if (tls != NULL) {
        if (hc_tls_init(&c->tls, tls, NULL) != 0) {
            c->use_tls = 0;
            c->closing = 1;
            c->on_close_called = 1;
            close_handles(c);
            return NULL;
        }
        c->state = HC_CONN_TLS_HANDSHAKE;
    } else {
        c->state = HC_CONN_HTTP_HEAD;
    }
    start_reading(c);
    return c;
}

static void on_connect(uv_connect_t *req, int status)
{
    struct hc_conn *c = req->data;
    char err[256] = "";

    if (c->closing)
        return;
    if (status < 0) {
        snprintf(err, sizeof(err), "connect to %s: %s", c->dial,
                 uv_strerror(status));
        conn_fail(c, status, err);
        return;
    }
    tune_socket(c);
    start_reading(c);
    if (c->proxy_req != NULL) {
        size_t len = strlen(c->proxy_req);
        uint8_t *buf = hc_malloc(len);
        if (buf == NULL) {
            conn_fail(c, UV_ENOMEM, "out of memory");
            return;
        }
        memcpy(buf, c->proxy_req, len);
        hc_free_secret_str(c->proxy_req); /* it may hold credentials */
        c->proxy_req = NULL;
        set_state(c, HC_CONN_PROXY);
        write_out(c, buf, len);
        return;
    }
    after_connect(c);
}

/* TCP (and any proxy) is up: TLS, or straight to the owner. */
static void after_connect(struct hc_conn *c)
{
    char err[256] = "";

    if (c->use_tls) {
        set_state(c, HC_CONN_TLS_HANDSHAKE);
        if (hc_tls_handshake(&c->tls, err, sizeof(err)) == HC_ETLS) {
            conn_fail(c, HC_ETLS, err);
            return;
        }
        mark_dirty(c);
    } else {
        set_state(c, HC_CONN_HTTP_HEAD);
        if (c->cbs->on_connected != NULL)
            c->cbs->on_connected(c);
    }
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    struct hc_conn *c = req->data;
    char err[300];
    int rc;

    c->gai_pending = 0;
    if (c->closing) {
        uv_freeaddrinfo(res);
        release(c);
        return;
    }
    if (status < 0 || res == NULL) {
        snprintf(err, sizeof(err), "resolve %s: %s", c->dial,
                 uv_strerror(status));
        uv_freeaddrinfo(res);
        conn_fail(c, status < 0 ? status : UV_EAI_NONAME, err);
        release(c);
        return;
    }
    set_state(c, HC_CONN_CONNECTING);
    uv_tcp_init(c->io->loop, &c->tcp);
    c->tcp.data = c;
    c->tcp_open = 1;
    c->pending++;
    c->connect_req.data = c;
    rc = uv_tcp_connect(&c->connect_req, &c->tcp, res->ai_addr, on_connect);
    uv_freeaddrinfo(res);
    if (rc != 0) {
        snprintf(err, sizeof(err), "connect to %s: %s", c->dial,
                 uv_strerror(rc));
        conn_fail(c, rc, err);
    }
    release(c);
}

struct hc_conn *hc_conn_connect(struct hc_io *io, const char *host, int port,
                                struct hc_tls_conf *tls, const char *sni,
                                const struct hc_conn_cbs *cbs, void *data)
{
    return hc_conn_connect_via(io, host, port, tls, sni, NULL, cbs, data);
}

struct hc_conn *hc_conn_connect_via(struct hc_io *io, const char *host,
                                    int port, struct hc_tls_conf *tls,
                                    const char *sni,
                                    const struct hc_proxy *proxy,
                                    const struct hc_conn_cbs *cbs, void *data)
{
    struct hc_conn *c = conn_new(io, tls, cbs, data);
    struct addrinfo hints;
    char portstr[16], dial[600];
    int rc, v6 = strchr(host, ':') != NULL;

    if (c == NULL)
        return NULL;
    c->is_client = 1;
    c->port = port;
    c->sni = hc_strdup(sni != NULL ? sni : host);
    if (proxy != NULL) {
        char req[1024];
        snprintf(req, sizeof(req),
                 "CONNECT %s%s%s:%d HTTP/1.1\r\nHost: %s%s%s:%d\r\n"
                 "%s%s%s\r\n",
                 v6 ? "[" : "", host, v6 ? "]" : "", port, v6 ? "[" : "", host,
                 v6 ? "]" : "", port,
                 proxy->auth[0] ? "Proxy-Authorization: " : "", proxy->auth,
                 proxy->auth[0] ? "\r\n" : "");
        c->proxy_req = hc_strdup(req);
        mbedtls_platform_zeroize(req, sizeof(req));
        snprintf(dial, sizeof(dial), "proxy %s:%d (for %s:%d)", proxy->host,
                 proxy->port, host, port);
        host = proxy->host;
        port = proxy->port;
    } else {
        snprintf(dial, sizeof(dial), "%s:%d", host, port);
    }
    c->dial = hc_strdup(dial);
    if (c->sni == NULL || c->dial == NULL ||
        (proxy != NULL && c->proxy_req == NULL) ||
        (tls != NULL && hc_tls_init(&c->tls, tls, c->sni) != 0)) {
        c->use_tls = 0;
        c->closing = 1;
        c->on_close_called = 1;
        close_handles(c);
        return NULL;
    }
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    snprintf(portstr, sizeof(portstr), "%d", port);
    c->state = HC_CONN_RESOLVING;
    c->gai.data = c;
    c->pending++;
    c->gai_pending = 1;
    rc = uv_getaddrinfo(io->loop, &c->gai, on_resolved, host, portstr, &hints);
    if (rc != 0) {
        c->gai_pending = 0;
        c->pending--;
        c->closing = 1;
        c->on_close_called = 1;
        close_handles(c);
        return NULL;
    }
    return c;
}
