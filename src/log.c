#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/time.h>

#include <uv.h>

#include "hc_log.h"

static const char *prog = "hc";
static enum hc_log_level cur_level = HC_LOG_INFO;
static int journal = -1;

void hc_log_init(const char *progname)
{
    prog = progname;
    journal = getenv("JOURNAL_STREAM") != NULL;
}

void hc_log_set_level(enum hc_log_level level)
{
    cur_level = level;
}

enum hc_log_level hc_log_get_level(void)
{
    return cur_level;
}

int hc_log_parse_level(const char *s, enum hc_log_level *out)
{
    static const struct {
        const char *name;
        enum hc_log_level level;
    } names[] = {{"error", HC_LOG_ERR},
                 {"warn", HC_LOG_WARN},
                 {"warning", HC_LOG_WARN},
                 {"info", HC_LOG_INFO},
                 {"debug", HC_LOG_DEBUG}};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (strcasecmp(s, names[i].name) == 0) {
            *out = names[i].level;
            return 0;
        }
    }
    return UV_EINVAL;
}

void hc_log(enum hc_log_level level, const char *fmt, ...)
{
    static const char *tags[] = {[HC_LOG_ERR] = "error",
                                 [HC_LOG_WARN] = "warning",
                                 [HC_LOG_INFO] = "info",
                                 [HC_LOG_DEBUG] = "debug"};
    char line[2048];
    int saved = errno;
    size_t n = 0;
    va_list ap;

    if (level > cur_level)
        return;
    if (journal < 0)
        journal = getenv("JOURNAL_STREAM") != NULL;
    if (journal) {
        n = (size_t)snprintf(line, sizeof(line), "<%d>%s: ", (int)level,
                             tags[level]);
    } else {
        struct timeval tv;
        struct tm tm;
        gettimeofday(&tv, NULL);
        gmtime_r(&tv.tv_sec, &tm);
        n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
        n += (size_t)snprintf(line + n, sizeof(line) - n,
                              ".%03dZ %s %s: ", (int)(tv.tv_usec / 1000), prog,
                              tags[level]);
    }
    va_start(ap, fmt);
    if (n < sizeof(line))
        vsnprintf(line + n, sizeof(line) - n, fmt, ap);
    va_end(ap);
    n = strlen(line);
    if (n > sizeof(line) - 2)
        n = sizeof(line) - 2;
    line[n++] = '\n';
    fwrite(line, 1, n, stderr);
    fflush(stderr);
    errno = saved;
}

void hc_log_lines(enum hc_log_level level, const char *text)
{
    while (text != NULL && *text != '\0') {
        const char *nl = strchr(text, '\n');
        int n = nl ? (int)(nl - text) : (int)strlen(text);
        if (n > 0)
            hc_log(level, "%.*s", n, text);
        text = nl ? nl + 1 : NULL;
    }
}

char *hc_log_escape(char *out, size_t cap, const void *data, size_t len)
{
    const unsigned char *p = data;
    size_t o = 0;

    if (cap == 0)
        return out;
    for (size_t i = 0; i < len; i++) {
        char tmp[5];
        size_t tl;
        if (p[i] >= 0x20 && p[i] < 0x7f && p[i] != '\\') {
            tmp[0] = (char)p[i];
            tl = 1;
        } else {
            snprintf(tmp, sizeof(tmp), "\\x%02x", p[i]);
            tl = 4;
        }
        if (o + tl + 4 > cap) {
            if (o + 4 <= cap) {
                memcpy(out + o, "...", 3);
                o += 3;
            }
            break;
        }
        memcpy(out + o, tmp, tl);
        o += tl;
    }
    out[o] = '\0';
    return out;
}
