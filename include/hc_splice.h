/*
 * hc_splice.h - join a raw TCP connection and an open WebSocket connection:
 * TCP bytes become binary messages, message payloads become TCP bytes.
 *
 * Half-close is kept both ways: a TCP FIN becomes a Close (1000) towards
 * the WebSocket while the other direction keeps flowing; a Close from the
 * WebSocket shuts down the TCP write side once what is queued is written.
 * Each direction stops reading when the other side's queue passes its
 * high-water mark and resumes at the low one, so memory stays bounded.
 */
#ifndef HC_SPLICE_H
#define HC_SPLICE_H

#include <stdint.h>

#include "hc_conn.h"

struct hc_splice;
typedef void (*hc_splice_done_cb)(struct hc_splice *s);

struct hc_splice {
    struct hc_conn *tcp, *ws;
    uv_loop_t *loop;
    hc_splice_done_cb done;
    void *data; /* the owner's */
    unsigned tcp_eof : 1, ws_close_rcvd : 1, tcp_gone : 1, ws_gone : 1,
        tcp_paused : 1, ws_paused : 1;
    int depth; /* callbacks of ours on the stack */
    /* Filled in as the connections end. */
    uint64_t bytes_to_tcp, bytes_from_tcp;
    uint64_t start_ms, end_ms;
    char reason[160]; /* why the tunnel ended, first cause wins */
};

/*
 * Take over tcp (raw mode, reads may be stopped) and ws (WebSocket open):
 * their callbacks and data become the splice's. done is called once, after
 * both have closed; the owner then frees s with hc_splice_free. Returns
 * NULL when out of memory (then both connections are aborted).
 */
struct hc_splice *hc_splice_new(struct hc_conn *tcp, struct hc_conn *ws,
                                hc_splice_done_cb done, void *data);
/*
 * End the tunnel: a Close with code and reason towards the WebSocket, then
 * both connections close after what is queued. done may run before this
 * returns: s must not be used afterwards.
 */
void hc_splice_close(struct hc_splice *s, int code, const char *reason);
void hc_splice_free(struct hc_splice *s);

#endif
