/*
 * fuzz_ws.c - the WebSocket frame path of src/conn.c (hc_conn with wslay's
 * frame layer) fed with any bytes after the upgrade, through the public
 * hc_conn API on a real libuv loop.
 *
 * hc_conn only runs over a TCP handle it accepts or connects itself, so
 * each input uses one loopback TCP connection (127.0.0.1, ports picked by
 * the kernel): the other end is a plain blocking socket the harness writes
 * the input to, chunk by chunk, running the loop after each chunk until the
 * connection has read it (FIONREAD is 0), so the chunk boundaries are the
 * read boundaries. At the end the harness aborts the connection if it is
 * still open, resets the peer socket (SO_LINGER 0: no TIME_WAIT) and runs
 * the loop until every handle has closed.
 *
 * Input: byte 0 is flags, byte 1 the chunk size (0: all at once), the rest
 * is what the peer sends after the upgrade head.
 *   bit 0  client mode: hc_conn_connect to the harness, which answers 101;
 *          else server mode: hc_conn_accept, the harness sends a GET
 *   bit 1  send the first chunk together with the head (bytes held before
 *          the upgrade, parsed from the check phase)
 *   bit 2  echo: stream every data frame back (send_start/send_data),
 *          so pings and closes meet a frame in progress, as in a splice
 *   bit 3  no on_control: conn.c echoes a close by itself
 *   bit 4  after the first whole data frame, close from our side
 *   bit 5  stop reading at each frame end and start again at once
 *
 * Checks (hc_conn.h):
 *  - frames are announced, streamed and closed in order: on_data only
 *    inside a frame, never more bytes than announced, on_frame_end exactly
 *    when they are all there; data opcodes are 0..2 and continuations only
 *    inside a message; bytes_in counts the payload delivered;
 *  - control frames come whole, between data frames, with opcode 8..10
 *    and at most 125 bytes;
 *  - on_close is called exactly once, and nothing after it.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <uv.h>

#include "fuzz_common.h"
#include "hc_conn.h"
#include "hc_err.h"
#include "hc_log.h"

#define F_CLIENT 0x01
#define F_COALESCE 0x02
#define F_ECHO 0x04
#define F_NO_CONTROL 0x08
#define F_CLOSE 0x10
#define F_PAUSE 0x20

#define MAX_CHUNKS 256

static const char req_head[] = "GET /$hc/fuzz HTTP/1.1\r\nHost: localhost\r\n"
                               "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                               "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                               "Sec-WebSocket-Version: 13\r\n\r\n";
static const char resp_head[] =
    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
    "Connection: Upgrade\r\n"
    "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";

static uv_loop_t loop;
static struct hc_io *io;
static uv_tcp_t server; /* server mode: hc_conn_accept from here */
static struct sockaddr_in server_addr;
static int raw_listen = -1; /* client mode: the harness accepts here */
static int raw_port;

struct run {
    unsigned flags;
    struct hc_conn *c;
    int fd; /* the connection's socket, while it is open */
    int accepted, connected, head, closed;
    int in_frame, msg_open, data_frames_done;
    uint64_t frame_len, frame_got, payload;
    int echoing;
};
static struct run R;
static int trace; /* HC_FUZZ_TRACE=1: print the events */

#define TRACE(...)                                                             \
    do {                                                                       \
        if (trace)                                                             \
            fprintf(stderr, __VA_ARGS__);                                      \
    } while (0)

static void on_connected(struct hc_conn *c)
{
    FUZZ_CHECK(!R.closed && !R.connected && c == R.c);
    R.connected = 1;
    /* What we send is not checked by the harness: any request head. */
    hc_conn_write(c, req_head, sizeof(req_head) - 1);
}

static void on_head(struct hc_conn *c, const struct hc_http_head *h)
{
    FUZZ_CHECK(!R.closed && !R.head && c == R.c);
    FUZZ_CHECK(h->head_len > 0);
    R.head = 1;
    TRACE("head (%zu bytes)\n", h->head_len);
    if (!(R.flags & F_CLIENT))
        hc_conn_write(c, resp_head, sizeof(resp_head) - 1);
    FUZZ_CHECK(hc_conn_ws_start(c) == 0);
}

static void on_frame(struct hc_conn *c, int opcode, int fin, uint64_t len)
{
    FUZZ_CHECK(!R.closed && R.head && c == R.c);
    FUZZ_CHECK(!R.in_frame);
    FUZZ_CHECK(opcode >= 0 && opcode <= 2);
    FUZZ_CHECK(fin == 0 || fin == 1);
    if (opcode == 0)
        FUZZ_CHECK(R.msg_open);
    else
        FUZZ_CHECK(!R.msg_open);
    TRACE("frame op %d fin %d len %llu\n", opcode, fin,
          (unsigned long long)len);
    R.msg_open = !fin;
    R.in_frame = 1;
    R.frame_len = len;
    R.frame_got = 0;
    R.echoing = 0;
    if (R.flags & F_ECHO)
        R.echoing = hc_conn_send_start(c, opcode, fin, len) == 0 && len > 0;
}

static void on_data(struct hc_conn *c, const uint8_t *data, size_t len)
{
    volatile uint8_t sum = 0;

    FUZZ_CHECK(!R.closed && c == R.c);
    FUZZ_CHECK(R.in_frame);
    FUZZ_CHECK(len > 0 && len <= R.frame_len - R.frame_got);
    for (size_t i = 0; i < len; i++)
        sum ^= data[i]; /* every byte must be readable */
    (void)sum;
    TRACE("data %zu\n", len);
    R.frame_got += len;
    R.payload += len;
    if (R.echoing)
        R.echoing = hc_conn_send_data(c, data, len) == 0;
}

static void on_frame_end(struct hc_conn *c)
{
    FUZZ_CHECK(!R.closed && c == R.c);
    FUZZ_CHECK(R.in_frame && R.frame_got == R.frame_len);
    FUZZ_CHECK(c->bytes_in == R.payload);
    TRACE("frame end\n");
    R.in_frame = 0;
    R.data_frames_done++;
    if ((R.flags & F_CLOSE) && R.data_frames_done == 1)
        hc_conn_send_close(c, 1000, "fuzz", 4);
    if (R.flags & F_PAUSE) {
        hc_conn_read_stop(c);
        hc_conn_read_start(c);
    }
}

static void on_control(struct hc_conn *c, int opcode, const uint8_t *data,
                       size_t len)
{
    volatile uint8_t sum = 0;

    FUZZ_CHECK(!R.closed && c == R.c);
    FUZZ_CHECK(!R.in_frame);
    FUZZ_CHECK(opcode >= 8 && opcode <= 10);
    FUZZ_CHECK(len <= 125);
    TRACE("control op %d len %zu\n", opcode, len);
    for (size_t i = 0; i < len; i++)
        sum ^= data[i];
    (void)sum;
    if (opcode == 8) /* what conn.c does without an on_control */
        hc_conn_send_close(c, len >= 2 ? (data[0] << 8) | data[1] : 1000, "",
                           0);
}

static void on_close(struct hc_conn *c, int err, const char *reason)
{
    FUZZ_CHECK(!R.closed && c == R.c);
    FUZZ_CHECK(reason != NULL);
    TRACE("close err %d: %s\n", err, reason);
    R.closed = 1;
    R.fd = -1;
}

static const struct hc_conn_cbs cbs = {
    .on_connected = on_connected,
    .on_head = on_head,
    .on_frame = on_frame,
    .on_data = on_data,
    .on_frame_end = on_frame_end,
    .on_control = on_control,
    .on_close = on_close,
};

static const struct hc_conn_cbs cbs_no_control = {
    .on_connected = on_connected,
    .on_head = on_head,
    .on_frame = on_frame,
    .on_data = on_data,
    .on_frame_end = on_frame_end,
    .on_close = on_close,
};

static void on_connection(uv_stream_t *s, int status)
{
    const struct hc_conn_cbs *cb =
        (R.flags & F_NO_CONTROL) ? &cbs_no_control : &cbs;

    if (status < 0 || R.accepted)
        return;
    R.accepted = 1;
    R.c = hc_conn_accept(io, s, NULL, cb, &R);
}

/* The harness itself failed (not hc_conn): say why and stop. */
static void harness_fail(const char *what, int err) __attribute__((noreturn));
static void harness_fail(const char *what, int err)
{
    fprintf(stderr, "fuzz_ws harness: %s: %s\n", what, strerror(err));
    abort();
}

static void setup(void)
{
    struct sockaddr_in a;
    socklen_t alen = sizeof(a);
    int namelen = sizeof(server_addr);

    trace = getenv("HC_FUZZ_TRACE") != NULL;
    signal(SIGPIPE, SIG_IGN);
    hc_log_set_level(HC_LOG_ERR);
    if (uv_loop_init(&loop) != 0)
        harness_fail("uv_loop_init", 0);
    io = hc_io_new(&loop);
    uv_tcp_init(&loop, &server);
    uv_ip4_addr("127.0.0.1", 0, &server_addr);
    if (uv_tcp_bind(&server, (const struct sockaddr *)&server_addr, 0) != 0 ||
        uv_listen((uv_stream_t *)&server, 16, on_connection) != 0 ||
        uv_tcp_getsockname(&server, (struct sockaddr *)&server_addr,
                           &namelen) != 0)
        harness_fail("libuv listener", 0);
    uv_unref((uv_handle_t *)&server);

    raw_listen = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (raw_listen < 0 || bind(raw_listen, (struct sockaddr *)&a, sizeof(a)) ||
        listen(raw_listen, 16) ||
        getsockname(raw_listen, (struct sockaddr *)&a, &alen))
        harness_fail("raw listener", errno);
    raw_port = ntohs(a.sin_port);
}

/* Bytes the connection has not read yet, 0 once it is gone. */
static int unread(void)
{
    int n = 0;
    if (R.closed || R.fd < 0 || ioctl(R.fd, FIONREAD, &n) != 0)
        return 0;
    return n;
}

/* Run the loop until the connection has read what was sent (bounded). */
static void pump(void)
{
    for (int i = 0; i < 64; i++) {
        uv_run(&loop, UV_RUN_NOWAIT);
        if (R.closed || unread() == 0)
            break;
    }
    /* One more turn: the check phase flushes and parses held bytes. */
    uv_run(&loop, UV_RUN_NOWAIT);
}

static void send_all(int fd, const void *p, size_t len)
{
    const char *c = p;
    while (len > 0) {
        ssize_t w = send(fd, c, len, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return; /* the connection reset us: nothing more to say */
        c += w;
        len -= (size_t)w;
    }
}

/* Drop what the connection sent us, so its writes never block. */
static void drain(int fd)
{
    char buf[4096];
    while (recv(fd, buf, sizeof(buf), MSG_DONTWAIT) > 0)
        ;
}

/* Each chunk leaves at once (no Nagle), so a chunk is one read. */
static void nodelay(int fd)
{
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

static int open_server_mode(void)
{
    int peer = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    if (peer < 0)
        harness_fail("socket", errno);
    /* libFuzzer's SIGALRM watchdog may interrupt connect (EINTR); the
     * connection then goes on, and a second call tells how it ended. */
    while (connect(peer, (struct sockaddr *)&server_addr,
                   sizeof(server_addr)) != 0) {
        if (errno == EISCONN)
            break;
        if (errno != EINTR && errno != EALREADY)
            harness_fail("connect", errno);
    }
    nodelay(peer);
    uv_ref((uv_handle_t *)&server);
    for (int i = 0; i < 1000 && !R.accepted; i++)
        uv_run(&loop, UV_RUN_NOWAIT);
    uv_unref((uv_handle_t *)&server);
    FUZZ_CHECK(R.accepted && R.c != NULL);
    return peer;
}

static int open_client_mode(void)
{
    const struct hc_conn_cbs *cb =
        (R.flags & F_NO_CONTROL) ? &cbs_no_control : &cbs;
    int peer;

    R.c = hc_conn_connect(io, "127.0.0.1", raw_port, NULL, NULL, cb, &R);
    FUZZ_CHECK(R.c != NULL);
    /* Name resolution runs on libuv's thread pool: block until done. */
    while (!R.connected && !R.closed)
        if (uv_run(&loop, UV_RUN_ONCE) == 0 && !R.connected && !R.closed)
            break;
    FUZZ_CHECK(R.connected);
    while ((peer = accept4(raw_listen, NULL, NULL, SOCK_CLOEXEC)) < 0)
        if (errno != EINTR)
            harness_fail("accept", errno);
    nodelay(peer);
    pump(); /* our request head goes out */
    return peer;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int init;
    const char *head;
    size_t head_len, chunk, off = 0, first = 0;
    struct linger lg = {1, 0};
    int peer;

    if (!init) {
        setup();
        init = 1;
    }
    if (size < 2)
        return 0;
    memset(&R, 0, sizeof(R));
    R.fd = -1;
    R.flags = data[0];
    chunk = data[1];
    data += 2;
    size -= 2;
    if (chunk == 0 || size / chunk > MAX_CHUNKS)
        chunk = size > 0 ? size : 1;

    if (R.flags & F_CLIENT) {
        peer = open_client_mode();
        head = resp_head;
        head_len = sizeof(resp_head) - 1;
    } else {
        peer = open_server_mode();
        head = req_head;
        head_len = sizeof(req_head) - 1;
    }
    if (!R.closed)
        uv_fileno((uv_handle_t *)&R.c->tcp, &R.fd);

    /* The head, alone or with the first chunk (held bytes). */
    if (R.flags & F_COALESCE) {
        char *buf = malloc(head_len + chunk);
        if (buf == NULL)
            abort();
        first = chunk < size ? chunk : size;
        memcpy(buf, head, head_len);
        memcpy(buf + head_len, data, first);
        send_all(peer, buf, head_len + first);
        free(buf);
    } else {
        send_all(peer, head, head_len);
    }
    pump();
    for (off = first; off < size && !R.closed; off += chunk) {
        size_t n = size - off < chunk ? size - off : chunk;
        send_all(peer, data + off, n);
        pump();
        drain(peer);
    }

    /* Tear down: abort if still open, reset the peer, close everything. */
    if (!R.closed)
        hc_conn_abort(R.c, 0, "end of input");
    FUZZ_CHECK(R.closed);
    setsockopt(peer, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    close(peer);
    uv_run(&loop, UV_RUN_DEFAULT);
    return 0;
}
