#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ini.h>
#include <uv.h>

#include <sys/stat.h>

#include "hc_conf.h"
#include "hc_log.h"
#include "hc_err.h"
#include "hc_mem.h"

#define CONF_MAX_FILE (1024 * 1024)
#define LONG_TAG "\x01long:"

static void err_va(struct hc_conf_ctx *ctx, int lineno, const char *fmt,
                   va_list ap) __attribute__((format(printf, 3, 0)));

static void err_va(struct hc_conf_ctx *ctx, int lineno, const char *fmt,
                   va_list ap)
{
    char msg[512];
    char line[700];
    int n;
    char *p;

    vsnprintf(msg, sizeof(msg), fmt, ap);
    if (lineno > 0)
        n = snprintf(line, sizeof(line), "%s:%d: %s\n", ctx->path, lineno, msg);
    else
        n = snprintf(line, sizeof(line), "%s: %s\n", ctx->path, msg);
    if (n < 0)
        return;
    if ((size_t)n >= sizeof(line)) {
        n = sizeof(line) - 1;
        line[n - 1] = '\n'; /* cut, but still one line */
    }
    ctx->nerr++;
    p = hc_realloc(ctx->errors, ctx->errors_len + (size_t)n + 1);
    if (p == NULL)
        return;
    memcpy(p + ctx->errors_len, line, (size_t)n + 1);
    ctx->errors = p;
    ctx->errors_len += (size_t)n;
}

void hc_conf_err(struct hc_conf_ctx *ctx, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    err_va(ctx, ctx->lineno, fmt, ap);
    va_end(ap);
}

void hc_conf_err_at(struct hc_conf_ctx *ctx, int lineno, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    err_va(ctx, lineno, fmt, ap);
    va_end(ap);
}

/* Keep a value that inih's line buffer cannot hold; returns its index. */
static long keep_long(struct hc_conf_ctx *ctx, const char *v, size_t len)
{
    char **p = hc_realloc(ctx->long_values,
                          (ctx->nlong + 1) * sizeof(*ctx->long_values));
    if (p == NULL)
        return -1;
    ctx->long_values = p;
    p[ctx->nlong] = hc_strndup(v, len);
    if (p[ctx->nlong] == NULL)
        return -1;
    return (long)ctx->nlong++;
}

/*
 * inih's reader: one line per call, like fgets. num is inih's buffer size.
 * Every line is checked here and handed on in a form inih cannot misread:
 * indentation and inline comments removed, a section as a placeholder (its
 * real name is kept in ctx), and a value too long for inih as a reference.
 */
static char *reader(char *str, int num, void *stream)
{
    struct hc_conf_ctx *ctx = stream;
    const char *s, *e, *nl, *c;
    size_t len;

    if (ctx->cur >= ctx->end)
        return NULL;
    nl = memchr(ctx->cur, '\n', (size_t)(ctx->end - ctx->cur));
    s = ctx->cur;
    e = nl ? nl : ctx->end;
    ctx->cur = nl ? nl + 1 : ctx->end;
    ctx->lineno++;
    str[0] = '\0';
    /* The UTF-8 byte order mark on line 1. */
    if (ctx->lineno == 1 && e - s >= 3 && memcmp(s, "\xEF\xBB\xBF", 3) == 0)
        s += 3;
    if (memchr(s, '\0', (size_t)(e - s)) != NULL) {
        hc_conf_err(ctx, "NUL byte in line");
        return str;
    }
    /*
     * No control characters but tabs, and CR only as a CRLF line end: this
     * keeps LONG_TAG unforgeable, and inih (which skips any white space)
     * from taking a line that starts with one for a continuation.
     */
    for (c = s; c < e; c++) {
        if ((unsigned char)*c < 0x20 && *c != '\t' &&
            !(*c == '\r' && c == e - 1)) {
            hc_conf_err(ctx, "control character 0x%02x in line",
                        (unsigned char)*c);
            return str;
        }
    }
    while (s < e && (*s == ' ' || *s == '\t'))
        s++;
    if (s == e || *s == ';' || *s == '#')
        return str; /* blank or comment: inih need not see it */
    /* An inline comment: ';' after whitespace, as inih defines it. */
    for (c = s + 1; c < e; c++) {
        if (*c == ';' && isspace((unsigned char)c[-1])) {
            e = c;
            break;
        }
    }
    while (e > s && isspace((unsigned char)e[-1]))
        e--;
    len = (size_t)(e - s);
    if (len == 0)
        return str; /* only a line end such as "\r" */
    if (*s == '[') {
        const char *close = memchr(s, ']', len);
        if (close == NULL) {
            hc_conf_err(ctx, "section header without ']'");
            return str;
        }
        if ((size_t)(close - s - 1) >= sizeof(ctx->section)) {
            hc_conf_err(ctx, "section name too long");
            return str;
        }
        memcpy(ctx->section, s + 1, (size_t)(close - s - 1));
        ctx->section[close - s - 1] = '\0';
        ctx->nseen = 0;
        /* inih reports no section without keys: tell the caller here. */
        ctx->cb(ctx, ctx->section, NULL, NULL);
        snprintf(str, (size_t)num, "[s]\n");
        return str;
    }
    {
        const char *eq = s;
        while (eq < e && *eq != '=' && *eq != ':')
            eq++;
        if (eq == e) {
            hc_conf_err(ctx, "expected 'key = value', '[section]' or a "
                             "comment");
            return str;
        }
        if (eq == s) {
            hc_conf_err(ctx, "missing key name before '%c'", *eq);
            return str;
        }
        if (len + 2 > (size_t)num) {
            /* Too long for inih: pass a reference to the value instead. */
            const char *v = eq + 1, *ve = e;
            long idx;
            if ((size_t)(eq - s) + 40 > (size_t)num) {
                hc_conf_err(ctx, "key name too long");
                return str;
            }
            while (v < ve && isspace((unsigned char)*v))
                v++;
            idx = keep_long(ctx, v, (size_t)(ve - v));
            if (idx < 0) {
                hc_conf_err(ctx, "out of memory");
                return str;
            }
            snprintf(str, (size_t)num, "%.*s=" LONG_TAG "%ld\n", (int)(eq - s),
                     s, idx);
            return str;
        }
    }
    memcpy(str, s, len);
    str[len] = '\n';
    str[len + 1] = '\0';
    return str;
}

static int handler(void *user, const char *section, const char *name,
                   const char *value)
{
    struct hc_conf_ctx *ctx = user;
    size_t tl = strlen(LONG_TAG);

    if (strncmp(value, LONG_TAG, tl) == 0) {
        unsigned long idx = strtoul(value + tl, NULL, 10);
        if (idx < ctx->nlong)
            value = ctx->long_values[idx];
    }
    (void)section; /* inih only sees a placeholder; ours is in ctx */
    /* A key set twice in one section is an error for every file. */
    if (ctx->section[0] != '\0') {
        for (int i = 0; i < ctx->nseen; i++) {
            if (strcmp(ctx->seen[i], name) == 0) {
                hc_conf_err(ctx, "%s is set twice in [%s]",
                            hc_conf_keyname(name), ctx->section);
                return 1;
            }
        }
        if (ctx->nseen < 32)
            snprintf(ctx->seen[ctx->nseen++], sizeof(ctx->seen[0]), "%s", name);
    }
    ctx->cb(ctx, ctx->section, name, value);
    return 1;
}

static int read_file(const char *path, char **out, size_t *outlen, char *err,
                     size_t errlen)
{
    FILE *f = fopen(path, "rb");
    char *buf;
    size_t n;

    if (f == NULL) {
        int e = errno;
        snprintf(err, errlen, "%s: cannot open: %s\n", path, strerror(e));
        return uv_translate_sys_error(e);
    }
    buf = hc_malloc(CONF_MAX_FILE + 1);
    if (buf == NULL) {
        fclose(f);
        snprintf(err, errlen, "%s: out of memory\n", path);
        return UV_ENOMEM;
    }
    n = fread(buf, 1, CONF_MAX_FILE + 1, f);
    if (ferror(f) || n > CONF_MAX_FILE) {
        fclose(f);
        hc_free(buf);
        snprintf(err, errlen, "%s: %s\n", path,
                 n > CONF_MAX_FILE ? "larger than 1 MiB" : "read error");
        return n > CONF_MAX_FILE ? UV_EFBIG : UV_EIO;
    }
    fclose(f);
    buf[n] = '\0';
    *out = buf;
    *outlen = n;
    return 0;
}

int hc_conf_parse(const char *path, const char *text, hc_conf_cb cb, void *user,
                  char **errors)
{
    struct hc_conf_ctx ctx;
    char *owned = NULL;
    size_t len = 0;
    int rc;

    *errors = NULL;
    if (text == NULL) {
        char err[600];
        rc = read_file(path, &owned, &len, err, sizeof(err));
        if (rc != 0) {
            *errors = hc_strdup(err);
            return rc;
        }
        text = owned;
    } else {
        len = strlen(text);
    }
    memset(&ctx, 0, sizeof(ctx));
    ctx.path = path;
    ctx.user = user;
    ctx.cb = cb;
    ctx.text = ctx.cur = text;
    ctx.end = text + len;
    rc = ini_parse_stream(reader, &ctx, handler, &ctx);
    /* The reader hands inih only lines it can read; anything else is new. */
    if (rc != 0)
        hc_conf_err_at(&ctx, rc > 0 ? rc : 0, "cannot parse this line");
    for (size_t i = 0; i < ctx.nlong; i++)
        hc_free_secret_str(ctx.long_values[i]);
    hc_free(ctx.long_values);
    hc_free(owned);
    *errors = ctx.errors;
    return ctx.nerr ? HC_ECONFIG : 0;
}

int hc_conf_check_secrecy(const char *path, int strict)
{
    struct stat st;

    if (stat(path, &st) != 0 || (st.st_mode & 0044) == 0)
        return 0;
    if (strict) {
        hc_log_err("%s is readable by group or others (mode %03o) and holds "
                   "keys; refusing (--strict): chmod 600 %s",
                   path, (unsigned)(st.st_mode & 0777), path);
        return -1;
    }
    hc_log_warn("%s is readable by group or others (mode %03o) and holds "
                "keys: chmod 600 %s",
                path, (unsigned)(st.st_mode & 0777), path);
    return 0;
}

const char *hc_conf_keyname(const char *key)
{
    static char buf[48];
    size_t n = strlen(key);
    int ok = n > 0 && n <= 32;

    /* Letters, '_' and '-' only: a base64 key has digits, '+' or '/'. */
    for (const char *c = key; *c && ok; c++)
        ok = isalpha((unsigned char)*c) || *c == '_' || *c == '-';
    if (!ok)
        return "(not shown)";
    snprintf(buf, sizeof(buf), "'%s'", key);
    return buf;
}

int hc_conf_bool(const char *s, int *out)
{
    static const char *yes[] = {"true", "yes", "on", "1"};
    static const char *no[] = {"false", "no", "off", "0"};
    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *out = 1;
            return 0;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *out = 0;
            return 0;
        }
    }
    return UV_EINVAL;
}

int hc_conf_long(const char *s, long min, long max, long *out)
{
    char *end;
    long v;

    if (*s == '\0' || isspace((unsigned char)*s))
        return UV_EINVAL;
    errno = 0;
    v = strtol(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max)
        return UV_EINVAL;
    *out = v;
    return 0;
}

int hc_conf_hostport(const char *s, char *host, size_t hostcap, int *port)
{
    const char *colon, *h = s, *he;
    long p;

    if (*s == '[') {
        const char *close = strchr(s, ']');
        if (close == NULL || close[1] != ':')
            return UV_EINVAL;
        h = s + 1;
        he = close;
        colon = close + 1;
    } else {
        colon = strrchr(s, ':');
        if (colon == NULL || memchr(s, ':', (size_t)(colon - s)) != NULL)
            return UV_EINVAL;
        he = colon;
    }
    if (he == h || (size_t)(he - h) >= hostcap)
        return UV_EINVAL;
    for (const char *c = h; c < he; c++)
        if (isspace((unsigned char)*c) || *c == '/' || *c == '@')
            return UV_EINVAL;
    if (hc_conf_long(colon + 1, 0, 65535, &p) != 0)
        return UV_EINVAL;
    memcpy(host, h, (size_t)(he - h));
    host[he - h] = '\0';
    *port = (int)p;
    return 0;
}
