/*
 * test_oom.c - allocation failure swept through the constructors and the
 * whole chain, in one process and one libuv loop: hcrelay's relay, hcmd's
 * agent with a listener and a forward on one hybrid connection, and a TCP
 * echo server as the endpoint.
 *
 * For i = 0, 1, 2 ... the (i+1)-th hc_malloc from hc_relay_new on fails
 * (hc_mem_fail_after). Each run must end in a clean error from a
 * constructor, or recover: a client of the forward then gets its bytes
 * echoed through forward -> relay -> listener -> echo server within a few
 * seconds. Every run then stops the agent and the relay, and the loop must
 * close with no handle left. Leaks are caught by LeakSanitizer in the
 * ASan build (make test runs this binary there too).
 *
 * Also swept: the two configuration loaders, hc_io_new and the TLS
 * configurations.
 *
 * The certificate and key are test/unit/data/localhost.{crt,key}; run from
 * the project root (test/run.sh does).
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <unistd.h>

#include <cmocka.h>
#include <uv.h>

#include "hc_agent.h"
#include "hc_conn.h"
#include "hc_err.h"
#include "hc_log.h"
#include "hc_mem.h"
#include "hc_relay.h"
#include "hc_tls.h"

#define CERT "test/unit/data/localhost.crt"
#define KEY_SRC "test/unit/data/localhost.key"
#define ROOT_KEY "b29tLWtleS1mb3ItdGhlLW9vbS10ZXN0cy0wMDAwMDA="
#define MSG "hello through the chain"
#define RUN_MS 4000 /* one run: the round trip must be done by then */
/*
 * A run where the allocation fails on the way of the forward's request
 * waits for connect_timeout (1 s). The ASan build (LeakSanitizer) sweeps
 * every allocation; the plain build every fifth, to keep make test short.
 */
#if defined(__SANITIZE_ADDRESS__)
#define SWEEP_STEP 1
#define SWEEP_NOTE "every allocation (ASan build)"
#else
#define SWEEP_STEP 5
#define SWEEP_NOTE "every fifth allocation (the ASan build sweeps all)"
#endif
#ifndef LOG_LEVEL
#define LOG_LEVEL "error"
#endif

static char dir[] = "/tmp/hcmd-test-oom.XXXXXX";
static char key_path[256], relay_ini[256], agent_ini[256];
static int stderr_fd = -1;

/* ------------------------------------------------------------ fixtures -- */

static void write_file(const char *path, const char *text, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
    size_t len = strlen(text);

    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, len), (ssize_t)len);
    assert_int_equal(fchmod(fd, mode), 0);
    close(fd);
}

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    char *buf = malloc(65536);
    size_t n;

    if (f == NULL)
        fail_msg("cannot open %s (run from the project root)", path);
    assert_non_null(buf);
    n = fread(buf, 1, 65535, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

/* A port that was free a moment ago. */
static int free_port(void)
{
    uv_loop_t loop;
    uv_tcp_t t;
    struct sockaddr_in sa;
    struct sockaddr_storage ss;
    int len = sizeof(ss), port;

    uv_loop_init(&loop);
    uv_tcp_init(&loop, &t);
    uv_ip4_addr("127.0.0.1", 0, &sa);
    assert_int_equal(uv_tcp_bind(&t, (struct sockaddr *)&sa, 0), 0);
    uv_tcp_getsockname(&t, (struct sockaddr *)&ss, &len);
    port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    return port;
}

static int setup(void **state)
{
    char *key;

    signal(SIGPIPE, SIG_IGN); /* as hcmd and hcrelay do */
    if (mkdtemp(dir) == NULL)
        return -1;
    snprintf(key_path, sizeof(key_path), "%s/relay.key", dir);
    snprintf(relay_ini, sizeof(relay_ini), "%s/relay.ini", dir);
    snprintf(agent_ini, sizeof(agent_ini), "%s/hcm.ini", dir);
    key = read_file(KEY_SRC);
    write_file(key_path, key, 0600);
    free(key);
    /* HC_OOM_DEBUG=1: every log line, on stderr. */
    hc_log_set_level(getenv("HC_OOM_DEBUG") ? HC_LOG_DEBUG : HC_LOG_ERR);
    return 0;
}

static int teardown(void **state)
{
    unlink(key_path);
    unlink(relay_ini);
    unlink(agent_ini);
    rmdir(dir);
    return 0;
}

/* The error lines of failed runs go to a file, not into the TAP output. */
static void quiet(void)
{
    char path[300];
    int fd;

    if (getenv("HC_OOM_DEBUG"))
        return;
    snprintf(path, sizeof(path), "%s/stderr", dir);
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    fflush(stderr);
    stderr_fd = dup(2);
    dup2(fd, 2);
    close(fd);
}

/* Restore stderr; returns how many lines were logged meanwhile. */
static int loud(void)
{
    char path[300], *text, *p;
    int n = 0;

    if (stderr_fd < 0)
        return 0;
    fflush(stderr);
    dup2(stderr_fd, 2);
    close(stderr_fd);
    stderr_fd = -1;
    snprintf(path, sizeof(path), "%s/stderr", dir);
    text = read_file(path);
    for (p = text; *p; p++)
        n += *p == '\n';
    free(text);
    unlink(path);
    return n;
}

static void write_configs(int relay_port, int fwd_port, int echo_port)
{
    char text[4096];

    snprintf(text, sizeof(text),
             "[relay]\n"
             "listen = 127.0.0.1:%d\n"
             "cert_file = " CERT "\n"
             "key_file = %s\n"
             "hostname = localhost\n"
             "log_level = " LOG_LEVEL "\n"
             "[rule RootManageSharedAccessKey]\n"
             "rights = Manage Listen Send\n"
             "primary_key = " ROOT_KEY "\n"
             "[hybrid-connection hc]\n",
             relay_port, key_path);
    write_file(relay_ini, text, 0600);
    snprintf(text, sizeof(text),
             "[hcmd]\n"
             "ca_file = " CERT "\n"
             "log_level = " LOG_LEVEL "\n"
             "drain_timeout = 0\n"
             "connect_timeout = 1\n"
             "retry_max = 1\n"
             "[connection hc]\n"
             "connection_string = Endpoint=sb://localhost:%d/;"
             "SharedAccessKeyName=RootManageSharedAccessKey;"
             "SharedAccessKey=" ROOT_KEY ";EntityPath=hc\n"
             "endpoint = 127.0.0.1:%d\n"
             "[forward hc-client]\n"
             "connection_string = Endpoint=sb://localhost:%d/;"
             "SharedAccessKeyName=RootManageSharedAccessKey;"
             "SharedAccessKey=" ROOT_KEY ";EntityPath=hc\n"
             "bind = 127.0.0.1:%d\n",
             relay_port, echo_port, relay_port, fwd_port);
    write_file(agent_ini, text, 0600);
}

/* --------------------------------------------------- the echo endpoint -- */

struct echo_conn {
    uv_tcp_t tcp;
};

static void echo_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    static char space[65536];

    buf->base = space;
    buf->len = sizeof(space);
}

static void echo_closed(uv_handle_t *h)
{
    free(h->data);
}

static void echo_written(uv_write_t *w, int status)
{
    free(w);
}

static void echo_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    if (n > 0) {
        uv_write_t *w = malloc(sizeof(*w) + (size_t)n);
        uv_buf_t b;

        assert_non_null(w);
        memcpy(w + 1, buf->base, (size_t)n);
        b = uv_buf_init((char *)(w + 1), (unsigned)n);
        if (uv_write(w, s, &b, 1, echo_written) != 0)
            free(w);
    } else if (n < 0) {
        uv_close((uv_handle_t *)s, echo_closed);
    }
}

static void echo_accept(uv_stream_t *server, int status)
{
    struct echo_conn *e;

    if (status != 0)
        return;
    e = calloc(1, sizeof(*e));
    assert_non_null(e);
    uv_tcp_init(server->loop, &e->tcp);
    e->tcp.data = e;
    if (uv_accept(server, (uv_stream_t *)&e->tcp) != 0 ||
        uv_read_start((uv_stream_t *)&e->tcp, echo_alloc, echo_read) != 0)
        uv_close((uv_handle_t *)&e->tcp, echo_closed);
}

/* ---------------------------------------------- one run of the chain -- */

struct run {
    uv_loop_t loop;
    uv_tcp_t echo;
    uv_timer_t timer; /* the client's retry pace, then the run's deadline */
    uv_tcp_t client;
    uv_connect_t creq;
    uv_write_t wreq;
    char got[64];
    size_t got_len;
    int client_open, done, tries, fwd_port;
    uint64_t start;
    struct hc_relay *relay;
    struct hc_agent *agent;
};

static void on_timer(uv_timer_t *t);

static void client_closed(uv_handle_t *h)
{
    struct run *r = h->data;

    r->client_open = 0;
    if (!r->done && uv_now(&r->loop) - r->start < RUN_MS)
        uv_timer_start(&r->timer, on_timer, 5, 0);
}

static void client_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    struct run *r = h->data;

    buf->base = r->got + r->got_len;
    buf->len = sizeof(r->got) - 1 - r->got_len;
}

static void client_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    struct run *r = s->data;

    if (n > 0) {
        r->got_len += (size_t)n;
        if (r->got_len == strlen(MSG) && memcmp(r->got, MSG, r->got_len) == 0)
            r->done = 1;
        else if (r->got_len < strlen(MSG))
            return;
    }
    if (n == 0)
        return;
    uv_close((uv_handle_t *)s, client_closed);
}

static void client_connected(uv_connect_t *req, int status)
{
    struct run *r = req->data;
    uv_buf_t b = uv_buf_init((char *)MSG, (unsigned)strlen(MSG));

    if (status != 0 ||
        uv_read_start((uv_stream_t *)&r->client, client_alloc, client_read) !=
            0 ||
        uv_write(&r->wreq, (uv_stream_t *)&r->client, &b, 1, NULL) != 0)
        uv_close((uv_handle_t *)&r->client, client_closed);
}

static void client_try(struct run *r)
{
    struct sockaddr_in sa;

    if (r->done || uv_now(&r->loop) - r->start >= RUN_MS)
        return;
    r->tries++;
    r->got_len = 0;
    uv_ip4_addr("127.0.0.1", r->fwd_port, &sa);
    uv_tcp_init(&r->loop, &r->client);
    r->client.data = r;
    r->client_open = 1;
    r->creq.data = r;
    if (uv_tcp_connect(&r->creq, &r->client, (struct sockaddr *)&sa,
                       client_connected) != 0)
        uv_close((uv_handle_t *)&r->client, client_closed);
}

static void on_timer(uv_timer_t *t)
{
    client_try(t->data);
}

/* Polls every 5 ms: stop everything once done or out of time. */
static void on_watch(uv_timer_t *t)
{
    struct run *r = t->data;

    if ((r->done || uv_now(&r->loop) - r->start >= RUN_MS) && !r->client_open) {
        uv_timer_stop(t);
        uv_close((uv_handle_t *)t, NULL);
        uv_timer_stop(&r->timer);
        uv_close((uv_handle_t *)&r->timer, NULL);
        uv_close((uv_handle_t *)&r->echo, NULL);
        if (r->agent)
            hc_agent_stop(r->agent);
        if (r->relay)
            hc_relay_stop(r->relay);
    }
}

static void walk_cb(uv_handle_t *h, void *arg)
{
    (*(int *)arg)++;
    fprintf(stderr, "# handle left open: %s\n", uv_handle_type_name(h->type));
}

/*
 * One run with the (fail_at+1)-th allocation failing (-1: none). Returns
 * 1 when the round trip worked, 0 when a constructor failed cleanly; *used
 * is the number of allocations made.
 */
static int run_chain(long fail_at, long *used)
{
    struct run r;
    struct hc_relay_conf *rconf = NULL;
    struct hc_agent_conf *aconf = NULL;
    struct sockaddr_in sa;
    char err[256] = "", *errors = NULL;
    int echo_port = free_port(), relay_port = free_port(), rc, left = 0;
    uv_timer_t watch;

    if (getenv("HC_OOM_DEBUG"))
        fprintf(stderr, "# run: allocation %ld fails\n", fail_at);
    memset(&r, 0, sizeof(r));
    r.fwd_port = free_port();
    write_configs(relay_port, r.fwd_port, echo_port);
    assert_int_equal(hc_relay_conf_load(relay_ini, &rconf, &errors), 0);
    assert_int_equal(hc_agent_conf_load(agent_ini, &aconf, &errors), 0);
    assert_int_equal(uv_loop_init(&r.loop), 0);
    uv_tcp_init(&r.loop, &r.echo);
    uv_ip4_addr("127.0.0.1", echo_port, &sa);
    assert_int_equal(uv_tcp_bind(&r.echo, (struct sockaddr *)&sa, 0), 0);
    assert_int_equal(uv_listen((uv_stream_t *)&r.echo, 16, echo_accept), 0);
    uv_timer_init(&r.loop, &r.timer);
    r.timer.data = &r;
    uv_timer_init(&r.loop, &watch);
    watch.data = &r;
    r.start = uv_now(&r.loop);

    hc_mem_fail_after(fail_at);
    rc = hc_relay_new(&r.relay, &r.loop, rconf, err, sizeof(err));
    if (rc != 0) {
        r.relay = NULL;
        hc_agent_conf_free(aconf);
        goto failed;
    }
    rc = hc_relay_start(r.relay, err, sizeof(err));
    if (rc != 0) {
        hc_agent_conf_free(aconf);
        goto failed;
    }
    rc = hc_agent_new(&r.agent, &r.loop, aconf, err, sizeof(err));
    if (rc != 0) {
        r.agent = NULL;
        goto failed;
    }
    rc = hc_agent_start(r.agent, err, sizeof(err));
    if (rc != 0)
        goto failed;
    uv_timer_start(&r.timer, on_timer, 0, 0);
    uv_timer_start(&watch, on_watch, 5, 5);
    uv_run(&r.loop, UV_RUN_DEFAULT);
    *used = hc_mem_fail_after(-1);
    if (!r.done)
        fail_msg("allocation %ld failed: no round trip within %d ms (%d "
                 "tries)",
                 fail_at, RUN_MS, r.tries);
    goto end;
failed:
    *used = hc_mem_fail_after(-1);
    if (err[0] == '\0')
        fail_msg("allocation %ld failed: constructor error %d without a "
                 "reason",
                 fail_at, rc);
    uv_close((uv_handle_t *)&watch, NULL);
    uv_close((uv_handle_t *)&r.timer, NULL);
    uv_close((uv_handle_t *)&r.echo, NULL);
    if (r.agent)
        hc_agent_stop(r.agent);
    if (r.relay)
        hc_relay_stop(r.relay);
    uv_run(&r.loop, UV_RUN_DEFAULT);
end:
    if (r.agent)
        hc_agent_free(r.agent);
    if (r.relay)
        hc_relay_free(r.relay);
    uv_walk(&r.loop, walk_cb, &left);
    assert_int_equal(left, 0);
    assert_int_equal(uv_loop_close(&r.loop), 0);
    hc_free(errors);
    return r.done;
}

static void chain_oom_sweep(void **state)
{
    long i, used = 0, total = 0, clean_errors = 0, recovered = 0, slow = 0;
    int lines;

    /* A run with no failure first: it must work, and it tells the count. */
    quiet();
    assert_int_equal(run_chain(-1, &total), 1);
    print_message("# %s\n", SWEEP_NOTE);
    for (i = 0; i < total + 10; i += SWEEP_STEP) {
        uint64_t t0 = uv_hrtime(), ms;
        int ok = run_chain(i, &used);

        ms = (uv_hrtime() - t0) / 1000000;
        slow += ms >= 150;
        if (getenv("HC_OOM_DEBUG"))
            fprintf(stderr, "# run %ld: %s in %u ms\n", i,
                    ok ? "round trip" : "constructor error", (unsigned)ms);
        if (ok)
            recovered++;
        else
            clean_errors++;
    }
    lines = loud();
    print_message("# %ld runs over %ld allocations: %ld constructor errors, "
                  "%ld recovered (%ld took 150 ms or more), %d log lines\n",
                  clean_errors + recovered, total + 10, clean_errors, recovered,
                  slow, lines);
    assert_true(total > 50);
    assert_true(clean_errors > 0);
    assert_true(recovered > 0);
}

/* --------------------------------------------------- smaller sweeps -- */

/*
 * Load relay.ini (relay) or hcm.ini with the (i+1)-th allocation failing:
 * 1 when it loaded, 0 after a clean error.
 */
static int conf_run(int relay, long i)
{
    struct hc_relay_conf *rconf = NULL;
    struct hc_agent_conf *aconf = NULL;
    char *errors = NULL;
    long used;
    int rc;

    hc_mem_fail_after(i);
    rc = relay ? hc_relay_conf_load(relay_ini, &rconf, &errors)
               : hc_agent_conf_load(agent_ini, &aconf, &errors);
    used = hc_mem_fail_after(-1);
    hc_relay_conf_free(rconf);
    hc_agent_conf_free(aconf);
    hc_free(errors);
    if (rc != 0) {
        assert_true(rc == UV_ENOMEM || rc == HC_ECONFIG);
        assert_true(i < used);
    }
    return rc == 0;
}

static void conf_loaders_oom(void **state)
{
    int relay_ok = 0, agent_ok = 0;

    write_configs(9443, 16379, 6379);
    for (long i = 0; i < 2000 && !(relay_ok && agent_ok); i++) {
        if (!relay_ok)
            relay_ok = conf_run(1, i);
        if (!agent_ok)
            agent_ok = conf_run(0, i);
    }
    assert_true(relay_ok && agent_ok);
}

/*
 * A TLS configuration (server or client) and one connection state on it,
 * with the (i+1)-th allocation failing: 1 when all of it worked, 0 after a
 * clean error.
 */
static int tls_run(int server, long i)
{
    struct hc_tls_conf *c = NULL;
    struct hc_tls t;
    char err[256] = "";
    long used;
    int rc;

    hc_mem_fail_after(i);
    rc = server ? hc_tls_conf_server(&c, CERT, key_path, err, sizeof(err))
                : hc_tls_conf_client(&c, CERT, 1, err, sizeof(err));
    if (rc == 0) {
        rc = hc_tls_init(&t, c, server ? NULL : "localhost");
        if (rc == 0)
            hc_tls_free(&t);
    }
    used = hc_mem_fail_after(-1);
    if (c != NULL)
        hc_tls_conf_free(c);
    if (rc != 0)
        assert_true((rc == UV_ENOMEM || err[0] != '\0') && i < used);
    return rc == 0;
}

static void tls_conf_oom(void **state)
{
    int server_ok = 0, client_ok = 0;

    for (long i = 0; i < 1000 && !(server_ok && client_ok); i++) {
        if (!server_ok)
            server_ok = tls_run(1, i);
        if (!client_ok)
            client_ok = tls_run(0, i);
    }
    assert_true(server_ok && client_ok);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(conf_loaders_oom),
        cmocka_unit_test(tls_conf_oom),
        cmocka_unit_test(chain_oom_sweep),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
