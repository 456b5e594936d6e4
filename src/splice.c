#include <stdio.h>
#include <string.h>

#include "hc_err.h"
#include "hc_log.h"
#include "hc_mem.h"
#include "hc_splice.h"

static void set_reason(struct hc_splice *s, const char *why)
{
    if (s->reason[0] == '\0')
        snprintf(s->reason, sizeof(s->reason), "%s", why);
}

/*
 * Callbacks nest (closing one side from a callback of the other calls back
 * at once), so the owner hears of the end only when the outermost callback
 * returns: s must stay valid until then.
 */
static void enter(struct hc_splice *s)
{
    s->depth++;
}

static void leave(struct hc_splice *s)
{
    if (--s->depth == 0 && s->tcp_gone && s->ws_gone) {
        s->end_ms = uv_now(s->loop);
        s->tcp = s->ws = NULL;
        s->done(s);
    }
}

/* ---- TCP side ---- */

static void tcp_data_cb(struct hc_conn *c, const uint8_t *data, size_t len)
{
    struct hc_splice *s = c->data;

    if (s->ws_gone || s->ws->closing || s->ws->close_sent)
        return;
    if (hc_conn_send_frame(s->ws, WSLAY_BINARY_FRAME, 1, data, len) != 0) {
        set_reason(s, "cannot write to the relay");
        hc_conn_abort(s->ws, UV_ENOMEM, "write failed");
        return;
    }
    if (!s->tcp_paused && hc_conn_queued(s->ws) > s->ws->high_water) {
        s->tcp_paused = 1;
        hc_conn_read_stop(c);
        hc_conn_want_drain(s->ws);
    }
}

static void tcp_eof_cb(struct hc_conn *c)
{
    struct hc_splice *s = c->data;

    s->tcp_eof = 1;
    if (!s->ws_gone && !s->ws->closing)
        hc_conn_send_close(s->ws, 1000, "", 0);
    if (s->ws_close_rcvd)
        set_reason(s, "closed by both sides");
}

static void tcp_drain_cb(struct hc_conn *c)
{
    struct hc_splice *s = c->data;

    if (s->ws_paused && !s->ws_gone) {
        s->ws_paused = 0;
        hc_conn_read_start(s->ws);
    }
}

static void tcp_close_cb(struct hc_conn *c, int err, const char *reason)
{
    struct hc_splice *s = c->data;
    char why[160];

    s->bytes_from_tcp = c->bytes_in;
    s->bytes_to_tcp = c->bytes_out;
    s->tcp_gone = 1;
    /* Nothing waits for the endpoint now: read (and drop) to see the Close. */
    if (s->ws_paused && !s->ws_gone) {
        s->ws_paused = 0;
        hc_conn_read_start(s->ws);
    }
    if (err != 0) {
        snprintf(why, sizeof(why), "endpoint: %s", reason);
        set_reason(s, why);
    }
    if (!s->ws_gone && !s->ws->closing) {
        if (!s->ws->close_sent)
            hc_conn_send_close(s->ws, err ? 1011 : 1000,
                               err ? "endpoint connection lost" : "",
                               err ? 24 : 0);
        if (s->ws_close_rcvd)
            hc_conn_close(s->ws, 0, "tunnel done");
    }
}

/* ---- WebSocket side ---- */

static void ws_data_cb(struct hc_conn *c, const uint8_t *data, size_t len)
{
    struct hc_splice *s = c->data;

    if (s->tcp_gone || s->tcp->closing || s->tcp->write_shut)
        return;
    if (hc_conn_write(s->tcp, data, len) != 0) {
        set_reason(s, "cannot write to the endpoint");
        hc_conn_abort(s->tcp, UV_ENOMEM, "write failed");
        return;
    }
    if (!s->ws_paused && hc_conn_queued(s->tcp) > s->tcp->high_water) {
        s->ws_paused = 1;
        hc_conn_read_stop(c);
        hc_conn_want_drain(s->tcp);
    }
}

static void ws_control_cb(struct hc_conn *c, int opcode, const uint8_t *data,
                          size_t len)
{
    struct hc_splice *s = c->data;

    if (opcode != WSLAY_CONNECTION_CLOSE)
        return;
    s->ws_close_rcvd = 1;
    if (!s->tcp_gone)
        hc_conn_shutdown(s->tcp); /* FIN after the queued bytes */
    if (s->tcp_eof || s->tcp_gone) {
        set_reason(s, "closed by both sides");
        /* Our Close went out already: the handshake is complete. */
        if (!c->close_sent)
            hc_conn_send_close(c, 1000, "", 0);
    } else {
        char why[160];
        int code = len >= 2 ? (data[0] << 8) | data[1] : 1005;
        snprintf(why, sizeof(why), "sender closed (%d)", code);
        set_reason(s, why);
    }
}

static void ws_drain_cb(struct hc_conn *c)
{
    struct hc_splice *s = c->data;

    if (s->tcp_paused && !s->tcp_gone && !s->tcp_eof) {
        s->tcp_paused = 0;
        hc_conn_read_start(s->tcp);
    }
}

static void ws_close_cb(struct hc_conn *c, int err, const char *reason)
{
    struct hc_splice *s = c->data;
    char why[160];

    s->ws_gone = 1;
    if (err != 0) {
        snprintf(why, sizeof(why), "relay: %s", reason);
        set_reason(s, why);
    }
    if (!s->tcp_gone) {
        if (err != 0 && !s->ws_close_rcvd)
            hc_conn_abort(s->tcp, err, "relay connection lost");
        else
            hc_conn_close(s->tcp, 0, "tunnel done"); /* flush, then FIN */
    }
}

static void tcp_data(struct hc_conn *c, const uint8_t *data, size_t len)
{
    struct hc_splice *s = c->data;
    enter(s);
    tcp_data_cb(c, data, len);
    leave(s);
}

static void tcp_eof(struct hc_conn *c)
{
    struct hc_splice *s = c->data;
    enter(s);
    tcp_eof_cb(c);
    leave(s);
}

static void tcp_drain(struct hc_conn *c)
{
    struct hc_splice *s = c->data;
    enter(s);
    tcp_drain_cb(c);
    leave(s);
}

static void tcp_close(struct hc_conn *c, int err, const char *reason)
{
    struct hc_splice *s = c->data;
    enter(s);
    tcp_close_cb(c, err, reason);
    leave(s);
}

static void ws_data(struct hc_conn *c, const uint8_t *data, size_t len)
{
    struct hc_splice *s = c->data;
    enter(s);
    ws_data_cb(c, data, len);
    leave(s);
}

static void ws_control(struct hc_conn *c, int opcode, const uint8_t *data,
                       size_t len)
{
    struct hc_splice *s = c->data;
    enter(s);
    ws_control_cb(c, opcode, data, len);
    leave(s);
}

static void ws_drain(struct hc_conn *c)
{
    struct hc_splice *s = c->data;
    enter(s);
    ws_drain_cb(c);
    leave(s);
}

static void ws_close(struct hc_conn *c, int err, const char *reason)
{
    struct hc_splice *s = c->data;
    enter(s);
    ws_close_cb(c, err, reason);
    leave(s);
}

static const struct hc_conn_cbs tcp_cbs = {
    .on_data = tcp_data,
    .on_eof = tcp_eof,
    .on_drain = tcp_drain,
    .on_close = tcp_close,
};

static const struct hc_conn_cbs ws_cbs = {
    .on_data = ws_data,
    .on_control = ws_control,
    .on_drain = ws_drain,
    .on_close = ws_close,
};

struct hc_splice *hc_splice_new(struct hc_conn *tcp, struct hc_conn *ws,
                                hc_splice_done_cb done, void *data)
{
    struct hc_splice *s = hc_calloc(1, sizeof(*s));

    if (s == NULL) {
        hc_conn_abort(tcp, UV_ENOMEM, "out of memory");
        hc_conn_abort(ws, UV_ENOMEM, "out of memory");
        return NULL;
    }
    s->tcp = tcp;
    s->ws = ws;
    s->done = done;
    s->data = data;
    s->loop = hc_io_loop(tcp->io);
    s->start_ms = uv_now(s->loop);
    tcp->cbs = &tcp_cbs;
    tcp->data = s;
    ws->cbs = &ws_cbs;
    ws->data = s;
    hc_conn_read_start(tcp);
    hc_conn_read_start(ws);
    return s;
}

void hc_splice_close(struct hc_splice *s, int code, const char *reason)
{
    enter(s);
    set_reason(s, reason);
    if (!s->ws_gone) {
        hc_conn_send_close(s->ws, code, reason, strlen(reason));
        hc_conn_close(s->ws, 0, reason);
    }
    if (!s->tcp_gone)
        hc_conn_close(s->tcp, 0, reason);
    leave(s);
}

void hc_splice_free(struct hc_splice *s)
{
    hc_free(s);
}
