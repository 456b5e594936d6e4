/*
 * fuzz_conf.c - INI files: hc_conf_parse on the input as text (up to its
 * first NUL) with a callback that runs the value helpers, then the input
 * as a file through both loaders, hc_agent_conf_load (hcm.ini) and
 * hc_relay_conf_load (relay.ini).
 *
 * The file lives in a memfd (reused: truncated and rewritten each run),
 * reached as /proc/self/fd/N; where memfd_create is missing, one file in
 * $TMPDIR (default /tmp) named after the pid.
 *
 * Checks:
 *  - the callback sees a section for every key; the key and the value are
 *    text of the line being handled (ctx->lineno), the value trimmed;
 *  - hc_conf_keyname gives "(not shown)" or the quoted key;
 *  - hc_conf_long/bool/hostport results are in range and NUL-terminated;
 *  - 0 comes with no error text, HC_ECONFIG with "PATH:..." lines;
 *  - a loader returns 0 with a config or HC_ECONFIG with errors, and
 *    its lookups and free work on what it returned.
 */
#include <ctype.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/mman.h>
#include <unistd.h>

#include <uv.h>

#include "fuzz_common.h"
#include "hc_agent.h"
#include "hc_conf.h"
#include "hc_err.h"
#include "hc_log.h"
#include "hc_mem.h"
#include "hc_proxy.h"
#include "hc_relay.h"

#define PATH "fuzz.ini"

struct state {
    const char *text; /* what hc_conf_parse reads */
    size_t len;
    int sections, keys;
};

/* Line lineno (1-based) of text: start and length without the newline. */
static int find_line(const char *text, size_t len, int lineno,
                     const char **start, size_t *llen)
{
    const char *p = text, *end = text + len;

    for (int i = 1; i < lineno; i++) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (nl == NULL)
            return 0;
        p = nl + 1;
    }
    {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        *start = p;
        *llen = nl ? (size_t)(nl - p) : (size_t)(end - p);
    }
    return 1;
}

static void check_keyname(const char *key)
{
    const char *k = hc_conf_keyname(key);
    size_t n = strlen(key);

    if (strcmp(k, "(not shown)") == 0)
        return;
    FUZZ_CHECK(n > 0 && n <= 32);
    FUZZ_CHECK(strlen(k) == n + 2 && k[0] == '\'' && k[n + 1] == '\'');
    FUZZ_CHECK(memcmp(k + 1, key, n) == 0);
    for (size_t i = 0; i < n; i++)
        FUZZ_CHECK(isalpha((unsigned char)key[i]) || key[i] == '_' ||
                   key[i] == '-');
}

static void value_helpers(const char *value)
{
    long l;
    int b, port;
    size_t caps[] = {1, 8, 64, 256};

    if (hc_conf_long(value, LONG_MIN, LONG_MAX, &l) == 0)
        FUZZ_CHECK(value[0] != '\0');
    if (hc_conf_long(value, 0, 65535, &l) == 0)
        FUZZ_CHECK(l >= 0 && l <= 65535);
    if (hc_conf_bool(value, &b) == 0)
        FUZZ_CHECK(b == 0 || b == 1);
    for (size_t i = 0; i < sizeof(caps) / sizeof(caps[0]); i++) {
        char *host = malloc(caps[i]);
        if (host == NULL)
            abort();
        if (hc_conf_hostport(value, host, caps[i], &port) == 0) {
            FUZZ_CHECK(port >= 0 && port <= 65535);
            FUZZ_CHECK(memchr(host, '\0', caps[i]) != NULL);
            FUZZ_CHECK(host[0] != '\0');
        }
        free(host);
    }
}

static void on_key(struct hc_conf_ctx *ctx, const char *section,
                   const char *key, const char *value)
{
    struct state *st = ctx->user;
    const char *line;
    size_t llen;

    FUZZ_CHECK(section != NULL);
    FUZZ_CHECK(ctx->lineno >= 1);
    FUZZ_CHECK(find_line(st->text, st->len, ctx->lineno, &line, &llen));
    if (key == NULL) {
        FUZZ_CHECK(value == NULL);
        FUZZ_CHECK(memmem(line, llen, section, strlen(section)) != NULL);
        st->sections++;
        return;
    }
    FUZZ_CHECK(value != NULL);
    st->keys++;
    /* Key and value are as written on the line being handled. */
    FUZZ_CHECK(memmem(line, llen, key, strlen(key)) != NULL);
    if (memmem(line, llen, value, strlen(value)) == NULL)
        fprintf(stderr, "line %d: value not from this line (%zu bytes)\n",
                ctx->lineno, strlen(value));
    FUZZ_CHECK(memmem(line, llen, value, strlen(value)) != NULL);
    FUZZ_CHECK(strchr(value, '\n') == NULL);
    if (value[0] != '\0') {
        FUZZ_CHECK(!isspace((unsigned char)value[0]));
        FUZZ_CHECK(!isspace((unsigned char)value[strlen(value) - 1]));
    }
    check_keyname(key);
    value_helpers(value);
    if (st->keys % 5 == 0)
        hc_conf_err(ctx, "key %s: %s", hc_conf_keyname(key), "test message");
    if (st->keys % 7 == 0)
        hc_conf_err_at(ctx, 0, "a message without a line");
}

static void check_errors(int rc, const char *errors, const char *path)
{
    FUZZ_CHECK(rc == 0 || rc == HC_ECONFIG);
    if (rc == 0) {
        FUZZ_CHECK(errors == NULL);
        return;
    }
    FUZZ_CHECK(errors != NULL && errors[0] != '\0');
    for (const char *p = errors; *p;) {
        const char *nl = strchr(p, '\n');
        FUZZ_CHECK(nl != NULL);
        FUZZ_CHECK(strncmp(p, path, strlen(path)) == 0);
        FUZZ_CHECK(p[strlen(path)] == ':');
        p = nl + 1;
    }
}

static int file_fd = -1;
static char file_path[64];

static void write_file(const uint8_t *data, size_t size)
{
    if (file_fd < 0) {
#ifdef MFD_CLOEXEC
        file_fd = memfd_create("fuzz-conf", MFD_CLOEXEC);
#endif
        if (file_fd >= 0) {
            snprintf(file_path, sizeof(file_path), "/proc/self/fd/%d", file_fd);
        } else {
            const char *dir = getenv("TMPDIR");
            snprintf(file_path, sizeof(file_path), "%s/hc-fuzz-conf-%d.ini",
                     dir && strlen(dir) < 32 ? dir : "/tmp", (int)getpid());
            file_fd = open(file_path, O_RDWR | O_CREAT | O_TRUNC, 0600);
            if (file_fd < 0)
                abort();
        }
    }
    if (ftruncate(file_fd, 0) != 0 ||
        (size > 0 && pwrite(file_fd, data, size, 0) != (ssize_t)size))
        abort();
}

static void load_agent(void)
{
    struct hc_agent_conf *conf = NULL;
    char *errors = NULL;
    int rc = hc_agent_conf_load(file_path, &conf, &errors);

    check_errors(rc, errors, file_path);
    if (rc == 0) {
        struct hc_proxy p;
        const char *no_proxy;
        char err[200];
        FUZZ_CHECK(conf != NULL && conf->hcs != NULL);
        for (struct hc_agent_hc *h = conf->hcs; h != NULL; h = h->next) {
            FUZZ_CHECK(hc_agent_conf_find(conf, h->name, h->role) != NULL);
            FUZZ_CHECK(h->cs.host != NULL && h->cs.entity_path != NULL);
            FUZZ_CHECK(h->cs.key != NULL || h->cs.sas != NULL);
            if (h->role == HC_ROLE_FORWARD)
                FUZZ_CHECK(h->bind_port >= 1 && h->bind_port <= 65535);
            if (h->has_endpoint)
                FUZZ_CHECK(h->endpoint_port >= 1 && h->endpoint_port <= 65535);
        }
        rc = hc_agent_conf_proxy(conf, &p, &no_proxy, err, sizeof(err));
        FUZZ_CHECK(rc == 0 || rc == 1 || rc == UV_EINVAL);
        if (rc == 1 && no_proxy != NULL)
            (void)hc_proxy_exempt(no_proxy, conf->hcs->cs.host);
        hc_agent_conf_free(conf);
    }
    hc_free(errors);
}

static void load_relay(void)
{
    struct hc_relay_conf *conf = NULL;
    char *errors = NULL;
    int rc = hc_relay_conf_load(file_path, &conf, &errors);

    check_errors(rc, errors, file_path);
    if (rc == 0) {
        const char *hc_name = NULL;
        FUZZ_CHECK(conf != NULL);
        FUZZ_CHECK(conf->listen_port >= 0 && conf->listen_port <= 65535);
        for (struct hc_relay_hc *h = conf->hcs; h != NULL; h = h->next) {
            FUZZ_CHECK(hc_relay_conf_find_hc(conf, h->name) != NULL);
            for (struct hc_relay_rule *r = h->rules; r != NULL; r = r->next) {
                char spec[600];
                snprintf(spec, sizeof(spec), "%s/%s", h->name, r->name);
                FUZZ_CHECK(hc_relay_conf_find_rule(conf, spec, &hc_name) !=
                           NULL);
            }
        }
        for (struct hc_relay_rule *r = conf->rules; r != NULL; r = r->next)
            FUZZ_CHECK(hc_relay_conf_find_rule(conf, r->name, &hc_name) !=
                       NULL);
        (void)hc_relay_conf_find_rule(conf, "db/rule", &hc_name);
        hc_relay_conf_free(conf);
    }
    hc_free(errors);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int init;
    struct state st;
    char *text = fuzz_cstr(data, size);
    char *errors = NULL;
    int rc;

    if (!init) {
        hc_log_set_level(HC_LOG_ERR);
        init = 1;
    }
    memset(&st, 0, sizeof(st));
    st.text = text;
    st.len = strlen(text);
    rc = hc_conf_parse(PATH, text, on_key, &st, &errors);
    check_errors(rc, errors, PATH);
    hc_free(errors);
    free(text);

    write_file(data, size);
    load_agent();
    load_relay();
    return 0;
}
