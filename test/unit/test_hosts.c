/*
 * test_hosts.c - hcmd's marked block in a hosts file (src/hosts.c):
 * hc_hosts_rewrite (pure text in, text out) and hc_hosts_update (the file,
 * replaced through a temporary file in the same folder).
 *
 * Run one test alone: build/test/test_hosts <name-glob>. Tests named
 * regress_* pin defects that were found and fixed. File tests work in a fresh
 * folder /tmp/hcmd-test-hosts.XXXXXX that teardown removes with all it holds.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include <cmocka.h>
#include <uv.h>

#include "hc_err.h"
#include "hc_hosts.h"
#include "hc_mem.h"

#define BEGIN_LINE "# BEGIN hcmd: managed by hcmd; do not edit\n"
#define END_LINE "# END hcmd\n"
/* The BEGIN line when hcmd had to end the user's last line. */
#define BEGIN_JOINED                                                           \
    "# BEGIN hcmd: managed by hcmd; do not edit (newline added above)\n"

/* The entries of E2 and E1 (below), as hcmd writes them. */
#define E2_LINES                                                               \
    "127.77.12.34\tsql.corp.local\t# hcmd forward db\n"                        \
    "127.77.1.2\tredis.corp.local\t# hcmd forward cache\n"
#define E1_LINES "127.77.200.9\tapi.corp.local\t# hcmd forward api\n"

/* What hcmd writes for E2 and E1. */
#define BLOCK2 BEGIN_LINE E2_LINES END_LINE
#define BLOCK1 BEGIN_LINE E1_LINES END_LINE

/* The same after a last line without its newline. */
#define BLOCK2J BEGIN_JOINED E2_LINES END_LINE
#define BLOCK1J BEGIN_JOINED E1_LINES END_LINE

static const struct hc_hosts_entry E2[] = {
    {"127.77.12.34", "sql.corp.local", "db"},
    {"127.77.1.2", "redis.corp.local", "cache"},
};

static const struct hc_hosts_entry E1[] = {
    {"127.77.200.9", "api.corp.local", "api"},
};

/* A Debian-like /etc/hosts: comments, blank and blank-looking lines. */
#define ETC_HOSTS                                                              \
    "# /etc/hosts: static lookup table for host names\n"                       \
    "127.0.0.1\tlocalhost\n"                                                   \
    "127.0.1.1\tbuildbox.corp.local\tbuildbox\n"                               \
    "\n"                                                                       \
    "# The following lines are desirable for IPv6 capable hosts\n"             \
    "::1     localhost ip6-localhost ip6-loopback\n"                           \
    "ff02::1 ip6-allnodes\n"                                                   \
    "   \n"                                                                    \
    "\t\n"                                                                     \
    "10.0.0.5   build.corp.local build   # a trailing comment\n"               \
    "#10.0.0.6 disabled.corp.local\n"                                          \
    "\n"

/* A hosts file as a Windows editor saves it, and a block it converted. */
#define CRLF_HOSTS                                                             \
    "# Windows-edited hosts\r\n"                                               \
    "127.0.0.1\tlocalhost\r\n"                                                 \
    "\r\n"                                                                     \
    "10.1.2.3 files.corp.local\r\n"
#define CRLF_BLOCK                                                             \
    "# BEGIN hcmd: managed by hcmd; do not edit\r\n"                           \
    "127.77.12.34\tsql.corp.local\t# hcmd forward db\r\n"                      \
    "# END hcmd\r\n"

/* Helpers */

/* s with \r \n \t and other control bytes visible, for messages. */
static char *show(const char *s, size_t len)
{
    char *out = malloc(len * 4 + 1), *o = out;

    assert_non_null(out);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\n')
            o += sprintf(o, "\\n");
        else if (c == '\r')
            o += sprintf(o, "\\r");
        else if (c == '\t')
            o += sprintf(o, "\\t");
        else if (c < 0x20 || c > 0x7e)
            o += sprintf(o, "\\x%02x", c);
        else
            *o++ = (char)c;
    }
    *o = '\0';
    return out;
}

/* 1 when got (glen bytes) is want (wlen bytes); else fills msg. */
static int bytes_eq(const char *got, size_t glen, const char *want, size_t wlen,
                    char *msg, size_t msglen)
{
    char *g, *w;

    if (glen == wlen && memcmp(got, want, wlen) == 0)
        return 1;
    g = show(got, glen);
    w = show(want, wlen);
    snprintf(msg, msglen, "got  (%zu bytes) \"%s\"\nwant (%zu bytes) \"%s\"",
             glen, g, wlen, w);
    free(g);
    free(w);
    return 0;
}

#define assert_bytes(got, glen, want, wlen)                                    \
    do {                                                                       \
        char msg_[8192];                                                       \
        if (!bytes_eq((got), (glen), (want), (wlen), msg_, sizeof(msg_)))      \
            fail_msg("%s", msg_);                                              \
    } while (0)

/* hc_hosts_rewrite that must succeed; the result is hc_free'd by the caller. */
static char *rw(const char *old, size_t len, const struct hc_hosts_entry *e,
                size_t n, size_t *out_len)
{
    char *out = hc_hosts_rewrite(old, len, e, n, out_len);

    assert_non_null(out);
    assert_int_equal(strlen(out), *out_len); /* NUL-terminated, no NUL in */
    return out;
}

/* rewrite(old, e, n) is exactly want. */
static void check_rewrite(const char *old, size_t len,
                          const struct hc_hosts_entry *e, size_t n,
                          const char *want, size_t wlen)
{
    char msg[8192];
    size_t olen;
    char *out = rw(old, len, e, n, &olen);
    int ok = bytes_eq(out, olen, want, wlen, msg, sizeof(msg));

    hc_free(out);
    if (!ok)
        fail_msg("%s", msg);
}

#define CHECK_RW(old, e, n, want)                                              \
    check_rewrite((old), sizeof(old) - 1, (e), (n), (want), sizeof(want) - 1)

static int count_of(const char *s, const char *what)
{
    int n = 0;

    for (const char *p = strstr(s, what); p != NULL; p = strstr(p + 1, what))
        n++;
    return n;
}

/* hc_hosts_rewrite: lines outside the block */

static void hosts_rewrite_appends_block(void **state)
{
    CHECK_RW(ETC_HOSTS, E2, 2, ETC_HOSTS BLOCK2);
    CHECK_RW(ETC_HOSTS, E1, 1, ETC_HOSTS BLOCK1);
    CHECK_RW("127.0.0.1 localhost\n", E1, 1, "127.0.0.1 localhost\n" BLOCK1);
}

static void hosts_rewrite_empty_file(void **state)
{
    size_t olen = 99;
    char *out = rw("", 0, NULL, 0, &olen);

    assert_int_equal(olen, 0);
    assert_string_equal(out, "");
    hc_free(out);
    CHECK_RW("", E2, 2, BLOCK2);
    /* old need not be NUL-terminated: only len bytes are read. */
    check_rewrite("a\nXYZ", 2, E1, 1, "a\n" BLOCK1, sizeof("a\n" BLOCK1) - 1);
}

static void hosts_rewrite_zero_entries_unchanged(void **state)
{
    /* No block and n 0: every byte stays, a missing final newline too. */
    CHECK_RW(ETC_HOSTS, NULL, 0, ETC_HOSTS);
    CHECK_RW("127.0.0.1 localhost", NULL, 0, "127.0.0.1 localhost");
    CHECK_RW("a\r\nb\r\n", NULL, 0, "a\r\nb\r\n");
    CHECK_RW("\n\n\n", NULL, 0, "\n\n\n");
}

static void hosts_rewrite_no_trailing_newline(void **state)
{
    /* The last line is ended so the block starts on a line of its own; no
     * other byte changes. */
    CHECK_RW("127.0.0.1 localhost\n10.0.0.5 build", E2, 2,
             "127.0.0.1 localhost\n10.0.0.5 build\n" BLOCK2J);
    CHECK_RW("# only a comment", E1, 1, "# only a comment\n" BLOCK1J);
    CHECK_RW("a\r\nb", E1, 1, "a\r\nb\n" BLOCK1J);
    /* Removing the block gives the missing newline back... */
    CHECK_RW("a\r\nb\n" BLOCK1J, NULL, 0, "a\r\nb");
    /* ...unless a line was added after the block: then it stays. */
    CHECK_RW("a\nb\n" BLOCK1J "c\n", NULL, 0, "a\nb\nc\n");
    CHECK_RW("a\nb\n" BLOCK1J "c\n", E1, 1, "a\nb\nc\n" BLOCK1);
}

static void hosts_rewrite_crlf_lines(void **state)
{

    CHECK_RW(CRLF_HOSTS, E2, 2, CRLF_HOSTS BLOCK2);
    /* A block an editor converted to CRLF is still recognised. */
    CHECK_RW(CRLF_HOSTS CRLF_BLOCK, E1, 1, CRLF_HOSTS BLOCK1);
    CHECK_RW(CRLF_HOSTS CRLF_BLOCK, NULL, 0, CRLF_HOSTS);
    CHECK_RW("a\r\n" BLOCK2 "b\r\n", NULL, 0, "a\r\nb\r\n");
}

static void hosts_rewrite_only_block(void **state)
{
    CHECK_RW(BLOCK2, NULL, 0, "");
    CHECK_RW(BLOCK2, E1, 1, BLOCK1);
    CHECK_RW(BLOCK2, E2, 2, BLOCK2);
    /* Without its final newline too. */
    CHECK_RW(BEGIN_LINE "127.77.1.2\tx\t# hcmd forward a\n# END hcmd", NULL, 0,
             "");
}

static void hosts_rewrite_replaces_block(void **state)
{
    size_t l1, l2, l3;
    char *once = rw(ETC_HOSTS, sizeof(ETC_HOSTS) - 1, E2, 2, &l1);
    char *twice = rw(once, l1, E1, 1, &l2);
    char *again = rw(twice, l2, E1, 1, &l3);

    assert_int_equal(count_of(twice, "# BEGIN hcmd"), 1);
    assert_int_equal(count_of(twice, "# END hcmd"), 1);
    assert_null(strstr(twice, "sql.corp.local"));
    assert_bytes(twice, l2, ETC_HOSTS BLOCK1, sizeof(ETC_HOSTS BLOCK1) - 1);
    /* The same entries again: the same bytes. */
    assert_bytes(again, l3, twice, l2);
    hc_free(once);
    hc_free(twice);
    hc_free(again);
}

static void hosts_rewrite_block_moved_to_end(void **state)
{
    /* A block in the middle (a user added lines after it): removed there,
     * the user's lines keep their order, the new block goes last. */
    CHECK_RW("a\n" BLOCK2 "b\n\n# c\n", E1, 1, "a\nb\n\n# c\n" BLOCK1);
    CHECK_RW("a\n" BLOCK2 "b\n\n# c\n", NULL, 0, "a\nb\n\n# c\n");
    CHECK_RW("a\n" BLOCK2 "b", E1, 1, "a\nb\n" BLOCK1J);
}

static void hosts_rewrite_two_blocks(void **state)
{
    /* Two blocks (two hcmds, or a bad merge): both go, one comes back. */
    CHECK_RW("a\n" BLOCK2 "b\n" BLOCK1 "c\n", E1, 1, "a\nb\nc\n" BLOCK1);
    CHECK_RW(BLOCK1 BLOCK2, NULL, 0, "");
}

static void hosts_rewrite_remove_restores(void **state)
{
    static const char *const originals[] = {
        ETC_HOSTS,
        "127.0.0.1 localhost\n",
        "# Windows-edited hosts\r\n127.0.0.1\tlocalhost\r\n\r\n",
        "\n",
        "",
        "# comment\n\n\n  # indented comment\n",
    };

    for (size_t i = 0; i < sizeof(originals) / sizeof(originals[0]); i++) {
        const char *orig = originals[i];
        size_t l1, l2, l3;
        char *added = rw(orig, strlen(orig), E2, 2, &l1);
        char *replaced = rw(added, l1, E1, 1, &l2);
        char *removed = rw(replaced, l2, NULL, 0, &l3);

        assert_bytes(removed, l3, orig, strlen(orig));
        hc_free(added);
        hc_free(replaced);
        hc_free(removed);
    }
}

/* hc_hosts_rewrite: a block a crash left without its END line */

static void hosts_rewrite_crash_without_end(void **state)
{
    static const char broken[] = "127.0.0.1 localhost\n" BEGIN_LINE
                                 "127.77.12.34\tsql.corp.local\t# hcmd "
                                 "forward db\n";

    CHECK_RW(broken, NULL, 0, "127.0.0.1 localhost\n");
    CHECK_RW(broken, E1, 1, "127.0.0.1 localhost\n" BLOCK1);
    /* Only the BEGIN line survived. */
    CHECK_RW("a\n" BEGIN_LINE, E1, 1, "a\n" BLOCK1);
    CHECK_RW("a\n# BEGIN hcmd: managed by hcmd", NULL, 0, "a\n");
    /* The last entry without its newline. */
    CHECK_RW("a\n" BEGIN_LINE "127.77.1.2\tx\t# hcmd forward a", NULL, 0,
             "a\n");
}

static void hosts_rewrite_crash_user_line_after(void **state)
{
    /* The broken block ends at the first line that is not an entry. */
    CHECK_RW("a\n" BEGIN_LINE "127.77.1.2\tx.local\t# hcmd forward x\n"
             "10.0.0.7 user.corp.local\n"
             "\n"
             "# user comment\n",
             E1, 1, "a\n10.0.0.7 user.corp.local\n\n# user comment\n" BLOCK1);
    CHECK_RW("a\n" BEGIN_LINE "127.77.1.2\tx.local\t# hcmd forward x\n"
             "10.0.0.7 user.corp.local\n",
             NULL, 0, "a\n10.0.0.7 user.corp.local\n");
    /* A blank line right after is the user's too. */
    CHECK_RW(BEGIN_LINE "\n10.0.0.1 x\n", NULL, 0, "\n10.0.0.1 x\n");
    /* Repaired once, the next update leaves the user's lines alone. */
    {
        static const char broken[] =
            "a\n" BEGIN_LINE "127.77.1.2\tx\t# hcmd forward x\n"
            "b\n";
        size_t l1, l2;
        char *r1 = rw(broken, sizeof(broken) - 1, E2, 2, &l1);
        char *r2 = rw(r1, l1, E2, 2, &l2);

        assert_bytes(r1, l1, "a\nb\n" BLOCK2, sizeof("a\nb\n" BLOCK2) - 1);
        assert_bytes(r2, l2, r1, l1);
        hc_free(r1);
        hc_free(r2);
    }
}

static void hosts_rewrite_lookalike_lines_kept(void **state)
{
    /* Only lines that start with the marks are hcmd's. */
#define LOOKALIKE                                                              \
    "  # BEGIN hcmd: indented, a user's line\n"                                \
    "#BEGIN hcmd\n"                                                            \
    "# begin hcmd\n"                                                           \
    "10.0.0.1 a.local # hcmd forward x\n"                                      \
    "# END hcmd\n"                                                             \
    "# hcmd forward y\n"

    CHECK_RW(LOOKALIKE, NULL, 0, LOOKALIKE);
    CHECK_RW(LOOKALIKE, E1, 1, LOOKALIKE BLOCK1);
}

/* Every allocation of hc_hosts_rewrite fails in turn. */
static void hosts_rewrite_oom(void **state)
{
    static const char old[] = "a\n" BLOCK2 "b\n";
    size_t olen, wlen;
    char *want = rw(old, sizeof(old) - 1, E2, 2, &wlen), *out = NULL;
    long i, used = 0;

    for (i = 0;; i++) {
        olen = 12345;
        hc_mem_fail_after(i);
        out = hc_hosts_rewrite(old, sizeof(old) - 1, E2, 2, &olen);
        used = hc_mem_fail_after(-1);
        if (out != NULL)
            break;
        assert_true(i < used);
    }
    assert_true(i >= used);
    assert_true(i > 0);
    assert_bytes(out, olen, want, wlen);
    hc_free(out);
    hc_free(want);
}

/*
 * Defect: a file whose last line has no newline does not come back byte for
 * byte. Adding the block ends that line with '\n' (needed), but removing the
 * block leaves the '\n' there, so "add on start, remove on stop" changes a
 * line outside the block.
 */
static void regress_hosts_roundtrip_no_trailing_newline(void **state)
{
    static const char orig[] = "127.0.0.1 localhost\n10.0.0.5 build";
    size_t l1, l2;
    char *added = rw(orig, sizeof(orig) - 1, E1, 1, &l1);
    char *removed = rw(added, l1, NULL, 0, &l2);
    char msg[8192];
    int ok = bytes_eq(removed, l2, orig, sizeof(orig) - 1, msg, sizeof(msg));

    hc_free(added);
    hc_free(removed);
    if (!ok)
        fail_msg("add then remove changed the file:\n%s", msg);
}

/* hc_hosts_update: the file */

struct dir {
    char dir[64];
    char path[128]; /* dir/hosts */
};

static int dir_setup(void **state)
{
    struct dir *d = calloc(1, sizeof(*d));

    if (d == NULL)
        return -1;
    snprintf(d->dir, sizeof(d->dir), "/tmp/hcmd-test-hosts.XXXXXX");
    if (mkdtemp(d->dir) == NULL) {
        free(d);
        return -1;
    }
    snprintf(d->path, sizeof(d->path), "%s/hosts", d->dir);
    *state = d;
    return 0;
}

/* Remove dir and everything in it (one level of subfolders). */
static void rm_tree(const char *dir)
{
    DIR *dh = opendir(dir);
    struct dirent *de;

    if (dh == NULL)
        return;
    while ((de = readdir(dh)) != NULL) {
        char p[512];
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
        if (unlink(p) != 0 && (errno == EISDIR || errno == EPERM))
            rm_tree(p);
    }
    closedir(dh);
    rmdir(dir);
}

static int dir_teardown(void **state)
{
    struct dir *d = *state;

    hc_mem_fail_after(-1);
    rm_tree(d->dir);
    free(d);
    return 0;
}

static void write_file(const char *path, const char *data, size_t len)
{
    FILE *f = fopen(path, "wb");

    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

/* The whole file, malloc'd and NUL-terminated. */
static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = malloc(1 << 20);

    assert_non_null(f);
    assert_non_null(buf);
    *len = fread(buf, 1, (1 << 20) - 1, f);
    assert_int_equal(ferror(f), 0);
    fclose(f);
    buf[*len] = '\0';
    return buf;
}

/* The file at path holds exactly want. */
static void check_file(const char *path, const char *want, size_t wlen)
{
    char msg[8192];
    size_t len;
    char *got = read_file(path, &len);
    int ok = bytes_eq(got, len, want, wlen, msg, sizeof(msg));

    free(got);
    if (!ok)
        fail_msg("%s:\n%s", path, msg);
}

#define CHECK_FILE(path, want) check_file((path), (want), sizeof(want) - 1)

/* The folder's entries, sorted, comma-separated: what is left behind. */
static void list_dir(const char *dir, char *out, size_t cap)
{
    struct dirent **names;
    int n = scandir(dir, &names, NULL, alphasort);

    assert_true(n >= 0);
    out[0] = '\0';
    for (int i = 0; i < n; i++) {
        if (strcmp(names[i]->d_name, ".") != 0 &&
            strcmp(names[i]->d_name, "..") != 0) {
            if (out[0] != '\0')
                strncat(out, ",", cap - strlen(out) - 1);
            strncat(out, names[i]->d_name, cap - strlen(out) - 1);
        }
        free(names[i]);
    }
    free(names);
}

#define assert_dir(dir, want)                                                  \
    do {                                                                       \
        char list_[1024];                                                      \
        list_dir((dir), list_, sizeof(list_));                                 \
        if (strcmp(list_, (want)) != 0)                                        \
            fail_msg("folder %s holds \"%s\", want \"%s\"", (dir), list_,      \
                     (want));                                                  \
    } while (0)

static unsigned mode_of(const char *path)
{
    struct stat st;

    assert_int_equal(stat(path, &st), 0);
    return (unsigned)(st.st_mode & 07777);
}

static void update_ok(const char *path, const struct hc_hosts_entry *e,
                      size_t n)
{
    char err[256] = "";
    int rc = hc_hosts_update(path, e, n, err, sizeof(err));

    if (rc != 0)
        fail_msg("hc_hosts_update(%s, %zu entries): %d (%s)", path, n, rc, err);
}

static void hosts_update_add_then_remove(void **state)
{
    const struct dir *d = *state;

    write_file(d->path, ETC_HOSTS, sizeof(ETC_HOSTS) - 1);
    update_ok(d->path, E2, 2);
    CHECK_FILE(d->path, ETC_HOSTS BLOCK2);
    assert_dir(d->dir, "hosts");
    update_ok(d->path, NULL, 0);
    CHECK_FILE(d->path, ETC_HOSTS);
    assert_dir(d->dir, "hosts");
    /* Removing again changes nothing. */
    update_ok(d->path, NULL, 0);
    CHECK_FILE(d->path, ETC_HOSTS);
    assert_dir(d->dir, "hosts");
}

static void hosts_update_second_update_replaces(void **state)
{
    const struct dir *d = *state;

    write_file(d->path, ETC_HOSTS, sizeof(ETC_HOSTS) - 1);
    update_ok(d->path, E2, 2);
    update_ok(d->path, E1, 1);
    CHECK_FILE(d->path, ETC_HOSTS BLOCK1);
    update_ok(d->path, E1, 1);
    CHECK_FILE(d->path, ETC_HOSTS BLOCK1);
    update_ok(d->path, NULL, 0);
    CHECK_FILE(d->path, ETC_HOSTS);
    assert_dir(d->dir, "hosts");
}

static void hosts_update_crlf_no_trailing_newline(void **state)
{
    const struct dir *d = *state;

    /* CRLF lines stay as they are; only the last line gets its end. */
    write_file(d->path, "a\r\n\r\n# c\r\nb", 11);
    update_ok(d->path, E1, 1);
    CHECK_FILE(d->path, "a\r\n\r\n# c\r\nb\n" BLOCK1J);
    update_ok(d->path, E2, 2);
    CHECK_FILE(d->path, "a\r\n\r\n# c\r\nb\n" BLOCK2J);
    update_ok(d->path, NULL, 0);
    CHECK_FILE(d->path, "a\r\n\r\n# c\r\nb");
    assert_dir(d->dir, "hosts");

    /* A CRLF file comes back byte for byte. */
    write_file(d->path, CRLF_HOSTS, sizeof(CRLF_HOSTS) - 1);
    update_ok(d->path, E2, 2);
    CHECK_FILE(d->path, CRLF_HOSTS BLOCK2);
    update_ok(d->path, NULL, 0);
    CHECK_FILE(d->path, CRLF_HOSTS);
    assert_dir(d->dir, "hosts");
}

static void hosts_update_only_block(void **state)
{
    const struct dir *d = *state;

    write_file(d->path, BLOCK2, sizeof(BLOCK2) - 1);
    update_ok(d->path, NULL, 0);
    CHECK_FILE(d->path, "");
    update_ok(d->path, E2, 2);
    CHECK_FILE(d->path, BLOCK2);
    assert_dir(d->dir, "hosts");
}

static void hosts_update_keeps_mode(void **state)
{
    const struct dir *d = *state;

    write_file(d->path, ETC_HOSTS, sizeof(ETC_HOSTS) - 1);
    assert_int_equal(chmod(d->path, 0640), 0);
    update_ok(d->path, E2, 2);
    assert_int_equal(mode_of(d->path), 0640);
    CHECK_FILE(d->path, ETC_HOSTS BLOCK2);
    update_ok(d->path, NULL, 0);
    assert_int_equal(mode_of(d->path), 0640);
    assert_int_equal(chmod(d->path, 0600), 0);
    update_ok(d->path, E1, 1);
    assert_int_equal(mode_of(d->path), 0600);
    assert_dir(d->dir, "hosts");
}

static void hosts_update_creates_missing(void **state)
{
    const struct dir *d = *state;
    mode_t old_mask = umask(077); /* 0644 whatever the umask */

    update_ok(d->path, E1, 1);
    umask(old_mask);
    CHECK_FILE(d->path, BLOCK1);
    assert_int_equal(mode_of(d->path), 0644);
    assert_dir(d->dir, "hosts");
}

static void hosts_update_missing_directory(void **state)
{
    const struct dir *d = *state;
    char path[256], err[256], small[16];
    int rc;

    snprintf(path, sizeof(path), "%s/no-such-dir/hosts", d->dir);
    memset(err, 0, sizeof(err));
    rc = hc_hosts_update(path, E1, 1, err, sizeof(err));
    assert_int_equal(rc, UV_ENOENT);
    assert_true(err[0] != '\0');
    assert_non_null(strstr(err, path));
    assert_null(strchr(err, '\n'));
    assert_dir(d->dir, "");

    /* n 0 fails the same way; a short buffer is cut, still terminated. */
    memset(small, 'x', sizeof(small));
    rc = hc_hosts_update(path, NULL, 0, small, sizeof(small));
    assert_int_equal(rc, UV_ENOENT);
    assert_int_equal(strlen(small), sizeof(small) - 1);
    assert_dir(d->dir, "");
}

static void hosts_update_path_is_directory(void **state)
{
    const struct dir *d = *state;
    char err[256] = "";
    int rc;

    assert_int_equal(mkdir(d->path, 0755), 0);
    rc = hc_hosts_update(d->path, E1, 1, err, sizeof(err));
    assert_true(rc < 0);
    assert_true(err[0] != '\0');
    assert_non_null(strstr(err, d->path));
    assert_dir(d->dir, "hosts");
}

static void hosts_update_repairs_crash(void **state)
{
    const struct dir *d = *state;

    write_file(d->path,
               "127.0.0.1 localhost\n" BEGIN_LINE
               "127.77.1.2\tx.local\t# hcmd forward x\n"
               "10.0.0.7 user.corp.local\n",
               sizeof("127.0.0.1 localhost\n" BEGIN_LINE
                      "127.77.1.2\tx.local\t# hcmd forward x\n"
                      "10.0.0.7 user.corp.local\n") -
                   1);
    update_ok(d->path, E2, 2);
    CHECK_FILE(d->path,
               "127.0.0.1 localhost\n10.0.0.7 user.corp.local\n" BLOCK2);
    update_ok(d->path, NULL, 0);
    CHECK_FILE(d->path, "127.0.0.1 localhost\n10.0.0.7 user.corp.local\n");
    assert_dir(d->dir, "hosts");
}

static void hosts_update_too_large(void **state)
{
    const struct dir *d = *state;
    size_t big = 4 * 1024 * 1024 + 1;
    char *data = malloc(big), err[256] = "";
    struct stat before, after;

    assert_non_null(data);
    memset(data, '#', big);
    for (size_t i = 79; i < big; i += 80)
        data[i] = '\n';
    write_file(d->path, data, big);
    free(data);
    assert_int_equal(stat(d->path, &before), 0);
    assert_int_equal(hc_hosts_update(d->path, E1, 1, err, sizeof(err)),
                     UV_EFBIG);
    assert_non_null(strstr(err, "4 MiB"));
    assert_int_equal(stat(d->path, &after), 0);
    assert_int_equal(after.st_size, before.st_size);
    assert_int_equal(after.st_ino, before.st_ino);
    assert_dir(d->dir, "hosts");
}

/* Every allocation of hc_hosts_update fails in turn: file untouched. */
static void hosts_update_oom(void **state)
{
    const struct dir *d = *state;
    char err[256];
    long i, used = 0;
    int rc;

    write_file(d->path, ETC_HOSTS, sizeof(ETC_HOSTS) - 1);
    for (i = 0;; i++) {
        err[0] = '\0';
        hc_mem_fail_after(i);
        rc = hc_hosts_update(d->path, E2, 2, err, sizeof(err));
        used = hc_mem_fail_after(-1);
        if (rc == 0)
            break;
        assert_int_equal(rc, UV_ENOMEM);
        assert_non_null(strstr(err, "out of memory"));
        assert_true(i < used);
        CHECK_FILE(d->path, ETC_HOSTS);
        assert_dir(d->dir, "hosts");
    }
    assert_true(i >= used);
    assert_true(i >= 2); /* the old text and the new */
    CHECK_FILE(d->path, ETC_HOSTS BLOCK2);
    assert_dir(d->dir, "hosts");
}

/*
 * Defect: a hosts file that is a symbolic link (/etc/hosts -> elsewhere,
 * as some systems keep it) is replaced by a regular file: rename() swaps
 * the link itself, so the link is gone and its target never sees the block.
 */
static void regress_hosts_update_replaces_symlink(void **state)
{
    const struct dir *d = *state;
    char target[160], msg[256] = "";
    size_t len;
    char *got;
    struct stat st;

    snprintf(target, sizeof(target), "%s/real-hosts", d->dir);
    write_file(target, "127.0.0.1 localhost\n", 20);
    assert_int_equal(symlink("real-hosts", d->path), 0);
    update_ok(d->path, E1, 1);
    assert_int_equal(lstat(d->path, &st), 0);
    got = read_file(target, &len);
    if (!S_ISLNK(st.st_mode))
        snprintf(msg, sizeof(msg),
                 "%s is no longer a symbolic link; its target holds %zu "
                 "bytes, without the block",
                 d->path, len);
    else if (strstr(got, "# BEGIN hcmd") == NULL)
        snprintf(msg, sizeof(msg), "the link's target has no block");
    free(got);
    if (msg[0] != '\0')
        fail_msg("%s", msg);
}

int main(int argc, char **argv)
{
#define DIR_TEST(f) cmocka_unit_test_setup_teardown(f, dir_setup, dir_teardown)
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(hosts_rewrite_appends_block),
        cmocka_unit_test(hosts_rewrite_empty_file),
        cmocka_unit_test(hosts_rewrite_zero_entries_unchanged),
        cmocka_unit_test(hosts_rewrite_no_trailing_newline),
        cmocka_unit_test(hosts_rewrite_crlf_lines),
        cmocka_unit_test(hosts_rewrite_only_block),
        cmocka_unit_test(hosts_rewrite_replaces_block),
        cmocka_unit_test(hosts_rewrite_block_moved_to_end),
        cmocka_unit_test(hosts_rewrite_two_blocks),
        cmocka_unit_test(hosts_rewrite_remove_restores),
        cmocka_unit_test(hosts_rewrite_crash_without_end),
        cmocka_unit_test(hosts_rewrite_crash_user_line_after),
        cmocka_unit_test(hosts_rewrite_lookalike_lines_kept),
        cmocka_unit_test(hosts_rewrite_oom),
        cmocka_unit_test(regress_hosts_roundtrip_no_trailing_newline),
        DIR_TEST(hosts_update_add_then_remove),
        DIR_TEST(hosts_update_second_update_replaces),
        DIR_TEST(hosts_update_crlf_no_trailing_newline),
        DIR_TEST(hosts_update_only_block),
        DIR_TEST(hosts_update_keeps_mode),
        DIR_TEST(hosts_update_creates_missing),
        DIR_TEST(hosts_update_missing_directory),
        DIR_TEST(hosts_update_path_is_directory),
        DIR_TEST(hosts_update_repairs_crash),
        DIR_TEST(hosts_update_too_large),
        DIR_TEST(hosts_update_oom),
        DIR_TEST(regress_hosts_update_replaces_symlink),
    };
#undef DIR_TEST

    if (argc > 1)
        cmocka_set_test_filter(argv[1]);
    return cmocka_run_group_tests_name("hosts", tests, NULL, NULL);
}
