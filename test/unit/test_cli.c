/*
 * test_cli.c - hcmd's add, remove, list and show (src/cli.c) through
 * hc_cli_main, on files in a temporary folder and with no daemon (every
 * file names a control_socket nobody listens on). The editing rules: what
 * remove takes (a section, its comments, the comment block set apart above
 * it), that add + remove gives the file back byte for byte (LF, CRLF, no
 * final newline, a BOM), and that every refusal leaves the file untouched
 * and prints one line without the key.
 *
 * Run one test alone: build/test/test_cli <name-glob>. The sample tests read
 * conf/hcm.ini relative to the current directory (the repository root, as
 * test/run.sh runs it) or to $HCMD_SRCDIR.
 */
#include <dirent.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "hc_cli.h"

#define KEY "SeCrEtKeY7q2Wv9Zx4Lm1Np8Rt5Yb3Hd6Jf0Gk2Cs9Ue="
#define KEY_PART "SeCrEtKeY7q2"
#define CS_BASE                                                                \
    "Endpoint=sb://relay.example.net/;SharedAccessKeyName=listen"              \
    ";SharedAccessKey=" KEY
#define CS(entity) CS_BASE ";EntityPath=" entity

struct ctx {
    char dir[64];
    char ini[128];
    char sock[128];
    char *out, *err; /* what the last command printed */
    int rc;
};

static int setup(void **state)
{
    struct ctx *c = calloc(1, sizeof(*c));

    if (c == NULL)
        return -1;
    snprintf(c->dir, sizeof(c->dir), "/tmp/hcmd-test-cli.XXXXXX");
    if (mkdtemp(c->dir) == NULL) {
        free(c);
        return -1;
    }
    snprintf(c->ini, sizeof(c->ini), "%s/hcm.ini", c->dir);
    snprintf(c->sock, sizeof(c->sock), "%s/no.sock", c->dir);
    *state = c;
    return 0;
}

/* Remove dir and what is in it (one level of subfolders). */
static void rm_tree(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char p[512];

    if (d == NULL)
        return;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
        if (unlink(p) != 0)
            rm_tree(p);
    }
    closedir(d);
    rmdir(dir);
}

static int teardown(void **state)
{
    struct ctx *c = *state;

    rm_tree(c->dir);
    free(c->out);
    free(c->err);
    free(c);
    return 0;
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf;
    size_t n;

    if (f == NULL)
        return NULL;
    buf = malloc(2 * 1024 * 1024);
    assert_non_null(buf);
    n = fread(buf, 1, 2 * 1024 * 1024 - 1, f);
    fclose(f);
    buf[n] = '\0';
    if (len != NULL)
        *len = n;
    return buf;
}

static void spit(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");

    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, strlen(text), f), strlen(text));
    assert_int_equal(fclose(f), 0);
}

/*
 * Run "hcmd ARGS... -c INI" (NULL-terminated; "-c INI" is added unless
 * noconf) with stdin from in (NULL: empty), keeping stdout and stderr in
 * c->out and c->err. Returns the exit code.
 */
static int run_v(struct ctx *c, const char *in, int noconf, va_list ap)
{
    char *argv[32], outp[160], errp[160], inp[160];
    const char *a;
    int argc = 0, so, se, si, fd;

    argv[argc++] = strdup("hcmd");
    while ((a = va_arg(ap, const char *)) != NULL && argc < 28)
        argv[argc++] = strdup(a);
    if (!noconf) {
        argv[argc++] = strdup("-c");
        argv[argc++] = strdup(c->ini);
    }
    argv[argc] = NULL;
    snprintf(outp, sizeof(outp), "%s.out", c->dir);
    snprintf(errp, sizeof(errp), "%s.err", c->dir);
    snprintf(inp, sizeof(inp), "%s.in", c->dir);
    spit(inp, in ? in : "");
    fflush(stdout);
    fflush(stderr);
    so = dup(1);
    se = dup(2);
    si = dup(0);
    fd = open(outp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    dup2(fd, 1);
    close(fd);
    fd = open(errp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    dup2(fd, 2);
    close(fd);
    fd = open(inp, O_RDONLY);
    dup2(fd, 0);
    close(fd);
    clearerr(stdin);
    c->rc = hc_cli_main(argc, argv);
    fflush(stdout);
    fflush(stderr);
    dup2(so, 1);
    dup2(se, 2);
    dup2(si, 0);
    close(so);
    close(se);
    close(si);
    clearerr(stdin);
    for (int i = 0; i < argc; i++)
        free(argv[i]);
    free(c->out);
    free(c->err);
    c->out = slurp(outp, NULL);
    c->err = slurp(errp, NULL);
    unlink(outp);
    unlink(errp);
    unlink(inp);
    assert_non_null(c->out);
    assert_non_null(c->err);
    return c->rc;
}

static int run(struct ctx *c, ...)
{
    va_list ap;
    int rc;

    va_start(ap, c);
    rc = run_v(c, NULL, 0, ap);
    va_end(ap);
    return rc;
}

static int run_in(struct ctx *c, const char *in, ...)
{
    va_list ap;
    int rc;

    va_start(ap, in);
    rc = run_v(c, in, 0, ap);
    va_end(ap);
    return rc;
}

static int run_noconf(struct ctx *c, ...)
{
    va_list ap;
    int rc;

    va_start(ap, c);
    rc = run_v(c, NULL, 1, ap);
    va_end(ap);
    return rc;
}

#define assert_ok(c)                                                           \
    do {                                                                       \
        if ((c)->rc != 0)                                                      \
            fail_msg("exit %d\nstdout: %s\nstderr: %s", (c)->rc, (c)->out,     \
                     (c)->err);                                                \
    } while (0)

#define assert_has(hay, needle)                                                \
    do {                                                                       \
        if (strstr((hay), (needle)) == NULL)                                   \
            fail_msg("no \"%s\" in:\n%s", (needle), (hay));                    \
    } while (0)

/* Refused: exit non-zero, one stderr line "hcmd: ...what...", no key. */
static void assert_refused(const struct ctx *c, const char *what)
{
    const char *nl = strchr(c->err, '\n');

    if (c->rc == 0)
        fail_msg("expected a failure, got exit 0\nstdout: %s", c->out);
    if (strncmp(c->err, "hcmd: ", 6) != 0 || nl == NULL || nl[1] != '\0')
        fail_msg("expected one line \"hcmd: ...\" on stderr, got:\n%s", c->err);
    if (strstr(c->err, what) == NULL)
        fail_msg("no \"%s\" in: %s", what, c->err);
    if (strstr(c->err, KEY_PART) != NULL || strstr(c->out, KEY_PART) != NULL)
        fail_msg("the key was printed:\n%s%s", c->out, c->err);
}

static void assert_file(const struct ctx *c, const char *want)
{
    char *got = slurp(c->ini, NULL);

    assert_non_null(got);
    if (strcmp(got, want) != 0)
        fail_msg("file differs\n--- want ---\n%s--- got ---\n%s", want, got);
    free(got);
}

/* Only the configuration file is left in the folder: no temporary file. */
static void assert_no_stray(const struct ctx *c)
{
    DIR *d = opendir(c->dir);
    struct dirent *e;

    assert_non_null(d);
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] == '.' && strcmp(e->d_name, ".") != 0 &&
            strcmp(e->d_name, "..") != 0)
            fail_msg("stray file %s in %s", e->d_name, c->dir);
    closedir(d);
}

/* "[hcmd]\ncontrol_socket = SOCK\n" in the line end eol. */
static void hcmd_section(const struct ctx *c, char *out, size_t cap,
                         const char *eol)
{
    snprintf(out, cap, "[hcmd]%scontrol_socket = %s%s", eol, c->sock, eol);
}

/* conf/hcm.ini with control_socket set in [hcmd]. */
static char *sample(const struct ctx *c)
{
    const char *src = getenv("HCMD_SRCDIR");
    char path[512], line[200], *text, *out, *at;

    snprintf(path, sizeof(path), "%s/conf/hcm.ini", src ? src : ".");
    text = slurp(path, NULL);
    if (text == NULL)
        fail_msg("cannot read %s (run from the repository root or set "
                 "HCMD_SRCDIR)",
                 path);
    at = strstr(text, "[hcmd]\n");
    assert_non_null(at);
    at += strlen("[hcmd]\n");
    snprintf(line, sizeof(line), "control_socket = %s\n", c->sock);
    out = malloc(strlen(text) + strlen(line) + 1);
    assert_non_null(out);
    memcpy(out, text, (size_t)(at - text));
    strcpy(out + (at - text), line);
    strcat(out, at);
    free(text);
    return out;
}

/* text without the bytes from the first `from` up to the first `to` after
 * it (to NULL: the end); malloc'd. */
static char *cut(const char *text, const char *from, const char *to)
{
    const char *a = strstr(text, from), *b;
    char *out;

    if (a == NULL)
        fail_msg("no \"%s\" in the text", from);
    b = to ? strstr(a, to) : a + strlen(a);
    if (b == NULL)
        fail_msg("no \"%s\" in the text", to);
    out = malloc(strlen(text) + 1);
    assert_non_null(out);
    memcpy(out, text, (size_t)(a - text));
    strcpy(out + (a - text), b);
    return out;
}

/* Tests */

static void cli_is_command(void **state)
{
    (void)state;
    assert_true(hc_cli_is_command("list"));
    assert_true(hc_cli_is_command("show"));
    assert_true(hc_cli_is_command("add"));
    assert_true(hc_cli_is_command("remove"));
    assert_false(hc_cli_is_command("test"));
    assert_false(hc_cli_is_command("version"));
    assert_false(hc_cli_is_command("List"));
    assert_false(hc_cli_is_command("-c"));
    assert_false(hc_cli_is_command(""));
    assert_false(hc_cli_is_command(NULL));
}

static void cli_help(void **state)
{
    struct ctx *c = *state;
    static const char *const cmds[] = {"list", "show", "add", "remove"};

    for (size_t i = 0; i < 4; i++) {
        char want[64];
        run_noconf(c, cmds[i], "--help", NULL);
        assert_ok(c);
        snprintf(want, sizeof(want), "usage: hcmd %s", cmds[i]);
        assert_int_equal(strncmp(c->out, want, strlen(want)), 0);
        assert_string_equal(c->err, "");
    }
}

/* add appends a blank line and the section; remove gives the file back. */
static void cli_add_remove_sample_identical(void **state)
{
    struct ctx *c = *state;
    char *s = sample(c), *want;
    const char *tail = "\n[connection n1]\nconnection_string = " CS(
        "n1") "\nendpoint = db.corp.local:1433\n";

    spit(c->ini, s);
    run(c, "add", "--connection-string", CS("n1"), "--endpoint",
        "db.corp.local:1433", NULL);
    assert_ok(c);
    assert_has(c->out, "added [connection n1] to ");
    assert_has(c->out, "hcmd is not running (no answer on ");
    assert_has(c->out, "the change applies at next start");
    assert_null(strstr(c->out, KEY_PART));
    want = malloc(strlen(s) + strlen(tail) + 1);
    assert_non_null(want);
    strcpy(want, s);
    strcat(want, tail);
    assert_file(c, want);
    run(c, "remove", "n1", NULL);
    assert_ok(c);
    assert_has(c->out, "removed [connection n1] from ");
    assert_file(c, s);
    assert_no_stray(c);
    free(want);
    free(s);
}

/* A section takes the comment block a blank line sets apart above it. */
static void cli_remove_takes_doc_block(void **state)
{
    struct ctx *c = *state;
    char *s = sample(c), *want;

    spit(c->ini, s);
    run(c, "remove", "db", NULL);
    assert_ok(c);
    want = cut(s, "; One hybrid connection this agent listens on",
               "; One hybrid connection this agent SENDS");
    assert_file(c, want);
    free(want);
    /* The last section also takes the blank line before it. */
    spit(c->ini, s);
    run(c, "remove", "db-client", NULL);
    assert_ok(c);
    assert_has(c->out, "removed [forward db-client] from ");
    want = cut(s, "\n; One hybrid connection this agent SENDS", NULL);
    assert_file(c, want);
    free(want);
    free(s);
}

/* Comments right after a key belong to that section, not the next. */
static void cli_remove_attached_comments(void **state)
{
    struct ctx *c = *state;
    char h[256], text[2048], want[4096];

    hcmd_section(c, h, sizeof(h), "\n");
    snprintf(text, sizeof(text),
             "%s; about a, glued to [hcmd]\n"
             "[connection a]\n"
             "connection_string = " CS("a") "\n"
                                            "; endpoint = x:1\n"
                                            "[connection b]\n"
                                            "connection_string = " CS("b") "\n",
             h);
    snprintf(want, sizeof(want),
             "%s; about a, glued to [hcmd]\n"
             "[connection b]\n"
             "connection_string = " CS("b") "\n",
             h);
    spit(c->ini, text);
    run(c, "remove", "a", NULL);
    assert_ok(c);
    assert_file(c, want);
}

/* A comment block at the top of the file belongs to the file. */
static void cli_remove_keeps_file_header(void **state)
{
    struct ctx *c = *state;
    char h[256], text[2048], want[4096];

    hcmd_section(c, h, sizeof(h), "\n");
    snprintf(text, sizeof(text),
             "; the file's own header\n"
             "[connection a]\n"
             "connection_string = " CS("a") "\n\n"
                                            "[forward b]\n"
                                            "connection_string = " CS(
                                                "b") "\n"
                                                     "bind = 127.0.0.1:1\n\n%s",
             h);
    spit(c->ini, text);
    run(c, "remove", "a", NULL);
    assert_ok(c);
    snprintf(want, sizeof(want),
             "; the file's own header\n"
             "[forward b]\n"
             "connection_string = " CS("b") "\n"
                                            "bind = 127.0.0.1:1\n\n%s",
             h);
    assert_file(c, want);
}

static void cli_crlf(void **state)
{
    struct ctx *c = *state;
    char h[256], text[2048], want[4096];

    hcmd_section(c, h, sizeof(h), "\r\n");
    snprintf(
        text, sizeof(text),
        "; CRLF\r\n%s\r\n[connection a]\r\nconnection_string = " CS("a") "\r\n",
        h);
    spit(c->ini, text);
    run(c, "add", "--connection-string", CS("b"), "--endpoint", "h:1", NULL);
    assert_ok(c);
    snprintf(want, sizeof(want),
             "%s\r\n[connection b]\r\nconnection_string = " CS(
                 "b") "\r\nendpoint = h:1\r\n",
             text);
    assert_file(c, want);
    run(c, "remove", "b", NULL);
    assert_ok(c);
    assert_file(c, text);
}

/* A last line without a line end gets one; then add + remove is exact. */
static void cli_no_final_newline(void **state)
{
    struct ctx *c = *state;
    char h[256], text[2048], want[4096];

    hcmd_section(c, h, sizeof(h), "\n");
    snprintf(text, sizeof(text),
             "%s[connection a]\nconnection_string = " CS("a"), h);
    spit(c->ini, text);
    run(c, "add", "--connection-string", CS("b"), NULL);
    assert_ok(c);
    assert_has(c->out, "endpoint from the user metadata");
    snprintf(want, sizeof(want),
             "%s\n\n[connection b]\nconnection_string = " CS("b") "\n", text);
    assert_file(c, want);
    run(c, "remove", "b", NULL);
    assert_ok(c);
    snprintf(want, sizeof(want), "%s\n", text);
    assert_file(c, want);
}

static void cli_bom(void **state)
{
    struct ctx *c = *state;
    char h[256], text[2048];

    hcmd_section(c, h, sizeof(h), "\n");
    snprintf(
        text, sizeof(text),
        "\xEF\xBB\xBF%s\n[connection a]\nconnection_string = " CS("a") "\n", h);
    spit(c->ini, text);
    run(c, "add", "--connection-string", CS("b"), NULL);
    assert_ok(c);
    run(c, "remove", "b", NULL);
    assert_ok(c);
    assert_file(c, text);
}

static void cli_refusals(void **state)
{
    struct ctx *c = *state;
    char h[256], text[2048];
    struct stat before, after;
    static const struct {
        const char *args[8];
        const char *what;
    } cases[] = {
        {{"add", "--connection-string", CS("a")}, "the name a is already used"},
        {{"add", "--connection-string", CS("x"), "--name", "f"},
         "already used by [forward f]"},
        {{"add", "--connection-string", CS_BASE}, "no EntityPath"},
        {{"add", "--connection-string", "Endpoint=sb://h/;EntityPath=x"},
         "no SharedAccessKeyName"},
        {{"add", "--connection-string", CS_BASE ";EntityPath=x;Nope=1"},
         "bad connection string"},
        {{"add", "--connection-string", CS_BASE " ;EntityPath=x"},
         "a space before ';'"},
        {{"add", "--connection-string", CS_BASE ";EntityPath=x\n[hcmd]"},
         "control character"},
        {{"add", "--connection-string", ";" CS("x")}, "starts with ';'"},
        {{"add", "--connection-string",
          "Endpoint=sb://h/;Authentication=Managed Identity;EntityPath=x"},
         "Managed Identity"},
        {{"add", "--connection-string", "  "}, "is empty"},
        {{"add", "--connection-string", CS("x"), "--endpoint", "nohost"},
         "--endpoint 'nohost'"},
        {{"add", "--connection-string", CS("x"), "--endpoint", "h:0"},
         "expected HOST:PORT"},
        {{"add", "--connection-string", CS("x"), "--endpoint", "h:65536"},
         "expected HOST:PORT"},
        {{"add", "--connection-string", CS("x"), "--name", "a b"},
         "--name 'a b'"},
        {{"remove", "zz"}, "no [connection zz] or [forward zz]"},
        {{"show", "zz"}, "no [connection zz] or [forward zz]"},
        {{"remove", "hcmd"}, "no [connection hcmd]"},
    };

    hcmd_section(c, h, sizeof(h), "\n");
    snprintf(text, sizeof(text),
             "%s\n[connection a]\nconnection_string = " CS(
                 "a") "\n\n"
                      "[forward f]\nconnection_string = " CS(
                          "f") "\n"
                               "bind = 127.0.0.1:1\n",
             h);
    spit(c->ini, text);
    assert_int_equal(stat(c->ini, &before), 0);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *const *a = cases[i].args;
        run(c, a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7]);
        assert_refused(c, cases[i].what);
    }
    assert_file(c, text);
    assert_int_equal(stat(c->ini, &after), 0);
    assert_int_equal(before.st_ino, after.st_ino);
    assert_no_stray(c);
}

/* Removing the only connection would leave hcmd nothing to do. */
static void cli_remove_last_refused(void **state)
{
    struct ctx *c = *state;
    char h[256], text[2048];

    hcmd_section(c, h, sizeof(h), "\n");
    snprintf(text, sizeof(text),
             "%s\n[connection a]\nconnection_string = " CS("a") "\n", h);
    spit(c->ini, text);
    run(c, "remove", "a", NULL);
    assert_refused(c, "only connection");
    assert_file(c, text);
}

static void cli_name_from_entity(void **state)
{
    struct ctx *c = *state;
    char h[256], *got;

    hcmd_section(c, h, sizeof(h), "\n");
    spit(c->ini, h);
    run(c, "add", "--connection-string", CS("Orders DB/primary"), NULL);
    assert_ok(c);
    run(c, "add", "--connection-string",
        CS("x123456789x123456789x123456789x123456789x123456789x123456789"
           "abcdefghij"),
        NULL);
    assert_ok(c);
    got = slurp(c->ini, NULL);
    assert_has(got, "\n[connection Orders-DB-primary]\n");
    assert_has(got, "\n[connection x123456789x123456789x123456789x123456789"
                    "x123456789x123456789abcd]\n");
    free(got);
    /* The derived name is checked for duplicates too. */
    run(c, "add", "--connection-string", CS("Orders DB/primary"), NULL);
    assert_refused(c, "already used");
}

/* A file that would not load is not written; errors name the real file. */
static void cli_invalid_file_untouched(void **state)
{
    struct ctx *c = *state;
    char h[256], text[2048], want[300];

    hcmd_section(c, h, sizeof(h), "\n");
    snprintf(
        text, sizeof(text),
        "%sretry_max = 0\n\n[connection a]\nconnection_string = " CS("a") "\n",
        h);
    spit(c->ini, text);
    run(c, "add", "--connection-string", CS("b"), NULL);
    assert_int_equal(c->rc, 1);
    snprintf(want, sizeof(want), "%s:3: retry_max", c->ini);
    assert_has(c->err, want);
    assert_has(c->err, "would not load with this change; nothing changed");
    assert_null(strstr(c->err, "/.hcm.ini."));
    assert_null(strstr(c->err, KEY_PART));
    assert_file(c, text);
    assert_no_stray(c);
}

static void cli_creates_file(void **state)
{
    struct ctx *c = *state;
    char path[200], *got;
    struct stat st;

    snprintf(path, sizeof(path), "%s/sub/new.ini", c->dir);
    run_noconf(c, "add", "--connection-string", CS("n"), "-c", path, NULL);
    assert_ok(c);
    assert_has(c->out, "created [connection n] in ");
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    got = slurp(path, NULL);
    assert_has(got,
               "\n[hcmd]\n\n[connection n]\nconnection_string = " CS("n") "\n");
    free(got);
    unlink(path);
}

static void cli_mode_0600(void **state)
{
    struct ctx *c = *state;
    char h[256], text[2048];
    struct stat st;

    hcmd_section(c, h, sizeof(h), "\n");
    snprintf(text, sizeof(text),
             "%s\n[connection a]\nconnection_string = " CS("a") "\n", h);
    spit(c->ini, text);
    chmod(c->ini, 0644);
    run(c, "add", "--connection-string", CS("b"), NULL);
    assert_ok(c);
    assert_int_equal(stat(c->ini, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
}

static void cli_key_from_stdin(void **state)
{
    struct ctx *c = *state;
    char h[256], text[2048], want[4096];

    hcmd_section(c, h, sizeof(h), "\n");
    snprintf(text, sizeof(text),
             "%s\n[connection a]\nconnection_string = " CS("a") "\n", h);
    spit(c->ini, text);
    run_in(c, "  " CS("b") "  \r\n", "add", "--connection-string", "-",
           "--name=bee", NULL);
    assert_ok(c);
    snprintf(want, sizeof(want),
             "%s\n[connection bee]\nconnection_string = " CS("b") "\n", text);
    assert_file(c, want);
}

static void cli_list_show_no_daemon(void **state)
{
    struct ctx *c = *state;
    char h[256], text[2048], want[4096];

    hcmd_section(c, h, sizeof(h), "\n");
    snprintf(text, sizeof(text),
             "%s\n[connection a]\nconnection_string = " CS(
                 "a") "\n"
                      "endpoint = db:1433\n\n"
                      "[connection meta]\nconnection_string = " CS(
                          "m") "\n\n"
                               "[forward f]\nconnection_string = " CS(
                                   "f") "\n"
                                        "bind = 1234\n",
             h);
    spit(c->ini, text);
    run(c, "list", NULL);
    assert_ok(c);
    snprintf(want, sizeof(want),
             "hcmd is not running (no answer on %s)\n"
             "NAME  NAMESPACE          ENTITY  ENDPOINT         STATUS  "
             "TUNNELS  SINCE\n"
             "a     relay.example.net  a       db:1433          -       -  "
             "      -\n"
             "meta  relay.example.net  m       (user metadata)  -       -  "
             "      -\n"
             "f     relay.example.net  f       bind 1234        -       -  "
             "      -\n",
             c->sock);
    assert_string_equal(c->out, want);
    assert_string_equal(c->err, "");
    run(c, "show", "meta", NULL);
    assert_ok(c);
    assert_has(c->out, "hcmd is not running (no answer on ");
    assert_has(c->out, "\nNamespace:     relay.example.net:443 ");
    assert_has(c->out, "\nKey name:      listen\n");
    assert_has(c->out, "\nEndpoint:      from the hybrid connection's user "
                       "metadata\n");
    assert_has(c->out, "\nStatus:        - (hcmd is not running)\n");
    assert_null(strstr(c->out, KEY_PART));
    run(c, "show", "f", NULL);
    assert_ok(c);
    assert_has(c->out, "\nBind:          port 1234 on a loopback address");
}

/* list and show on a file with errors print them and fail. */
static void cli_list_bad_file(void **state)
{
    struct ctx *c = *state;
    char want[300];

    spit(c->ini, "[connection a]\nconnection_string = " CS_BASE "\n");
    run(c, "list", NULL);
    assert_int_equal(c->rc, 1);
    snprintf(want, sizeof(want), "%s:2: connection_string: EntityPath", c->ini);
    assert_has(c->err, want);
    assert_null(strstr(c->err, KEY_PART));
    assert_string_equal(c->out, "");
}

int main(int argc, char **argv)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(cli_is_command),
        T(cli_help),
        T(cli_add_remove_sample_identical),
        T(cli_remove_takes_doc_block),
        T(cli_remove_attached_comments),
        T(cli_remove_keeps_file_header),
        T(cli_crlf),
        T(cli_no_final_newline),
        T(cli_bom),
        T(cli_refusals),
        T(cli_remove_last_refused),
        T(cli_name_from_entity),
        T(cli_invalid_file_untouched),
        T(cli_creates_file),
        T(cli_mode_0600),
        T(cli_key_from_stdin),
        T(cli_list_show_no_daemon),
        T(cli_list_bad_file),
    };

    if (argc > 1)
        cmocka_set_test_filter(argv[1]);
    return cmocka_run_group_tests_name("cli", tests, NULL, NULL);
}
