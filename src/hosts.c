#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>

#include <uv.h>

#include "hc_hosts.h"
#include "hc_mem.h"

#define BEGIN_MARK "# BEGIN hcmd"
/* On the BEGIN line when hcmd ended the line before it with a newline. */
#define JOINED_MARK "(newline added above)"
#define END_MARK "# END hcmd"
#define ENTRY_MARK "# hcmd forward "
#define HOSTS_MAX (4 * 1024 * 1024)

static int starts_with(const char *p, const char *e, const char *mark)
{
    size_t n = strlen(mark);
    return (size_t)(e - p) >= n && memcmp(p, mark, n) == 0;
}

static int has(const char *p, const char *e, const char *mark)
{
    return memmem(p, (size_t)(e - p), mark, strlen(mark)) != NULL;
}

char *hc_hosts_rewrite(const char *old, size_t len,
                       const struct hc_hosts_entry *entries, size_t n,
                       size_t *out_len)
{
    size_t cap = len + 128, o = 0;
    const char *p = old, *end = old + len;
    int in_block = 0;
    size_t joined_at = (size_t)-1; /* output offset after the newline added */
    char *out;

    for (size_t i = 0; i < n; i++)
        cap += strlen(entries[i].addr) + strlen(entries[i].hostname) +
               strlen(entries[i].forward) + 32;
    out = hc_malloc(cap);
    if (out == NULL)
        return NULL;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl + 1 : end;
        int keep = 1;
        if (starts_with(p, le, BEGIN_MARK)) {
            in_block = 1;
            keep = 0;
            /* The newline we added goes back, if nothing follows the block. */
            if (has(p, le, JOINED_MARK) && o > 0 && out[o - 1] == '\n')
                joined_at = o;
        } else if (in_block) {
            if (starts_with(p, le, END_MARK)) {
                in_block = 0;
                keep = 0;
            } else if (has(p, le, ENTRY_MARK)) {
                keep = 0;
            } else {
                in_block = 0; /* a block left without END stops here */
            }
        }
        if (keep) {
            memcpy(out + o, p, (size_t)(le - p));
            o += (size_t)(le - p);
        }
        p = le;
    }
    if (joined_at == o)
        o--; /* the block was last: the user's last line had no newline */
    if (n > 0) {
        int joined = o > 0 && out[o - 1] != '\n';
        if (joined)
            out[o++] = '\n';
        o += (size_t)snprintf(out + o, cap - o,
                              BEGIN_MARK ": managed by hcmd; do not edit%s\n",
                              joined ? " " JOINED_MARK : "");
        for (size_t i = 0; i < n; i++)
            o += (size_t)snprintf(out + o, cap - o,
                                  "%s\t%s\t" ENTRY_MARK "%s\n", entries[i].addr,
                                  entries[i].hostname, entries[i].forward);
        o += (size_t)snprintf(out + o, cap - o, END_MARK "\n");
    }
    out[o] = '\0';
    *out_len = o;
    return out;
}

static int write_all(int fd, const char *p, size_t len)
{
    while (len > 0) {
        ssize_t w = write(fd, p, len);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

int hc_hosts_update(const char *name, const struct hc_hosts_entry *entries,
                    size_t n, char *err, size_t errlen)
{
    /* A symbolic link stays one: its target is what gets rewritten. */
    char real[PATH_MAX];
    const char *path = realpath(name, real) != NULL ? real : name;
    char *old = NULL, *text = NULL, tmp[PATH_MAX + 16];
    size_t len = 0, tlen;
    struct stat st;
    mode_t mode = 0644;
    int fd, rc;
    FILE *f;

    f = fopen(path, "rb");
    if (f == NULL && errno != ENOENT) {
        rc = -errno;
        snprintf(err, errlen, "%s: %s", path, strerror(-rc));
        return uv_translate_sys_error(-rc);
    }
    if (f != NULL) {
        if (fstat(fileno(f), &st) == 0)
            mode = st.st_mode & 07777;
        old = hc_malloc(HOSTS_MAX + 1);
        if (old == NULL) {
            fclose(f);
            snprintf(err, errlen, "%s: out of memory", path);
            return UV_ENOMEM;
        }
        len = fread(old, 1, HOSTS_MAX + 1, f);
        rc = ferror(f);
        fclose(f);
        if (rc || len > HOSTS_MAX) {
            hc_free(old);
            snprintf(err, errlen, "%s: %s", path,
                     rc ? "read error" : "larger than 4 MiB");
            return rc ? UV_EIO : UV_EFBIG;
        }
    }
    text = hc_hosts_rewrite(old ? old : "", len, entries, n, &tlen);
    hc_free(old);
    if (text == NULL) {
        snprintf(err, errlen, "%s: out of memory", path);
        return UV_ENOMEM;
    }
    snprintf(tmp, sizeof(tmp), "%s.hcmd-XXXXXX", path);
    fd = mkstemp(tmp);
    if (fd >= 0) {
        rc = write_all(fd, text, tlen);
        if (rc == 0 && fchmod(fd, mode) != 0)
            rc = -errno;
        if (rc == 0 && fsync(fd) != 0)
            rc = -errno;
        if (close(fd) != 0 && rc == 0)
            rc = -errno;
        if (rc == 0 && rename(tmp, path) != 0)
            rc = -errno;
        if (rc != 0)
            unlink(tmp);
        if (rc == 0) {
            hc_free(text);
            return 0;
        }
    }
    /* A bind-mounted file (containers) cannot be replaced: write in place. */
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
    if (fd < 0) {
        rc = -errno;
    } else {
        rc = write_all(fd, text, tlen);
        if (close(fd) != 0 && rc == 0)
            rc = -errno;
    }
    hc_free(text);
    if (rc != 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(-rc));
        return uv_translate_sys_error(-rc);
    }
    return 0;
}
