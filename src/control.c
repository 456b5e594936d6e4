#include <errno.h>
#include <grp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "hc_control.h"
#include "hc_log.h"
#include "hc_mem.h"

#define REQUEST_MAX 256
#define ANSWER_MAX (1024 * 1024)

struct hc_control {
    uv_loop_t *loop;
    uv_pipe_t server;
    char *path;
    hc_control_handler handler;
    void *data;
};

struct client {
    uv_pipe_t pipe;
    struct hc_control *ctl;
    char buf[REQUEST_MAX];
    size_t len;
    uv_write_t wreq;
    char *answer;
    int answered;
};

void hc_control_default_path(char *out, size_t len)
{
    const char *xdg = getenv("XDG_RUNTIME_DIR");
    if (geteuid() == 0)
        snprintf(out, len, "/run/hcmd/hcmd.sock");
    else if (xdg != NULL && xdg[0] == '/')
        snprintf(out, len, "%s/hcmd.sock", xdg);
    else
        snprintf(out, len, "/tmp/hcmd-%u.sock", (unsigned)geteuid());
}

static void client_closed(uv_handle_t *h)
{
    struct client *cl = h->data;
    hc_free(cl->answer);
    hc_free(cl);
}

static void written(uv_write_t *req, int status)
{
    struct client *cl = req->data;
    uv_close((uv_handle_t *)&cl->pipe, client_closed);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    struct client *cl = h->data;
    *buf = uv_buf_init(cl->buf + cl->len,
                       (unsigned)(sizeof(cl->buf) - cl->len - 1));
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct client *cl = s->data;
    char *nl;
    uv_buf_t out;

    if (cl->answered)
        return;
    if (nread < 0 || (nread == 0 && cl->len + 1 >= sizeof(cl->buf))) {
        uv_close((uv_handle_t *)&cl->pipe, client_closed);
        return;
    }
    cl->len += (size_t)nread;
    cl->buf[cl->len] = '\0';
    nl = strchr(cl->buf, '\n');
    if (nl == NULL) {
        if (cl->len + 1 >= sizeof(cl->buf))
            uv_close((uv_handle_t *)&cl->pipe, client_closed);
        return;
    }
    *nl = '\0';
    cl->answered = 1;
    uv_read_stop(s);
    cl->answer = cl->ctl->handler(cl->buf, cl->ctl->data);
    if (cl->answer == NULL)
        cl->answer = hc_strdup("{\"error\":\"out of memory\"}\n");
    if (cl->answer == NULL) {
        uv_close((uv_handle_t *)&cl->pipe, client_closed);
        return;
    }
    out = uv_buf_init(cl->answer, (unsigned)strlen(cl->answer));
    cl->wreq.data = cl;
    if (uv_write(&cl->wreq, s, &out, 1, written) != 0)
        uv_close((uv_handle_t *)&cl->pipe, client_closed);
}

static void on_connection(uv_stream_t *server, int status)
{
    struct hc_control *ctl = server->data;
    struct client *cl;

    if (status < 0)
        return;
    cl = hc_calloc(1, sizeof(*cl));
    if (cl == NULL)
        return;
    cl->ctl = ctl;
    uv_pipe_init(ctl->loop, &cl->pipe, 0);
    cl->pipe.data = cl;
    if (uv_accept(server, (uv_stream_t *)&cl->pipe) != 0 ||
        uv_read_start((uv_stream_t *)&cl->pipe, on_alloc, on_read) != 0)
        uv_close((uv_handle_t *)&cl->pipe, client_closed);
}

/* Is a daemon answering on path? 1 yes, 0 no. */
static int alive(const char *path)
{
    struct sockaddr_un sa;
    int fd, ok;

    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return 0;
    ok = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
    close(fd);
    return ok;
}

int hc_control_start(struct hc_control **out, uv_loop_t *loop, const char *path,
                     const char *group, hc_control_handler handler, void *data,
                     char *err, size_t errlen)
{
    struct hc_control *ctl;
    struct sockaddr_un sa;
    char dir[sizeof(sa.sun_path)];
    char *slash;
    int rc;

    if (strlen(path) >= sizeof(sa.sun_path)) {
        snprintf(err, errlen, "control_socket: path longer than %zu bytes",
                 sizeof(sa.sun_path) - 1);
        return UV_ENAMETOOLONG;
    }
    if (alive(path)) {
        snprintf(err, errlen, "another hcmd answers on %s", path);
        return UV_EADDRINUSE;
    }
    unlink(path); /* a socket left by a daemon that died */
    snprintf(dir, sizeof(dir), "%s", path);
    slash = strrchr(dir, '/');
    if (slash != NULL && slash != dir) {
        *slash = '\0';
        if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
            snprintf(err, errlen, "control_socket: mkdir %s: %s", dir,
                     strerror(errno));
            return uv_translate_sys_error(errno);
        }
    }
    ctl = hc_xcalloc(1, sizeof(*ctl));
    ctl->loop = loop;
    ctl->handler = handler;
    ctl->data = data;
    ctl->path = hc_xstrdup(path);
    uv_pipe_init(loop, &ctl->server, 0);
    ctl->server.data = ctl;
    /* Owner only from the first moment the socket exists. */
    {
        mode_t old = umask(group ? 0007 : 0077);
        rc = uv_pipe_bind(&ctl->server, path);
        umask(old);
    }
    if (rc == 0 && group != NULL) {
        struct group *g = getgrnam(group);
        if (g == NULL || chown(path, (uid_t)-1, g->gr_gid) != 0) {
            snprintf(err, errlen, "control_group: %s: %s", group,
                     g == NULL ? "no such group" : strerror(errno));
            hc_control_stop(ctl);
            return UV_EINVAL;
        }
        chmod(path, 0660);
    }
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&ctl->server, 16, on_connection);
    if (rc != 0) {
        snprintf(err, errlen, "control_socket %s: %s", path, uv_strerror(rc));
        hc_control_stop(ctl);
        return rc;
    }
    *out = ctl;
    return 0;
}

static void server_closed(uv_handle_t *h)
{
    struct hc_control *ctl = h->data;
    hc_free(ctl->path);
    hc_free(ctl);
}

void hc_control_stop(struct hc_control *ctl)
{
    if (ctl == NULL)
        return;
    unlink(ctl->path);
    uv_close((uv_handle_t *)&ctl->server, server_closed);
}

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int hc_control_request(const char *path, const char *request, int timeout_ms,
                       char **answer, char *err, size_t errlen)
{
    struct sockaddr_un sa;
    long long deadline = now_ms() + timeout_ms;
    char *buf = NULL;
    size_t len = 0, cap = 0;
    int fd, rc = 0;

    *answer = NULL;
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof(sa.sun_path)) {
        snprintf(err, errlen, "%s: path too long", path);
        return UV_ENAMETOOLONG;
    }
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "socket: %s", strerror(errno));
        return uv_translate_sys_error(errno);
    }
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        rc = uv_translate_sys_error(errno);
        snprintf(err, errlen, "no hcmd daemon answers on %s (%s)", path,
                 strerror(errno));
        close(fd);
        return rc;
    }
    if (write(fd, request, strlen(request)) < 0 || write(fd, "\n", 1) < 0) {
        rc = uv_translate_sys_error(errno);
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        close(fd);
        return rc;
    }
    for (;;) {
        struct pollfd p = {fd, POLLIN, 0};
        long long left = deadline - now_ms();
        ssize_t n;
        if (left <= 0 || poll(&p, 1, (int)left) <= 0) {
            snprintf(err, errlen, "%s: the daemon did not answer in time",
                     path);
            rc = UV_ETIMEDOUT;
            break;
        }
        if (len + 4096 + 1 > cap) {
            char *nb;
            cap = cap ? cap * 2 : 16384;
            if (cap > ANSWER_MAX + 4096 + 1) {
                snprintf(err, errlen, "%s: answer too large", path);
                rc = UV_E2BIG;
                break;
            }
            nb = hc_realloc(buf, cap);
            if (nb == NULL) {
                rc = UV_ENOMEM;
                snprintf(err, errlen, "out of memory");
                break;
            }
            buf = nb;
        }
        n = read(fd, buf + len, cap - len - 1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = uv_translate_sys_error(errno);
            snprintf(err, errlen, "%s: %s", path, strerror(errno));
            break;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    close(fd);
    if (rc != 0 || buf == NULL) {
        hc_free(buf);
        if (rc == 0) {
            snprintf(err, errlen, "%s: empty answer", path);
            rc = UV_EOF;
        }
        return rc;
    }
    buf[len] = '\0';
    *answer = buf;
    return 0;
}
