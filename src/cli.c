/*
 * cli.c - hcmd's command line beside the daemon: list, show, add, remove.
 *
 * list and show read the configuration file and ask a running daemon for
 * the live state over the control socket ("status"); without a daemon they
 * show what is configured. add and remove edit the INI file as text, so
 * comments, order and every other section stay byte for byte: the new text
 * goes to a temporary file in the same folder (mode 0600), is loaded with
 * hc_agent_conf_load, and only then renamed over the file. A running daemon
 * is then told to "reload".
 *
 * Keys: the file text and connection strings given on the command line are
 * held in buffers that are wiped when freed; nothing here prints a key or a
 * token (only key names).
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <uv.h>

#include "hc_agent.h"
#include "hc_cli.h"
#include "hc_conf.h"
#include "hc_connstr.h"
#include "hc_control.h"
#include "hc_err.h"
#include "hc_mem.h"

#define DEFAULT_CONF "/etc/hcmd/hcm.ini"
#define FILE_MAX (1024 * 1024) /* as src/conf.c reads */
#define NAME_MAX_LEN 64
#define STATUS_TIMEOUT_MS 5000
#define RELOAD_TIMEOUT_MS 15000

/* ------------------------------------------------------------ usage ---- */

static const char usage_list[] =
    "usage: hcmd list [-c FILE]\n"
    "\n"
    "A table of the hybrid connections in FILE (default " DEFAULT_CONF ")\n"
    "and what the running hcmd says about each: NAME, NAMESPACE, ENTITY\n"
    "(the hybrid connection), ENDPOINT (for a [forward]: bind ADDR:PORT),\n"
    "STATUS (Connected, Connecting, Unauthorized, Not found, No endpoint,\n"
    "Not connected; Listening for a forward), TUNNELS (active) and SINCE\n"
    "(when the status last changed). The daemon is found through\n"
    "control_socket in [hcmd], else the default socket path.\n"
    "\n"
    "Without a running hcmd the first line says so (\"hcmd is not running\n"
    "(no answer on SOCKET)\"), STATUS, TUNNELS and SINCE are \"-\", and the\n"
    "exit status is still 0: the configured data was printed. A name marked\n"
    "'*' runs in the daemon but is no longer in FILE (it goes at reload);\n"
    "STATUS \"Not loaded\" means it is in FILE but not yet in the daemon.\n"
    "\n"
    "  -c FILE   the configuration file\n"
    "Exit status: 0 printed, 1 failed (unreadable or invalid FILE, or a\n"
    "daemon that does not answer properly), 2 usage error.\n";

static const char usage_show[] =
    "usage: hcmd show NAME [-c FILE]\n"
    "\n"
    "Details of the [connection NAME] or [forward NAME] in FILE\n"
    "(default " DEFAULT_CONF "): the namespace host and port (the one\n"
    "outbound destination to allow in a firewall), the hybrid connection,\n"
    "the key name (never the key), the endpoint and where it came from (the\n"
    "config or the hybrid connection's user metadata); and from the running\n"
    "hcmd: status, since when, the last error and its time, tunnels active\n"
    "and total, rejects, bytes each way and the token's expiry. Without a\n"
    "running hcmd it prints the configured data and says the daemon is not\n"
    "running (exit status 0).\n"
    "\n"
    "  -c FILE   the configuration file\n"
    "Exit status: 0 printed, 1 failed (no such NAME, unreadable or invalid\n"
    "FILE, a daemon that does not answer properly), 2 usage error.\n";

static const char usage_add[] =
    "usage: hcmd add --connection-string STR [--endpoint HOST:PORT]\n"
    "                [--name NAME] [-c FILE]\n"
    "\n"
    "Add a hybrid connection this host listens on: a [connection NAME]\n"
    "section at the end of FILE (default " DEFAULT_CONF ") with\n"
    "connection_string and, when given, endpoint.\n"
    "\n"
    "  --connection-string STR  the hybrid connection's connection string\n"
    "                 as the Azure portal shows it (or \"hcrelay -c relay.ini\n"
    "                 connection-string HC RULE\"): Endpoint=sb://...;\n"
    "                 SharedAccessKeyName=...;SharedAccessKey=...;\n"
    "                 EntityPath=...  It needs EntityPath and a rule with\n"
    "                 the Listen right. \"-\" reads it from standard input,\n"
    "                 which keeps the key out of the process list.\n"
    "  --endpoint HOST:PORT  where senders are connected ([V6]:PORT for\n"
    "                 IPv6). Without it hcmd uses the \"endpoint\" item of\n"
    "                 the hybrid connection's user metadata.\n"
    "  --name NAME    the section's name: 1 to 64 letters, digits, - _ .\n"
    "                 Default: the EntityPath, other characters as '-'.\n"
    "  -c FILE        the configuration file\n"
    "\n"
    "FILE is created when missing: mode 0600, a comment and an empty\n"
    "[hcmd] section (its folder too, mode 0755). Otherwise only the new\n"
    "section is appended: comments, order and other sections stay byte for\n"
    "byte. The new file is written to a temporary file in the same folder\n"
    "(mode 0600), checked as the daemon would load it, then renamed over\n"
    "FILE; a file with errors is never written (they are printed as\n"
    "FILE:LINE: message). A name already in use or a connection string\n"
    "without EntityPath is refused. A running hcmd (found through\n"
    "control_socket in [hcmd], else the default socket) reloads at once\n"
    "and its answer is printed; without one the change applies at next\n"
    "start.\n"
    "Exit status: 0 added, 1 failed (FILE unchanged unless the message says\n"
    "it was changed), 2 usage error.\n";

static const char usage_remove[] =
    "usage: hcmd remove NAME [-c FILE]\n"
    "\n"
    "Remove the [connection NAME] or [forward NAME] section from FILE\n"
    "(default " DEFAULT_CONF "): its header, its keys, the comments inside\n"
    "it, and the comment block right above its header when a blank line\n"
    "sets that block apart. Everything else stays byte for byte. The last\n"
    "connection of a file is not removed (hcmd would have nothing to do).\n"
    "The file is rewritten as by \"hcmd add\" (checked, temporary file, mode\n"
    "0600, rename). A running hcmd reloads at once: it closes that control\n"
    "channel or forward and lets live tunnels finish; without one the\n"
    "change applies at next start.\n"
    "\n"
    "  -c FILE   the configuration file\n"
    "Exit status: 0 removed, 1 failed (FILE unchanged unless the message\n"
    "says it was changed), 2 usage error.\n";

/* ---------------------------------------------------------- helpers ---- */

static int fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* One line "hcmd: ..." to stderr; returns the exit code 1. */
static int fail(const char *fmt, ...)
{
    va_list ap;

    fputs("hcmd: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return 1;
}

/* A growing byte buffer; it may hold keys, so it is wiped when freed. */
struct buf {
    char *p;
    size_t len, cap;
};

/* Room for n more bytes and a NUL. */
static void buf_reserve(struct buf *b, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 1024;
        char *p;
        while (cap < b->len + n + 1)
            cap *= 2;
        /* Not realloc: the old block held keys and must be wiped. */
        p = hc_xmalloc(cap);
        if (b->len > 0)
            memcpy(p, b->p, b->len);
        if (b->p != NULL)
            hc_free_secret(b->p, b->cap);
        b->p = p;
        b->cap = cap;
    }
}

static void buf_add(struct buf *b, const char *s, size_t n)
{
    buf_reserve(b, n);
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void buf_str(struct buf *b, const char *s)
{
    buf_add(b, s, strlen(s));
}

static void buf_free(struct buf *b)
{
    if (b->p != NULL)
        hc_free_secret(b->p, b->cap);
    memset(b, 0, sizeof(*b));
}

/* A printable copy of daemon-supplied text: control bytes become '?'. */
static const char *clean(char *out, size_t cap, const char *s)
{
    size_t i = 0;

    if (s == NULL)
        s = "";
    for (; *s != '\0' && i + 1 < cap; s++)
        out[i++] = ((unsigned char)*s < 0x20 || *s == 0x7f) ? '?' : *s;
    out[i] = '\0';
    return out;
}

/* "host:port", with brackets for an IPv6 host. */
static void host_port(char *out, size_t cap, const char *host, int port)
{
    int v6 = host != NULL && strchr(host, ':') != NULL;
    snprintf(out, cap, "%s%s%s:%d", v6 ? "[" : "", host ? host : "?",
             v6 ? "]" : "", port);
}

/* 1 when a and b name the same file, 0 when not, -1 when unknown. */
static int same_file(const char *a, const char *b)
{
    struct stat sa, sb;

    if (a == NULL || b == NULL || a[0] != '/' || stat(a, &sa) != 0 ||
        stat(b, &sb) != 0)
        return -1;
    return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

static void local_time(char *out, size_t cap, time_t t)
{
    struct tm tm;

    if (localtime_r(&t, &tm) == NULL ||
        strftime(out, cap, "%Y-%m-%d %H:%M:%S", &tm) == 0)
        snprintf(out, cap, "@%lld", (long long)t);
}

/* "42s", "5m", "3h", "2d": how long d seconds are, roughly. */
static void span(char *out, size_t cap, long long d)
{
    if (d < 60)
        snprintf(out, cap, "%llds", d);
    else if (d < 3600)
        snprintf(out, cap, "%lldm", d / 60);
    else if (d < 86400)
        snprintf(out, cap, "%lldh", d / 3600);
    else
        snprintf(out, cap, "%lldd", d / 86400);
}

/* SINCE in the table: "5m ago" within a day, else the local time. */
static void since_short(char *out, size_t cap, long long t, time_t now)
{
    char s[32];

    if (t <= 0) {
        snprintf(out, cap, "-");
    } else if (now - t < 86400) {
        span(s, sizeof(s), now > t ? now - t : 0);
        snprintf(out, cap, "%s ago", s);
    } else {
        struct tm tm;
        time_t tt = (time_t)t;
        if (localtime_r(&tt, &tm) == NULL ||
            strftime(out, cap, "%Y-%m-%d %H:%M", &tm) == 0)
            snprintf(out, cap, "@%lld", t);
    }
}

/* "2026-11-28 23:56:08 (5m ago)" or "(in 47m)". */
static void when_long(char *out, size_t cap, long long t, time_t now)
{
    char lt[64], s[32];

    local_time(lt, sizeof(lt), (time_t)t);
    if (t <= now) {
        span(s, sizeof(s), now - t);
        snprintf(out, cap, "%s (%s ago)", lt, s);
    } else {
        span(s, sizeof(s), t - now);
        snprintf(out, cap, "%s (in %s)", lt, s);
    }
}

/* ---------------------------------------------------------- options ---- */

enum {
    OPT_CS = 1,
    OPT_EP = 2,
    OPT_NAME = 4,
    OPT_ARG = 8, /* one positional NAME */
};

struct opts {
    const char *cmd;
    const char *conf;
    const char *cs;
    const char *endpoint;
    const char *name;
    const char *arg;
};

/*
 * Is argv[*i] the option long (or short, may be NULL)? Then *val gets its
 * value ("--opt=V" or the next argument) and 1 is returned; 0 when it is
 * another option; -1 (message printed) when the value is missing.
 */
static int opt_value(int argc, char **argv, int *i, const char *cmd,
                     const char *lng, const char *shrt, const char **val)
{
    const char *a = argv[*i];
    size_t n = strlen(lng);

    if (strncmp(a, lng, n) == 0 && a[n] == '=') {
        *val = a + n + 1;
        return 1;
    }
    if (strcmp(a, lng) != 0 && (shrt == NULL || strcmp(a, shrt) != 0))
        return 0;
    if (*i + 1 >= argc) {
        fprintf(stderr, "hcmd: %s: %s needs a value (see hcmd %s --help)\n",
                cmd, a, cmd);
        return -1;
    }
    *val = argv[++*i];
    return 1;
}

/* 0 parsed, 1 help printed (exit 0), 2 usage error printed. */
static int parse_opts(int argc, char **argv, struct opts *o, unsigned allowed,
                      const char *usage)
{
    static const struct {
        unsigned flag;
        const char *lng, *shrt;
        size_t off;
    } table[] = {
        {0, "--config", "-c", offsetof(struct opts, conf)},
        {OPT_CS, "--connection-string", NULL, offsetof(struct opts, cs)},
        {OPT_EP, "--endpoint", NULL, offsetof(struct opts, endpoint)},
        {OPT_NAME, "--name", NULL, offsetof(struct opts, name)},
    };
    int dashdash = 0;

    memset(o, 0, sizeof(*o));
    o->cmd = argv[1];
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        int matched = 0;
        if (!dashdash && a[0] == '-' && a[1] != '\0') {
            if (strcmp(a, "--") == 0) {
                dashdash = 1;
                continue;
            }
            if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
                fputs(usage, stdout);
                return 1;
            }
            for (size_t t = 0; t < sizeof(table) / sizeof(table[0]); t++) {
                const char **slot;
                const char *v;
                int r;
                if (table[t].flag != 0 && !(allowed & table[t].flag))
                    continue;
                r = opt_value(argc, argv, &i, o->cmd, table[t].lng,
                              table[t].shrt, &v);
                if (r < 0)
                    return 2;
                if (r == 0)
                    continue;
                slot = (const char **)((char *)o + table[t].off);
                if (*slot != NULL) {
                    fprintf(stderr,
                            "hcmd: %s: %s is given twice (see hcmd %s "
                            "--help)\n",
                            o->cmd, table[t].lng, o->cmd);
                    return 2;
                }
                *slot = v;
                matched = 1;
                break;
            }
            if (!matched) {
                fprintf(stderr,
                        "hcmd: %s: unknown option '%s' (see hcmd %s "
                        "--help)\n",
                        o->cmd, a, o->cmd);
                return 2;
            }
            continue;
        }
        if ((allowed & OPT_ARG) && o->arg == NULL) {
            o->arg = a;
            continue;
        }
        fprintf(stderr,
                "hcmd: %s: unexpected argument '%s' (see hcmd %s "
                "--help)\n",
                o->cmd, a, o->cmd);
        return 2;
    }
    if ((allowed & OPT_ARG) && o->arg == NULL) {
        fprintf(stderr, "hcmd: %s: NAME is missing (see hcmd %s --help)\n",
                o->cmd, o->cmd);
        return 2;
    }
    if ((allowed & OPT_CS) && o->cs == NULL) {
        fprintf(stderr,
                "hcmd: %s: --connection-string is missing (see hcmd %s "
                "--help)\n",
                o->cmd, o->cmd);
        return 2;
    }
    if (o->conf == NULL)
        o->conf = DEFAULT_CONF;
    return 0;
}

/* --------------------------------------------------------- the file ---- */

enum line_kind { L_BLANK, L_COMMENT, L_SECTION, L_OTHER };

/*
 * The configuration file as text, split in lines. Line i is
 * text[off[i]] .. text[off[i + 1]] including its line end; the last line
 * may have none.
 */
struct ini {
    struct buf text;
    size_t *off;
    size_t n;
    int exists;
    struct stat st;
};

static void ini_free(struct ini *f)
{
    buf_free(&f->text);
    hc_free(f->off);
    f->off = NULL;
    f->n = 0;
}

static void ini_split(struct ini *f)
{
    size_t n = 0, i;

    for (i = 0; i < f->text.len; i++)
        n += f->text.p[i] == '\n';
    if (f->text.len > 0 && f->text.p[f->text.len - 1] != '\n')
        n++;
    hc_free(f->off);
    f->off = hc_xmalloc((n + 1) * sizeof(*f->off));
    f->n = 0;
    f->off[0] = 0;
    for (i = 0; i < f->text.len; i++)
        if (f->text.p[i] == '\n')
            f->off[++f->n] = i + 1;
    if (f->n < n)
        f->off[++f->n] = f->text.len;
}

/*
 * Read path into f. A missing file is not an error (f->exists is 0).
 * Returns 0, or 1 with the reason printed.
 */
static int ini_read(struct ini *f, const char *path)
{
    int fd;

    memset(f, 0, sizeof(*f));
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT)
            return 0;
        return fail("%s: cannot open: %s", path, strerror(errno));
    }
    if (fstat(fd, &f->st) != 0 || !S_ISREG(f->st.st_mode)) {
        close(fd);
        return fail("%s: not a regular file", path);
    }
    f->exists = 1;
    buf_str(&f->text, "");
    for (;;) {
        ssize_t nread;
        /* Straight into the buffer: no other copy of the keys. */
        buf_reserve(&f->text, 8192);
        nread = read(fd, f->text.p + f->text.len, 8192);
        if (nread < 0 && errno == EINTR)
            continue;
        if (nread < 0) {
            int e = errno;
            close(fd);
            ini_free(f);
            return fail("%s: read error: %s", path, strerror(e));
        }
        if (nread == 0)
            break;
        f->text.len += (size_t)nread;
        f->text.p[f->text.len] = '\0';
        if (f->text.len > FILE_MAX) {
            close(fd);
            ini_free(f);
            return fail("%s: larger than 1 MiB", path);
        }
    }
    close(fd);
    if (memchr(f->text.p, '\0', f->text.len) != NULL) {
        ini_free(f);
        return fail("%s: has a NUL byte; not an INI file", path);
    }
    ini_split(f);
    return 0;
}

/*
 * What line i is, as src/conf.c reads it. For a section header, sec gets
 * its name (what is between '[' and the first ']').
 */
static enum line_kind ini_kind(const struct ini *f, size_t i, char *sec,
                               size_t cap)
{
    const char *s = f->text.p + f->off[i], *e = f->text.p + f->off[i + 1];

    if (i == 0 && e - s >= 3 && memcmp(s, "\xEF\xBB\xBF", 3) == 0)
        s += 3;
    while (s < e && (*s == ' ' || *s == '\t'))
        s++;
    while (e > s && isspace((unsigned char)e[-1]))
        e--;
    if (s == e)
        return L_BLANK;
    if (*s == ';' || *s == '#')
        return L_COMMENT;
    if (*s == '[') {
        const char *close = memchr(s, ']', (size_t)(e - s));
        size_t n = close ? (size_t)(close - s - 1) : 0;
        if (sec != NULL) {
            if (n >= cap)
                n = cap - 1;
            memcpy(sec, s + 1, n);
            sec[n] = '\0';
        }
        return L_SECTION;
    }
    return L_OTHER;
}

/* The NAME of "connection NAME" or "forward NAME" (as the loader reads
 * it), else NULL. *fwd tells which. */
static const char *entry_name(const char *sec, int *fwd)
{
    const char *name;

    if (strncmp(sec, "connection ", 11) == 0) {
        name = sec + 11;
        *fwd = 0;
    } else if (strncmp(sec, "forward ", 8) == 0) {
        name = sec + 8;
        *fwd = 1;
    } else {
        return NULL;
    }
    while (*name == ' ')
        name++;
    return name;
}

/*
 * The first line of the section whose header is line h: the header, or
 * the comment block right above it when a blank line sets that block
 * apart from what comes before (it documents this section). A comment
 * block at the top of the file belongs to the file.
 */
static size_t doc_start(const struct ini *f, size_t h)
{
    size_t s = h;

    while (s > 0 && ini_kind(f, s - 1, NULL, 0) == L_COMMENT)
        s--;
    if (s < h && s > 0 && ini_kind(f, s - 1, NULL, 0) == L_BLANK)
        return s;
    return h;
}

/* The line end the file uses: that of its first line, else "\n". */
static const char *ini_eol(const struct ini *f)
{
    const char *nl = f->text.len ? memchr(f->text.p, '\n', f->text.len) : 0;
    return nl != NULL && nl > f->text.p && nl[-1] == '\r' ? "\r\n" : "\n";
}

/* The section (connection or forward) named name: its header line, or -1. */
static long ini_find(const struct ini *f, const char *name, int *fwd)
{
    char sec[256];

    for (size_t i = 0; i < f->n; i++) {
        const char *nm;
        if (ini_kind(f, i, sec, sizeof(sec)) != L_SECTION)
            continue;
        nm = entry_name(sec, fwd);
        if (nm != NULL && strcmp(nm, name) == 0)
            return (long)i;
    }
    return -1;
}

/*
 * The text of f without every section named name (see doc_start for where
 * one begins; it ends where the next one begins, and the last one also
 * takes the blank line before it, the one "hcmd add" writes). *left gets
 * how many connections and forwards remain.
 */
static void ini_remove(const struct ini *f, const char *name, struct buf *out,
                       int *left)
{
    char *drop = hc_xcalloc(f->n ? f->n : 1, 1);
    char sec[256];
    int fwd;

    *left = 0;
    for (size_t h = 0; h < f->n; h++) {
        size_t start, end, next;
        const char *nm;
        if (ini_kind(f, h, sec, sizeof(sec)) != L_SECTION)
            continue;
        nm = entry_name(sec, &fwd);
        if (nm == NULL || strcmp(nm, name) != 0)
            continue;
        start = doc_start(f, h);
        for (next = h + 1; next < f->n; next++)
            if (ini_kind(f, next, NULL, 0) == L_SECTION)
                break;
        if (next < f->n) {
            end = doc_start(f, next);
        } else {
            end = f->n;
            if (start > 0 && ini_kind(f, start - 1, NULL, 0) == L_BLANK)
                start--;
        }
        memset(drop + start, 1, end - start);
    }
    memset(out, 0, sizeof(*out));
    buf_str(out, "");
    for (size_t i = 0; i < f->n; i++) {
        if (drop[i])
            continue;
        if (ini_kind(f, i, sec, sizeof(sec)) == L_SECTION &&
            entry_name(sec, &fwd) != NULL)
            ++*left;
        buf_add(out, f->text.p + f->off[i], f->off[i + 1] - f->off[i]);
    }
    hc_free(drop);
}

/* -------------------------------------------------- write and apply ---- */

/* Every occurrence of from in s replaced by to; hc_malloc'd (or s). */
static char *replace_all(char *s, const char *from, const char *to)
{
    struct buf b = {0};
    const char *p = s, *q;
    size_t fl = strlen(from);

    if (s == NULL || fl == 0)
        return s;
    while ((q = strstr(p, from)) != NULL) {
        buf_add(&b, p, (size_t)(q - p));
        buf_str(&b, to);
        p = q + fl;
    }
    buf_str(&b, p);
    hc_free(s);
    s = hc_xstrdup(b.p);
    buf_free(&b);
    return s;
}

struct edit {
    const char *path;    /* as the user wrote it: for messages */
    char real[PATH_MAX]; /* the file to replace (symlinks followed) */
    char tmp[2 * PATH_MAX + 32];
    int have_tmp;
    struct hc_agent_conf *conf; /* the new file, loaded */
};

static void edit_cleanup(struct edit *e)
{
    if (e->have_tmp)
        unlink(e->tmp);
    e->have_tmp = 0;
    hc_agent_conf_free(e->conf);
    e->conf = NULL;
}

static int write_all(int fd, const char *p, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/*
 * Write text to a temporary file beside the real one (mode 0600, the old
 * file's owner when we may) and load it as the daemon would. Returns 0
 * with e->conf set, or 1 with the reason (or the FILE:LINE errors, named
 * after the user's file) printed; the temporary file is then gone.
 */
static int edit_prepare(struct edit *e, const struct ini *old,
                        const struct buf *text)
{
    char dir[PATH_MAX], *slash, *errors = NULL;
    const char *base;
    int fd, rc;

    if (old->exists) {
        if (realpath(e->path, e->real) == NULL)
            return fail("%s: %s", e->path, strerror(errno));
    } else {
        if (strlen(e->path) >= sizeof(e->real))
            return fail("%s: path too long", e->path);
        snprintf(e->real, sizeof(e->real), "%s", e->path);
    }
    snprintf(dir, sizeof(dir), "%s", e->real);
    slash = strrchr(dir, '/');
    if (slash == NULL) {
        snprintf(dir, sizeof(dir), ".");
        base = e->real;
    } else {
        base = e->real + (slash - dir) + 1;
        if (slash == dir)
            slash[1] = '\0';
        else
            *slash = '\0';
    }
    if (!old->exists && mkdir(dir, 0755) != 0 && errno != EEXIST)
        return fail("cannot create %s: mkdir %s: %s", e->path, dir,
                    strerror(errno));
    snprintf(e->tmp, sizeof(e->tmp), "%s%s.%s.XXXXXX", dir,
             strcmp(dir, "/") == 0 ? "" : "/", base);
    fd = mkstemp(e->tmp);
    if (fd < 0)
        return fail("cannot write a temporary file in %s: %s", dir,
                    strerror(errno));
    e->have_tmp = 1;
    if (fchmod(fd, 0600) != 0 || write_all(fd, text->p, text->len) != 0 ||
        fsync(fd) != 0) {
        int err = errno;
        close(fd);
        edit_cleanup(e);
        return fail("cannot write %s: %s", e->tmp, strerror(err));
    }
    if (old->exists &&
        (old->st.st_uid != geteuid() || old->st.st_gid != getegid()))
        (void)!fchown(fd, old->st.st_uid, old->st.st_gid);
    close(fd);
    rc = hc_agent_conf_load(e->tmp, &e->conf, &errors);
    if (rc != 0) {
        errors = replace_all(errors, e->tmp, e->path);
        fputs(errors ? errors : "", stderr);
        hc_free(errors);
        edit_cleanup(e);
        return fail("%s would not load with this change; nothing changed",
                    e->path);
    }
    hc_free(errors);
    return 0;
}

/*
 * Put the temporary file in place, unless the file changed since it was
 * read. Returns 0, or 1 with the reason printed (nothing changed).
 */
static int edit_commit(struct edit *e, const struct ini *old)
{
    struct stat st;
    char dir[PATH_MAX], *slash;
    int fd;

    if (old->exists) {
        if (stat(e->real, &st) != 0 || st.st_ino != old->st.st_ino ||
            st.st_dev != old->st.st_dev || st.st_size != old->st.st_size ||
            st.st_mtim.tv_sec != old->st.st_mtim.tv_sec ||
            st.st_mtim.tv_nsec != old->st.st_mtim.tv_nsec) {
            edit_cleanup(e);
            return fail("%s changed while hcmd was editing it; nothing "
                        "changed, try again",
                        e->path);
        }
    } else if (access(e->real, F_OK) == 0) {
        edit_cleanup(e);
        return fail("%s appeared while hcmd was creating it; nothing "
                    "changed, try again",
                    e->path);
    }
    if (rename(e->tmp, e->real) != 0) {
        int err = errno;
        edit_cleanup(e);
        return fail("cannot replace %s: %s; nothing changed", e->path,
                    strerror(err));
    }
    e->have_tmp = 0;
    /* The rename itself must reach the disk too. */
    snprintf(dir, sizeof(dir), "%s", e->real);
    slash = strrchr(dir, '/');
    if (slash != NULL) {
        slash[slash == dir ? 1 : 0] = '\0';
        fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd >= 0) {
            fsync(fd);
            close(fd);
        }
    }
    return 0;
}

/* What a running daemon says. */
struct daemon {
    char sock[256];
    int running;     /* it answered "status" with JSON */
    int unreachable; /* something answers badly, or not in time: why */
    char why[400];
    json_t *status;
};

static void daemon_socket(struct daemon *d, const struct hc_agent_conf *conf)
{
    if (conf != NULL && conf->control_socket != NULL)
        snprintf(d->sock, sizeof(d->sock), "%s", conf->control_socket);
    else
        hc_control_default_path(d->sock, sizeof(d->sock));
}

/* Ask the daemon on d->sock for "status". */
static void daemon_ask(struct daemon *d)
{
    char *answer = NULL;
    json_error_t jerr;
    int rc;

    d->running = d->unreachable = 0;
    d->status = NULL;
    rc = hc_control_request(d->sock, "status", STATUS_TIMEOUT_MS, &answer,
                            d->why, sizeof(d->why));
    if (rc == UV_ENOENT || rc == UV_ECONNREFUSED)
        return;
    if (rc != 0) {
        d->unreachable = 1;
        return;
    }
    d->status = json_loads(answer, 0, &jerr);
    hc_free(answer);
    if (d->status == NULL || !json_is_object(d->status) ||
        !json_is_array(json_object_get(d->status, "connections"))) {
        json_decref(d->status);
        d->status = NULL;
        d->unreachable = 1;
        snprintf(d->why, sizeof(d->why),
                 "the daemon on %s answered something else than its "
                 "status",
                 d->sock);
        return;
    }
    d->running = 1;
}

static json_t *daemon_find(const struct daemon *d, const char *name, int fwd)
{
    json_t *arr = d->status ? json_object_get(d->status, "connections") : 0;

    for (size_t i = 0; i < json_array_size(arr); i++) {
        json_t *o = json_array_get(arr, i);
        const char *n = json_string_value(json_object_get(o, "name"));
        const char *r = json_string_value(json_object_get(o, "role"));
        if (n != NULL && r != NULL && strcmp(n, name) == 0 &&
            strcmp(r, fwd ? "forward" : "listener") == 0)
            return o;
    }
    return NULL;
}

static const char *jstr(json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

static long long jint(json_t *o, const char *key)
{
    return (long long)json_integer_value(json_object_get(o, key));
}

/* The daemon's configuration file when it is not ours, else NULL. */
static const char *daemon_other_conf(const struct daemon *d, const char *path)
{
    const char *c = d->status ? jstr(d->status, "config") : NULL;
    return same_file(c, path) == 0 ? c : NULL;
}

/*
 * After the file was changed: tell a running daemon to reload it. Returns
 * the exit code (the file stays changed either way).
 */
static int apply(const struct hc_agent_conf *conf, const char *path)
{
    struct daemon d;
    char *answer = NULL, why[400], buf[400];
    const char *other;
    json_t *j;
    json_error_t jerr;
    long long pid;
    int rc;

    memset(&d, 0, sizeof(d));
    daemon_socket(&d, conf);
    daemon_ask(&d);
    if (d.unreachable)
        return fail("%s was changed, but the daemon did not take it: %s", path,
                    d.why);
    if (!d.running) {
        printf("hcmd is not running (no answer on %s): the change applies at "
               "next start\n",
               d.sock);
        return 0;
    }
    pid = jint(d.status, "pid");
    other = daemon_other_conf(&d, path);
    if (other != NULL) {
        printf("the hcmd on %s (pid %lld) runs %s, not %s: it was not "
               "reloaded\n",
               d.sock, pid, clean(buf, sizeof(buf), other), path);
        json_decref(d.status);
        return 0;
    }
    json_decref(d.status);
    rc = hc_control_request(d.sock, "reload", RELOAD_TIMEOUT_MS, &answer, why,
                            sizeof(why));
    if (rc != 0)
        return fail("%s was changed, but the reload request failed: %s", path,
                    why);
    j = json_loads(answer, 0, &jerr);
    hc_free(answer);
    if (j != NULL && json_is_true(json_object_get(j, "ok"))) {
        printf("hcmd (pid %lld) reloaded %s: the change is live\n", pid, path);
        json_decref(j);
        return 0;
    }
    rc = fail(
        "%s was changed, but hcmd (pid %lld) did not apply it: %s", path, pid,
        clean(buf, sizeof(buf),
              j && jstr(j, "error") ? jstr(j, "error") : "unexpected answer"));
    json_decref(j);
    return rc;
}

/* -------------------------------------------------------------- add ---- */

static int name_ok(const char *s)
{
    if (*s == '\0' || strlen(s) > NAME_MAX_LEN)
        return 0;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '-' && *s != '_' && *s != '.')
            return 0;
    return 1;
}

/*
 * The connection string from "-": one line of standard input, read with
 * read(2) so that no stdio buffer keeps a copy of the key.
 */
static int read_stdin_line(struct buf *b)
{
    char ch;

    buf_str(b, "");
    for (;;) {
        ssize_t n = read(0, &ch, 1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0 || ch == '\n')
            break;
        if (b->len >= 8192)
            return fail("add: the connection string on standard input is "
                        "too long");
        buf_add(b, &ch, 1);
    }
    ch = 0;
    return 0;
}

/* Checks that make the string safe to write as one INI value. */
static int cs_check_text(const char *s)
{
    for (const char *c = s; *c; c++) {
        if ((unsigned char)*c < 0x20 || *c == 0x7f)
            return fail("add: the connection string has a control character "
                        "(a line break?); paste it as one line");
        if (*c == ';' && c > s && isspace((unsigned char)c[-1]))
            return fail("add: the connection string has a space before ';', "
                        "which hcm.ini would read as a comment");
    }
    if (*s == ';' || *s == '#')
        return fail("add: the connection string starts with '%c'", *s);
    return 0;
}

static int same_str(const char *a, const char *b)
{
    return (a == NULL && b == NULL) ||
           (a != NULL && b != NULL && strcmp(a, b) == 0);
}

static int cmd_add(struct opts *o)
{
    struct buf csbuf = {0}, out = {0};
    struct hc_connstr cs;
    struct ini f;
    struct edit e;
    struct hc_agent_hc *h;
    char err[256], name[NAME_MAX_LEN + 1], host[256];
    const char *s, *eol;
    size_t n;
    int port, fwd, rc = 1;

    memset(&cs, 0, sizeof(cs));
    memset(&e, 0, sizeof(e));
    memset(&f, 0, sizeof(f));
    if (strcmp(o->cs, "-") == 0) {
        if (read_stdin_line(&csbuf) != 0)
            goto out;
    } else {
        buf_str(&csbuf, o->cs);
    }
    /* Trim what a paste brings along. */
    s = csbuf.p;
    while (isspace((unsigned char)*s))
        s++;
    n = strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1]))
        n--;
    memmove(csbuf.p, s, n);
    csbuf.p[n] = '\0';
    csbuf.len = n;
    if (n == 0) {
        rc = fail("add: the connection string is empty");
        goto out;
    }
    if (cs_check_text(csbuf.p) != 0)
        goto out;
    if (hc_connstr_parse(csbuf.p, &cs, err, sizeof(err)) != 0) {
        rc = fail("add: bad connection string: %s", err);
        goto out;
    }
    if (cs.entity_path == NULL) {
        rc = fail("add: the connection string has no EntityPath: use the "
                  "hybrid connection's own connection string, not the "
                  "namespace's");
        goto out;
    }
    if (cs.managed_identity) {
        rc = fail("add: Authentication=Managed Identity is not supported; "
                  "use a connection string with a SAS key");
        goto out;
    }
    if (cs.key == NULL && cs.sas == NULL) {
        rc = fail("add: the connection string has no SharedAccessKeyName "
                  "and SharedAccessKey");
        goto out;
    }
    if (o->endpoint != NULL) {
        if (hc_conf_hostport(o->endpoint, host, sizeof(host), &port) != 0 ||
            port == 0) {
            rc = fail("add: --endpoint '%s': expected HOST:PORT or "
                      "[V6]:PORT with a port from 1 to 65535",
                      clean(err, sizeof(err), o->endpoint));
            goto out;
        }
    }
    if (o->name != NULL) {
        if (!name_ok(o->name)) {
            rc = fail("add: --name '%s': 1 to 64 letters, digits, - _ .",
                      clean(err, sizeof(err), o->name));
            goto out;
        }
        snprintf(name, sizeof(name), "%s", o->name);
    } else {
        size_t i;
        for (i = 0; cs.entity_path[i] != '\0' && i < NAME_MAX_LEN; i++) {
            char c = cs.entity_path[i];
            name[i] =
                isalnum((unsigned char)c) || c == '-' || c == '_' || c == '.'
                    ? c
                    : '-';
        }
        name[i] = '\0';
    }

    if (ini_read(&f, o->conf) != 0)
        goto out;
    if (ini_find(&f, name, &fwd) >= 0) {
        rc = fail("add: the name %s is already used by [%s %s] in %s "
                  "(choose another with --name)",
                  name, fwd ? "forward" : "connection", name, o->conf);
        goto out;
    }
    eol = ini_eol(&f);
    if (f.exists) {
        buf_add(&out, f.text.p ? f.text.p : "", f.text.len);
        if (f.text.len > 0 && f.text.p[f.text.len - 1] != '\n')
            buf_str(&out, eol);
        if (f.text.len > 0)
            buf_str(&out, eol);
    } else {
        buf_str(&out, "; hcmd configuration, created by \"hcmd add\". It "
                      "holds keys: keep it mode 0600.\n"
                      "; Settings for [hcmd] and their defaults: see the "
                      "commented sample hcm.ini.\n"
                      "[hcmd]\n\n");
    }
    buf_str(&out, "[connection ");
    buf_str(&out, name);
    buf_str(&out, "]");
    buf_str(&out, eol);
    buf_str(&out, "connection_string = ");
    buf_str(&out, csbuf.p);
    buf_str(&out, eol);
    if (o->endpoint != NULL) {
        buf_str(&out, "endpoint = ");
        buf_str(&out, o->endpoint);
        buf_str(&out, eol);
    }

    e.path = o->conf;
    if (edit_prepare(&e, &f, &out) != 0)
        goto out;
    /* What the daemon will read must be exactly what was given. */
    h = hc_agent_conf_find(e.conf, name, HC_ROLE_LISTEN);
    if (h == NULL || !same_str(h->cs.endpoint, cs.endpoint) ||
        !same_str(h->cs.entity_path, cs.entity_path) ||
        !same_str(h->cs.key_name, cs.key_name) ||
        !same_str(h->cs.key, cs.key) || !same_str(h->cs.sas, cs.sas) ||
        h->has_endpoint != (o->endpoint != NULL)) {
        edit_cleanup(&e);
        rc = fail("add: the connection string would not read back "
                  "unchanged from %s; nothing changed",
                  o->conf);
        goto out;
    }
    if (edit_commit(&e, &f) != 0)
        goto out;
    printf("%s [connection %s] %s %s: hybrid connection %s on %s:%d, "
           "key name %s, endpoint %s\n",
           f.exists ? "added" : "created", name, f.exists ? "to" : "in",
           o->conf, cs.entity_path, cs.host, cs.port,
           cs.key_name ? cs.key_name : "(signature)",
           o->endpoint ? o->endpoint : "from the user metadata");
    rc = apply(e.conf, o->conf);
out:
    edit_cleanup(&e);
    hc_connstr_free(&cs);
    buf_free(&csbuf);
    buf_free(&out);
    ini_free(&f);
    return rc;
}

/* ----------------------------------------------------------- remove ---- */

static int cmd_remove(struct opts *o)
{
    struct buf out = {0};
    struct ini f;
    struct edit e;
    int fwd, left, rc = 1;

    memset(&e, 0, sizeof(e));
    if (ini_read(&f, o->conf) != 0)
        return 1;
    if (!f.exists) {
        rc = fail("remove: %s: cannot open: %s", o->conf, strerror(ENOENT));
        goto out;
    }
    if (ini_find(&f, o->arg, &fwd) < 0) {
        char nm[80];
        rc = fail("remove: no [connection %s] or [forward %s] in %s",
                  clean(nm, sizeof(nm), o->arg), nm, o->conf);
        goto out;
    }
    ini_remove(&f, o->arg, &out, &left);
    if (left == 0) {
        rc = fail("remove: %s is the only connection in %s and hcmd needs "
                  "one; add another first, or stop hcmd",
                  o->arg, o->conf);
        goto out;
    }
    e.path = o->conf;
    if (edit_prepare(&e, &f, &out) != 0 || edit_commit(&e, &f) != 0)
        goto out;
    printf("removed [%s %s] from %s\n", fwd ? "forward" : "connection", o->arg,
           o->conf);
    rc = apply(e.conf, o->conf);
out:
    edit_cleanup(&e);
    buf_free(&out);
    ini_free(&f);
    return rc;
}

/* ------------------------------------------------------- list, show ---- */

/* Load the file for list/show; errors printed. */
static int load_conf(const char *path, struct hc_agent_conf **conf)
{
    char *errors = NULL;
    int rc = hc_agent_conf_load(path, conf, &errors);

    if (rc != 0) {
        fputs(errors ? errors : "", stderr);
        hc_free(errors);
        return fail("cannot read the configuration %s", path);
    }
    hc_free(errors);
    return 0;
}

/* The start of list and show: the daemon's state, and a line about it. */
static int ask_and_say(struct daemon *d, const struct hc_agent_conf *conf,
                       const char *path)
{
    const char *other;
    char buf[400];

    daemon_socket(d, conf);
    daemon_ask(d);
    if (d->unreachable) {
        fail("%s", d->why);
        printf("hcmd does not answer properly on %s\n", d->sock);
        return 1;
    }
    if (!d->running) {
        printf("hcmd is not running (no answer on %s)\n", d->sock);
        return 0;
    }
    other = daemon_other_conf(d, path);
    if (other != NULL)
        printf("note: the hcmd on %s (pid %lld) runs %s, not %s\n", d->sock,
               jint(d->status, "pid"), clean(buf, sizeof(buf), other), path);
    return 0;
}

static void ns_text(char *out, size_t cap, const char *host, int port)
{
    if (port == 443)
        snprintf(out, cap, "%s", host);
    else
        host_port(out, cap, host, port);
}

#define NCOLS 7

struct table {
    char **cells;
    size_t nrows, cap;
};

static void table_add(struct table *t, const char *const cols[NCOLS])
{
    if (t->nrows == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 16;
        char **c = hc_xmalloc(cap * NCOLS * sizeof(*c));
        if (t->nrows > 0)
            memcpy(c, t->cells, t->nrows * NCOLS * sizeof(*c));
        hc_free(t->cells);
        t->cells = c;
        t->cap = cap;
    }
    for (int i = 0; i < NCOLS; i++) {
        char buf[512];
        t->cells[t->nrows * NCOLS + (size_t)i] =
            hc_xstrdup(clean(buf, sizeof(buf), cols[i]));
    }
    t->nrows++;
}

static void table_print_free(struct table *t)
{
    size_t w[NCOLS] = {0};

    for (size_t r = 0; r < t->nrows; r++)
        for (int i = 0; i < NCOLS; i++) {
            size_t l = strlen(t->cells[r * NCOLS + (size_t)i]);
            if (l > w[i])
                w[i] = l;
        }
    for (size_t r = 0; r < t->nrows; r++) {
        for (int i = 0; i < NCOLS; i++) {
            const char *c = t->cells[r * NCOLS + (size_t)i];
            if (i == NCOLS - 1)
                printf("%s\n", c);
            else
                printf("%-*s  ", (int)w[i], c);
        }
    }
    for (size_t i = 0; i < t->nrows * NCOLS; i++)
        hc_free(t->cells[i]);
    hc_free(t->cells);
    memset(t, 0, sizeof(*t));
}

/* One row from the daemon's entry o (name given, maybe marked). */
static void row_from_daemon(struct table *t, const char *name, json_t *o,
                            time_t now)
{
    char ns[300], ep[300], tun[32], since[64];
    const char *role = jstr(o, "role"), *s = jstr(o, "status");
    int fwd = role != NULL && strcmp(role, "forward") == 0;

    ns_text(ns, sizeof(ns), jstr(o, "namespace") ? jstr(o, "namespace") : "?",
            (int)jint(o, "port"));
    if (fwd)
        snprintf(ep, sizeof(ep), "bind %s",
                 jstr(o, "bind") ? jstr(o, "bind") : "?");
    else if (jstr(o, "endpoint") != NULL)
        snprintf(ep, sizeof(ep), "%s", jstr(o, "endpoint"));
    else
        snprintf(ep, sizeof(ep), "(user metadata)");
    snprintf(tun, sizeof(tun), "%lld", jint(o, "tunnels"));
    since_short(since, sizeof(since), fwd ? 0 : jint(o, "since"), now);
    {
        const char *cols[NCOLS] = {
            name, ns,          jstr(o, "entity") ? jstr(o, "entity") : "?",
            ep,   s ? s : "?", tun,
            since};
        table_add(t, cols);
    }
}

static int cmd_list(struct opts *o)
{
    struct hc_agent_conf *conf;
    struct daemon d;
    struct table t = {0};
    time_t now = time(NULL);
    int rc, extra = 0;
    static const char *const head[NCOLS] = {"NAME",     "NAMESPACE", "ENTITY",
                                            "ENDPOINT", "STATUS",    "TUNNELS",
                                            "SINCE"};

    if (load_conf(o->conf, &conf) != 0)
        return 1;
    memset(&d, 0, sizeof(d));
    rc = ask_and_say(&d, conf, o->conf);
    table_add(&t, head);
    for (struct hc_agent_hc *h = conf->hcs; h != NULL; h = h->next) {
        int fwd = h->role == HC_ROLE_FORWARD;
        json_t *j = d.running ? daemon_find(&d, h->name, fwd) : NULL;
        char ns[300], ep[300];
        if (j != NULL) {
            row_from_daemon(&t, h->name, j, now);
            continue;
        }
        ns_text(ns, sizeof(ns), h->cs.host, h->cs.port);
        if (fwd && h->bind_host[0] != '\0') {
            char hp[280];
            host_port(hp, sizeof(hp), h->bind_host, h->bind_port);
            snprintf(ep, sizeof(ep), "bind %s", hp);
        } else if (fwd)
            snprintf(ep, sizeof(ep), "bind %d", h->bind_port);
        else if (h->has_endpoint)
            host_port(ep, sizeof(ep), h->endpoint_host, h->endpoint_port);
        else
            snprintf(ep, sizeof(ep), "(user metadata)");
        {
            const char *cols[NCOLS] = {h->name,
                                       ns,
                                       h->cs.entity_path,
                                       ep,
                                       d.running ? "Not loaded" : "-",
                                       "-",
                                       "-"};
            table_add(&t, cols);
        }
    }
    /* What the daemon still runs but the file no longer has. */
    if (d.running) {
        json_t *arr = json_object_get(d.status, "connections");
        for (size_t i = 0; i < json_array_size(arr); i++) {
            json_t *j = json_array_get(arr, i);
            const char *n = jstr(j, "name"), *r = jstr(j, "role");
            char nm[100];
            if (n == NULL || r == NULL ||
                hc_agent_conf_find(conf, n,
                                   strcmp(r, "forward") == 0
                                       ? HC_ROLE_FORWARD
                                       : HC_ROLE_LISTEN) != NULL)
                continue;
            snprintf(nm, sizeof(nm), "%s*", n);
            row_from_daemon(&t, nm, j, now);
            extra = 1;
        }
    }
    table_print_free(&t);
    if (extra)
        printf("* runs in hcmd but is not in %s: it goes at the next "
               "reload\n",
               o->conf);
    json_decref(d.status);
    hc_agent_conf_free(conf);
    return rc;
}

#define LINE(label, ...)                                                       \
    do {                                                                       \
        printf("%-14s ", label ":");                                           \
        printf(__VA_ARGS__);                                                   \
        putchar('\n');                                                         \
    } while (0)

static void show_live_listener(json_t *j, time_t now)
{
    char b[300], w[128];
    const char *le = jstr(j, "last_error");
    long long texp = jint(j, "token_expiry");

    LINE("Status", "%s", clean(b, sizeof(b), jstr(j, "status")));
    if (jint(j, "since") > 0) {
        when_long(w, sizeof(w), jint(j, "since"), now);
        LINE("Since", "%s", w);
    }
    if (le != NULL && le[0] != '\0') {
        when_long(w, sizeof(w), jint(j, "last_error_time"), now);
        LINE("Last error", "%s, at %s", clean(b, sizeof(b), le), w);
    } else {
        LINE("Last error", "none");
    }
    LINE("Tunnels", "%lld active, %lld in all", jint(j, "tunnels"),
         jint(j, "tunnels_total"));
    LINE("Rejects", "%lld", jint(j, "rejects"));
    LINE("Bytes", "%lld to the endpoint, %lld to senders",
         jint(j, "bytes_to_endpoint"), jint(j, "bytes_to_sender"));
    if (texp > 0) {
        when_long(w, sizeof(w), texp, now);
        LINE("Token expiry", "%s; renewed before it", w);
    } else {
        LINE("Token expiry", "none known (a SharedAccessSignature given "
                             "whole is not renewed, or no token yet)");
    }
}

static void show_live_forward(json_t *j)
{
    char b[300];

    LINE("Status", "%s", clean(b, sizeof(b), jstr(j, "status")));
    LINE("Tunnels", "%lld active, %lld in all", jint(j, "tunnels"),
         jint(j, "tunnels_total"));
    LINE("Refused", "%lld", jint(j, "refused"));
    LINE("Bytes", "%lld to the relay, %lld to clients",
         jint(j, "bytes_to_relay"), jint(j, "bytes_to_client"));
}

static int cmd_show(struct opts *o)
{
    struct hc_agent_conf *conf;
    struct hc_agent_hc *h;
    struct daemon d;
    json_t *j = NULL;
    time_t now = time(NULL);
    char b[300], nm[80];
    int fwd, rc;

    if (load_conf(o->conf, &conf) != 0)
        return 1;
    h = hc_agent_conf_find(conf, o->arg, HC_ROLE_LISTEN);
    if (h == NULL)
        h = hc_agent_conf_find(conf, o->arg, HC_ROLE_FORWARD);
    memset(&d, 0, sizeof(d));
    rc = ask_and_say(&d, conf, o->conf);
    if (h == NULL) {
        /* Not in the file: perhaps the daemon still runs it. */
        if (d.running) {
            j = daemon_find(&d, o->arg, 0);
            if (j == NULL)
                j = daemon_find(&d, o->arg, 1);
        }
        if (j == NULL) {
            json_decref(d.status);
            hc_agent_conf_free(conf);
            return fail("show: no [connection %s] or [forward %s] in %s",
                        clean(nm, sizeof(nm), o->arg), nm, o->conf);
        }
        fwd = strcmp(jstr(j, "role") ? jstr(j, "role") : "", "forward") == 0;
        LINE("Name", "%s (not in %s any more: it goes at the next reload)",
             clean(nm, sizeof(nm), o->arg), o->conf);
        LINE("Role", "%s", fwd ? "forward" : "listener");
        host_port(b, sizeof(b), jstr(j, "namespace"), (int)jint(j, "port"));
        LINE("Namespace", "%s", clean(nm, sizeof(nm), b));
        LINE("Entity", "%s", clean(b, sizeof(b), jstr(j, "entity")));
        LINE("Key name", "%s", clean(b, sizeof(b), jstr(j, "key_name")));
        if (fwd)
            show_live_forward(j);
        else
            show_live_listener(j, now);
        json_decref(d.status);
        hc_agent_conf_free(conf);
        return rc;
    }
    fwd = h->role == HC_ROLE_FORWARD;
    if (d.running)
        j = daemon_find(&d, h->name, fwd);
    LINE("Name", "%s ([%s %s] in %s, line %d)", h->name,
         fwd ? "forward" : "connection", h->name, o->conf, h->line);
    LINE("Role", "%s",
         fwd ? "forward: local port -> relay (sender)"
             : "listener: relay -> endpoint");
    host_port(b, sizeof(b), h->cs.host, h->cs.port);
    LINE("Namespace", "%s (outbound TCP and TLS to this host and port)", b);
    LINE("Entity", "%s", h->cs.entity_path);
    LINE("Key name", "%s",
         h->cs.key_name ? h->cs.key_name : "(a SharedAccessSignature token)");
    if (fwd) {
        const char *bind = j ? jstr(j, "bind") : NULL;
        if (bind != NULL) {
            LINE("Bind", "%s", clean(b, sizeof(b), bind));
        } else if (h->bind_host[0] != '\0') {
            host_port(b, sizeof(b), h->bind_host, h->bind_port);
            LINE("Bind", "%s", b);
        } else {
            LINE("Bind", "port %d on a loopback address hcmd chooses",
                 h->bind_port);
        }
        if (h->hostname != NULL)
            LINE("Hostname", "%s (in %s)", h->hostname,
                 conf->hosts_file ? conf->hosts_file : "?");
    } else {
        const char *ep = j ? jstr(j, "endpoint") : NULL;
        if (h->has_endpoint) {
            host_port(b, sizeof(b), h->endpoint_host, h->endpoint_port);
            LINE("Endpoint", "%s (from the config)", b);
        } else if (ep != NULL) {
            LINE("Endpoint", "%s (from the user metadata)",
                 clean(b, sizeof(b), ep));
        } else {
            LINE("Endpoint", "from the hybrid connection's user metadata%s",
                 d.running ? " (not read yet)" : "");
        }
    }
    if (j != NULL) {
        if (fwd)
            show_live_forward(j);
        else
            show_live_listener(j, now);
    } else if (d.running) {
        LINE("Status",
             "Not loaded (in %s, not yet in hcmd: it comes at the "
             "next reload)",
             o->conf);
    } else if (!d.unreachable) {
        LINE("Status", "- (hcmd is not running)");
    } else {
        LINE("Status", "- (hcmd does not answer)");
    }
    json_decref(d.status);
    hc_agent_conf_free(conf);
    return rc;
}

/* ------------------------------------------------------------ entry ---- */

int hc_cli_is_command(const char *word)
{
    return word != NULL &&
           (strcmp(word, "list") == 0 || strcmp(word, "show") == 0 ||
            strcmp(word, "add") == 0 || strcmp(word, "remove") == 0);
}

int hc_cli_main(int argc, char **argv)
{
    struct opts o;
    int r;

    if (argc < 2 || !hc_cli_is_command(argv[1]))
        return fail("unknown command");
    if (strcmp(argv[1], "list") == 0) {
        r = parse_opts(argc, argv, &o, 0, usage_list);
        return r == 1 ? 0 : r != 0 ? r : cmd_list(&o);
    }
    if (strcmp(argv[1], "show") == 0) {
        r = parse_opts(argc, argv, &o, OPT_ARG, usage_show);
        return r == 1 ? 0 : r != 0 ? r : cmd_show(&o);
    }
    if (strcmp(argv[1], "add") == 0) {
        r = parse_opts(argc, argv, &o, OPT_CS | OPT_EP | OPT_NAME, usage_add);
        return r == 1 ? 0 : r != 0 ? r : cmd_add(&o);
    }
    r = parse_opts(argc, argv, &o, OPT_ARG, usage_remove);
    return r == 1 ? 0 : r != 0 ? r : cmd_remove(&o);
}
