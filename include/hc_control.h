/*
 * hc_control.h - the local control socket between the hcmd daemon and its
 * command line (list, show, add, remove).
 *
 * A UNIX stream socket that only its owner (or a configured group) may
 * open. A client connects, sends one request line ("status\n" or
 * "reload\n"), and reads one JSON document until the daemon closes.
 */
#ifndef HC_CONTROL_H
#define HC_CONTROL_H

#include <stddef.h>

#include <uv.h>

/* The daemon's answer to one request; hc_malloc'd JSON text. */
typedef char *(*hc_control_handler)(const char *request, void *data);

struct hc_control;

/*
 * The default socket path: /run/hcmd/hcmd.sock for root, else
 * $XDG_RUNTIME_DIR/hcmd.sock, else /tmp/hcmd-UID.sock. Writes into out.
 */
void hc_control_default_path(char *out, size_t len);

/*
 * Listen on path (mode 0600, or 0660 and owned by group when group is not
 * NULL). A stale socket file is replaced; a live one (another daemon) is an
 * error. Returns 0 or a libuv code with the reason in err.
 */
int hc_control_start(struct hc_control **out, uv_loop_t *loop, const char *path,
                     const char *group, hc_control_handler handler, void *data,
                     char *err, size_t errlen);
/* Stop listening and remove the socket file. */
void hc_control_stop(struct hc_control *c);

/*
 * Client side, blocking: send request, read the whole answer (at most
 * 1 MiB, timeout_ms overall). Returns 0 with *answer hc_malloc'd, UV_ENOENT
 * or UV_ECONNREFUSED when no daemon listens there, or another libuv code;
 * err gets a one-line reason.
 */
int hc_control_request(const char *path, const char *request, int timeout_ms,
                       char **answer, char *err, size_t errlen);

#endif
