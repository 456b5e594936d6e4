/*
 * test_agent_conf.c - hcmd's hcm.ini (src/agent_conf.c: hc_agent_conf_load)
 * and the endpoint in the relay's entity description
 * (hc_agent_meta_endpoint).
 *
 * Run one test alone: build/test/test_agent_conf <name-glob>. Tests named
 * regress_* pin defects that were found and fixed. The sample test reads
 * conf/hcm.ini relative to the current directory (the repository root, as
 * test/run.sh runs it) or to $HCMD_SRCDIR.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <uv.h>

#include "hc_agent.h"
#include "hc_err.h"
#include "hc_log.h"
#include "hc_mem.h"

/* A key no error message may ever show, and a piece of it to look for. */
#define KEY "SeCrEtKeY7q2Wv9Zx4Lm1Np8Rt5Yb3Hd6Jf0Gk2Cs9Ue="
#define KEY_PART "SeCrEtKeY7q2"

#define EP "Endpoint=sb://localhost:9443/"
#define CS_DB                                                                  \
    EP ";SharedAccessKeyName=defaultListener;SharedAccessKey=" KEY             \
       ";EntityPath=db"

/* What the Azure portal shows for a hybrid connection: 250+ characters. */
#define AZURE_CS                                                               \
    "Endpoint=sb://contoso-relay-westeurope-prod-001.servicebus.windows.net/"  \
    ";SharedAccessKeyName=defaultListenerForTheOrdersDatabasePrimary"          \
    ";SharedAccessKey=" KEY                                                    \
    ";EntityPath=orders-database-primary-hybrid-connection-westeurope"

/* A [connection c] that loads: lines 1-2 of most texts below. */
#define CONN_C                                                                 \
    "[connection c]\n"                                                         \
    "connection_string = " CS_DB "\n"

/* Error lines */

#define TMP_PREFIX "/tmp/hcmd-test-agent-conf.XXXXXX"
#include "conf_test_util.h"

/* No error line shows the key or a piece of it. */
#define assert_no_key(errors)                                                  \
    do {                                                                       \
        if ((errors) != NULL && strstr((errors), KEY_PART) != NULL)            \
            fail_msg("the key shows in the errors:\n%s", (errors));            \
    } while (0)

static int load_text(const struct tmp *t, const char *text,
                     struct hc_agent_conf **conf, char **errors)
{
    tmp_write(t, text, strlen(text));
    *conf = NULL;
    return hc_agent_conf_load(t->path, conf, errors);
}

/* Load text that must load cleanly. */
static struct hc_agent_conf *load_ok(const struct tmp *t, const char *text)
{
    struct hc_agent_conf *conf = NULL;
    char *errors = NULL;
    int rc = load_text(t, text, &conf, &errors);

    if (rc != 0) {
        char msg[2048];
        snprintf(msg, sizeof(msg), "load: %d\n%s", rc,
                 errors ? errors : "(no errors)");
        hc_free(errors);
        fail_msg("%s", msg);
    }
    assert_null(errors);
    assert_non_null(conf);
    return conf;
}

/* Load text expecting HC_ECONFIG with exactly nlines error lines. */
static char *load_fails(const struct tmp *t, const char *text, int nlines)
{
    struct hc_agent_conf *conf = NULL;
    char *errors = NULL;

    assert_int_equal(load_text(t, text, &conf, &errors), HC_ECONFIG);
    assert_null(conf);
    assert_non_null(errors);
    assert_nlines(errors, nlines);
    assert_no_key(errors);
    return errors;
}

/* Load text expecting exactly one error, at line, containing what. */
static void fails_with(const struct tmp *t, const char *text, int line,
                       const char *what)
{
    char *errors = load_fails(t, text, 1);
    char msg[2048] = "";

    if (!has_error(errors, t->path, line, what))
        snprintf(msg, sizeof(msg), "no \"%s:%d: ...%s...\" in errors:\n%s",
                 t->path, line, what, errors);
    hc_free(errors);
    if (msg[0] != '\0')
        fail_msg("%s", msg);
}

static struct hc_agent_hc *nth_hc(struct hc_agent_conf *conf, int n)
{
    struct hc_agent_hc *h = conf->hcs;

    while (h != NULL && n-- > 0)
        h = h->next;
    assert_non_null(h);
    return h;
}

static int hc_count(const struct hc_agent_conf *conf)
{
    int n = 0;

    for (const struct hc_agent_hc *h = conf->hcs; h != NULL; h = h->next)
        n++;
    return n;
}

/* hc_agent_conf_load: files that load */

static const char *src_path(const char *rel, char *buf, size_t cap)
{
    const char *dir = getenv("HCMD_SRCDIR");

    snprintf(buf, cap, "%s/%s", dir ? dir : ".", rel);
    return buf;
}

/* The line of text that starts with what (1-based), or 0. */
static int line_of(const char *text, const char *what)
{
    int line = 1;

    for (const char *p = text; *p != '\0'; line++) {
        if (strncmp(p, what, strlen(what)) == 0)
            return line;
        p = strchr(p, '\n');
        if (p == NULL)
            break;
        p++;
    }
    return 0;
}

static void agent_sample_loads(void **state)
{
    const struct tmp *t = *state;
    struct hc_agent_conf *conf;
    struct hc_agent_hc *h;
    char path[512], *data;
    FILE *f;
    size_t n;

    f = fopen(src_path("conf/hcm.ini", path, sizeof(path)), "rb");
    if (f == NULL)
        fail_msg("cannot open %s: run from the repository root or set "
                 "HCMD_SRCDIR",
                 path);
    data = calloc(1, 65536);
    assert_non_null(data);
    n = fread(data, 1, 65535, f);
    fclose(f);
    assert_true(n > 0 && n < 65535);

    conf = load_ok(t, data);
    assert_string_equal(conf->path, t->path);
    assert_null(conf->ca_file);
    assert_int_equal(conf->tls_verify, 1);
    assert_int_equal(conf->log_level, HC_LOG_INFO);
    assert_int_equal(conf->max_tunnels, 1000);
    assert_int_equal(conf->token_lifetime, 3600);
    assert_int_equal(conf->ping_interval, 30);
    assert_int_equal(conf->retry_max, 30);
    assert_int_equal(conf->connect_timeout, 10);
    assert_null(conf->hosts_file);
    assert_int_equal(hc_count(conf), 2);

    h = nth_hc(conf, 0);
    assert_string_equal(h->name, "db");
    assert_int_equal(h->role, HC_ROLE_LISTEN);
    assert_int_equal(h->line, line_of(data, "[connection db]"));
    assert_string_equal(h->cs.host, "localhost");
    assert_int_equal(h->cs.port, 9443);
    assert_string_equal(h->cs.entity_path, "db");
    assert_string_equal(h->cs.key_name, "defaultListener");
    assert_non_null(h->cs.key);
    assert_null(h->cs.sas);
    assert_int_equal(h->has_endpoint, 1);
    assert_string_equal(h->endpoint_host, "localhost");
    assert_int_equal(h->endpoint_port, 6379);

    h = nth_hc(conf, 1);
    assert_string_equal(h->name, "db-client");
    assert_int_equal(h->role, HC_ROLE_FORWARD);
    assert_int_equal(h->line, line_of(data, "[forward db-client]"));
    assert_string_equal(h->cs.entity_path, "db");
    assert_string_equal(h->cs.key_name, "defaultSender");
    assert_string_equal(h->bind_host, "");
    assert_int_equal(h->bind_port, 16379);
    assert_null(h->hostname);
    assert_int_equal(h->has_endpoint, 0);
    free(data);
    hc_agent_conf_free(conf);
}

static void agent_defaults(void **state)
{
    const struct tmp *t = *state;
    struct hc_agent_conf *conf = load_ok(t, "\n" CONN_C);
    struct hc_agent_hc *h;

    assert_null(conf->ca_file);
    assert_int_equal(conf->tls_verify, 1);
    assert_int_equal(conf->log_level, HC_LOG_INFO);
    assert_int_equal(conf->max_tunnels, 1000);
    assert_int_equal(conf->token_lifetime, 3600);
    assert_int_equal(conf->ping_interval, 30);
    assert_int_equal(conf->retry_max, 30);
    assert_int_equal(conf->connect_timeout, 10);
    assert_null(conf->hosts_file);
    assert_int_equal(hc_count(conf), 1);
    h = conf->hcs;
    assert_string_equal(h->name, "c");
    assert_int_equal(h->role, HC_ROLE_LISTEN);
    assert_int_equal(h->line, 2);
    assert_int_equal(h->has_endpoint, 0);
    assert_string_equal(h->cs.key, KEY);
    assert_null(h->hostname);
    assert_null(h->next);
    hc_agent_conf_free(conf);
    hc_agent_conf_free(NULL);
}

static void agent_every_setting(void **state)
{
    const struct tmp *t = *state;
    struct hc_agent_conf *conf = load_ok(t, "[hcmd]\n"
                                            "ca_file = /etc/hcmd/relay-ca.pem\n"
                                            "tls_verify = false\n"
                                            "log_level = debug\n"
                                            "max_tunnels = 5\n"
                                            "token_lifetime = 600\n"
                                            "ping_interval = 7\n"
                                            "retry_max = 120\n"
                                            "connect_timeout = 3\n"
                                            "hosts_file = /etc/hosts\n" CONN_C);

    assert_string_equal(conf->ca_file, "/etc/hcmd/relay-ca.pem");
    assert_int_equal(conf->tls_verify, 0);
    assert_int_equal(conf->log_level, HC_LOG_DEBUG);
    assert_int_equal(conf->max_tunnels, 5);
    assert_int_equal(conf->token_lifetime, 600);
    assert_int_equal(conf->ping_interval, 7);
    assert_int_equal(conf->retry_max, 120);
    assert_int_equal(conf->connect_timeout, 3);
    assert_string_equal(conf->hosts_file, "/etc/hosts");
    hc_agent_conf_free(conf);

    /* The ends of every range are accepted. */
    conf = load_ok(t, "[hcmd]\n"
                      "log_level = error\n"
                      "max_tunnels = 100000\n"
                      "token_lifetime = 10\n"
                      "ping_interval = 3600\n"
                      "retry_max = 1\n"
                      "connect_timeout = 600\n" CONN_C);
    assert_int_equal(conf->log_level, HC_LOG_ERR);
    assert_int_equal(conf->max_tunnels, 100000);
    assert_int_equal(conf->token_lifetime, 10);
    assert_int_equal(conf->ping_interval, 3600);
    assert_int_equal(conf->retry_max, 1);
    assert_int_equal(conf->connect_timeout, 600);
    hc_agent_conf_free(conf);
    conf = load_ok(t, "[hcmd]\n"
                      "max_tunnels = 1\n"
                      "token_lifetime = 86400\n"
                      "ping_interval = 1\n"
                      "retry_max = 3600\n"
                      "connect_timeout = 1\n" CONN_C);
    assert_int_equal(conf->max_tunnels, 1);
    assert_int_equal(conf->token_lifetime, 86400);
    assert_int_equal(conf->ping_interval, 1);
    assert_int_equal(conf->retry_max, 3600);
    assert_int_equal(conf->connect_timeout, 1);
    hc_agent_conf_free(conf);
}

static void agent_long_connection_string(void **state)
{
    const struct tmp *t = *state;
    static const char line[] = "connection_string = " AZURE_CS "\n";
    struct hc_agent_conf *conf;
    struct hc_agent_hc *h;

    assert_true(strlen(line) >= 250);
    assert_int_equal(KEY[strlen(KEY) - 1], '=');
    conf = load_ok(t, "[connection orders]\n"
                      "; the portal's Primary Connection String\n"
                      "connection_string = " AZURE_CS "\n"
                      "endpoint = sql-01.corp.local:1433\n");
    h = conf->hcs;
    assert_string_equal(h->cs.endpoint, "sb://contoso-relay-westeurope-prod-"
                                        "001.servicebus.windows.net/");
    assert_string_equal(h->cs.host,
                        "contoso-relay-westeurope-prod-001.servicebus."
                        "windows.net");
    assert_int_equal(h->cs.port, 443);
    assert_string_equal(h->cs.key_name,
                        "defaultListenerForTheOrdersDatabasePrimary");
    assert_string_equal(h->cs.key, KEY);
    assert_string_equal(h->cs.entity_path,
                        "orders-database-primary-hybrid-connection-westeurope");
    assert_string_equal(h->endpoint_host, "sql-01.corp.local");
    assert_int_equal(h->endpoint_port, 1433);
    hc_agent_conf_free(conf);

    /* With CRLF lines, indentation and an inline comment. */
    conf = load_ok(t, "[connection orders]\r\n"
                      "  connection_string = " AZURE_CS " ; primary\r\n");
    assert_string_equal(conf->hcs->cs.key, KEY);
    assert_string_equal(conf->hcs->cs.entity_path,
                        "orders-database-primary-hybrid-connection-westeurope");
    hc_agent_conf_free(conf);
}

static void agent_endpoint_forms(void **state)
{
    const struct tmp *t = *state;
    static const struct {
        const char *value, *host;
        int port;
    } cases[] = {
        {"[::1]:5432", "::1", 5432},
        {"[fd00:1::22]:1", "fd00:1::22", 1},
        {"localhost:6379", "localhost", 6379},
        {"127.0.0.1:65535", "127.0.0.1", 65535},
        {"sql-01.corp.local:1433", "sql-01.corp.local", 1433},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char text[1024];
        struct hc_agent_conf *conf;

        snprintf(text, sizeof(text), CONN_C "endpoint = %s\n", cases[i].value);
        conf = load_ok(t, text);
        assert_int_equal(conf->hcs->has_endpoint, 1);
        assert_string_equal(conf->hcs->endpoint_host, cases[i].host);
        assert_int_equal(conf->hcs->endpoint_port, cases[i].port);
        hc_agent_conf_free(conf);
    }
}

static void agent_forward_bind(void **state)
{
    const struct tmp *t = *state;
    struct hc_agent_conf *conf;
    struct hc_agent_hc *h;

    conf = load_ok(t, "[hcmd]\n"                              /* 1 */
                      "hosts_file = /etc/hosts\n"             /* 2 */
                      "[forward port-only]\n"                 /* 3 */
                      "connection_string = " CS_DB "\n"       /* 4 */
                      "bind = 15432\n"                        /* 5 */
                      "[forward with-addr]\n"                 /* 6 */
                      "bind = 127.0.0.5:1433\n"               /* 7 */
                      "connection_string = " CS_DB "\n"       /* 8 */
                      "hostname = sql.corp.local\n"           /* 9 */
                      "[forward v6]\n"                        /* 10 */
                      "connection_string = " CS_DB "\n"       /* 11 */
                      "bind = [::1]:65535\n"                  /* 12 */
                      "[connection listener]\n"               /* 13 */
                      "connection_string = " CS_DB "\n"       /* 14 */
                      "[forward named]\n"                     /* 15 */
                      "connection_string = " CS_DB "\n"       /* 16 */
                      "bind = 1\n"                            /* 17 */
                      "hostname = Redis-01.Demo.Internal\n"); /* 18 */
    assert_int_equal(hc_count(conf), 5);

    h = nth_hc(conf, 0);
    assert_string_equal(h->name, "port-only");
    assert_int_equal(h->role, HC_ROLE_FORWARD);
    assert_int_equal(h->line, 3);
    assert_string_equal(h->bind_host, "");
    assert_int_equal(h->bind_port, 15432);
    assert_null(h->hostname);

    h = nth_hc(conf, 1);
    assert_string_equal(h->name, "with-addr");
    assert_int_equal(h->line, 6);
    assert_string_equal(h->bind_host, "127.0.0.5");
    assert_int_equal(h->bind_port, 1433);
    assert_string_equal(h->hostname, "sql.corp.local");

    h = nth_hc(conf, 2);
    assert_string_equal(h->bind_host, "::1");
    assert_int_equal(h->bind_port, 65535);

    h = nth_hc(conf, 3);
    assert_string_equal(h->name, "listener");
    assert_int_equal(h->role, HC_ROLE_LISTEN);
    assert_int_equal(h->line, 13);

    h = nth_hc(conf, 4);
    assert_string_equal(h->bind_host, "");
    assert_int_equal(h->bind_port, 1);
    assert_string_equal(h->hostname, "Redis-01.Demo.Internal");
    hc_agent_conf_free(conf);
}

/* hc_agent_conf_load: errors, each with FILE:LINE */

static void agent_error_unknown_key(void **state)
{
    const struct tmp *t = *state;
    char *errors = load_fails(t,
                              "[hcmd]\n"                        /* 1 */
                              "colour = blue\n"                 /* 2 */
                              "Log_Level = info\n"              /* 3 */
                              CONN_C                            /* 4-5 */
                              "bind = 1433\n"                   /* 6 */
                              "hostname = a.local\n"            /* 7 */
                              "timeout = 5\n"                   /* 8 */
                              "[forward f]\n"                   /* 9 */
                              "connection_string = " CS_DB "\n" /* 10 */
                              "bind = 1433\n"                   /* 11 */
                              "endpoint = localhost:1433\n",    /* 12 */
                              6);

    assert_error(errors, t->path, 2, "unknown key 'colour' in [hcmd]");
    assert_error(errors, t->path, 3, "unknown key 'Log_Level' in [hcmd]");
    assert_error(errors, t->path, 6, "unknown key 'bind' in [connection c]");
    assert_error(errors, t->path, 7,
                 "unknown key 'hostname' in [connection c]");
    assert_error(errors, t->path, 8, "unknown key 'timeout' in [connection c]");
    assert_error(errors, t->path, 12, "unknown key 'endpoint' in [forward f]");
    hc_free(errors);
}

static void agent_error_unknown_section(void **state)
{
    const struct tmp *t = *state;
    /* The keys of an unknown section are not reported one by one. */
    char *errors = load_fails(t,
                              CONN_C                 /* 1-2 */
                              "[relay]\n"            /* 3 */
                              "listen = 1.2.3.4:5\n" /* 4 */
                              "[connection]\n"       /* 5 */
                              "[Connection x]\n"     /* 6 */
                              "connection_string = " CS_DB "\n"
                              "[forwards y]\n", /* 8 */
                              4);

    assert_error(errors, t->path, 3, "unknown section [relay]");
    assert_error(errors, t->path, 5, "unknown section [connection]");
    assert_error(errors, t->path, 6, "unknown section [Connection x]");
    assert_error(errors, t->path, 8, "unknown section [forwards y]");
    hc_free(errors);
}

static void agent_error_missing_connection_string(void **state)
{
    const struct tmp *t = *state;
    char *errors = load_fails(t,
                              "[connection a]\n"         /* 1 */
                              "endpoint = localhost:1\n" /* 2 */
                              CONN_C                     /* 3-4 */
                              "[forward f]\n"            /* 5 */
                              "bind = 1433\n"            /* 6 */
                              "[connection last]\n",     /* 7 */
                              3);

    assert_error(errors, t->path, 1,
                 "[connection a]: connection_string is missing");
    assert_error(errors, t->path, 5,
                 "[forward f]: connection_string is missing");
    assert_error(errors, t->path, 7,
                 "[connection last]: connection_string is missing");
    hc_free(errors);
}

static void agent_error_forward_without_bind(void **state)
{
    const struct tmp *t = *state;
    char *errors;

    fails_with(t,
               "[forward f]\n"
               "connection_string = " CS_DB "\n" CONN_C,
               1, "[forward f]: bind is missing");
    /* Neither key: both reported, at the section's line. */
    errors = load_fails(t, CONN_C "\n[forward g]\n", 2);
    assert_error(errors, t->path, 4,
                 "[forward g]: connection_string is missing");
    assert_error(errors, t->path, 4, "[forward g]: bind is missing");
    hc_free(errors);
}

static void agent_error_bad_connection_string(void **state)
{
    const struct tmp *t = *state;

    fails_with(t,
               "[connection c]\n"
               "connection_string = " EP ";SharedAccessKeyName=l;"
               "SharedAccessKey=" KEY "\n",
               2, "connection_string: EntityPath is missing");
    fails_with(t,
               "[forward f]\n"
               "bind = 1\n"
               "connection_string = " EP ";SharedAccessKeyName=l;"
               "SharedAccessKey=" KEY "\n",
               3, "connection_string: EntityPath is missing");
    fails_with(t,
               "[connection c]\n"
               "connection_string = Endpoint=https://localhost/;"
               "SharedAccessKeyName=l;SharedAccessKey=" KEY ";EntityPath=db\n",
               2, "connection_string: Endpoint must use the sb:// scheme");
    fails_with(t,
               "[connection c]\n"
               "connection_string = " EP ";SharedAccessKey=" KEY
               ";EntityPath=db\n",
               2,
               "connection_string: SharedAccessKeyName and "
               "SharedAccessKey must be given together");
    fails_with(t,
               "[connection c]\n"
               "connection_string = " EP ";EntityPath=db\n",
               2,
               "connection_string: SharedAccessKeyName and "
               "SharedAccessKey are missing");
    fails_with(t,
               "[connection c]\n"
               "connection_string = " EP
               ";EntityPath=db;Authentication=Managed Identity\n",
               2, "connection_string: Managed Identity is not supported");
    fails_with(t,
               "[connection c]\n"
               "connection_string = " CS_DB ";Colour=blue\n",
               2, "connection_string: unknown key");
    fails_with(t, "[connection c]\nconnection_string =\n", 2,
               "connection_string: connection string has no Endpoint");
}

static void agent_error_bad_endpoint(void **state)
{
    const struct tmp *t = *state;
    static const char *const bad[] = {
        "localhost",    "::1:5432",   "[::1]", "[::1]5432", "localhost:",
        "localhost:-1", "host:99999", ":6379", "a b:1",     "h:1x",
        "http://h:1/",  "user@h:1",   "[]:1",
    };

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char text[1024];

        snprintf(text, sizeof(text), CONN_C "endpoint = %s\n", bad[i]);
        fails_with(t, text, 3,
                   "endpoint: expected HOST:PORT or [V6]:PORT with a port "
                   "from 1 to 65535");
    }
    /* A bad endpoint still counts as given: no other error. */
    fails_with(t, CONN_C "endpoint = localhost:0\n", 3, "endpoint:");
    fails_with(t, CONN_C "endpoint = [::1]:0\n", 3, "endpoint:");
}

static void agent_error_bad_bind(void **state)
{
    const struct tmp *t = *state;
    static const char *const bad[] = {
        "0",       "65536",         "-1",        "127.0.0.1:0",
        "[::1]:0", "localhost",     "127.0.0.1", "::1:80",
        "port 80", "1.2.3.4:70000", "80x",       "",
    };

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char text[1024];

        snprintf(text, sizeof(text),
                 "[forward f]\nconnection_string = " CS_DB "\nbind = %s\n",
                 bad[i]);
        /* A bad bind is not reported a second time as missing. */
        fails_with(t, text, 3,
                   "bind: expected PORT, IP:PORT or [V6]:PORT with a port "
                   "from 1 to 65535");
    }
}

static void agent_error_duplicate_name(void **state)
{
    const struct tmp *t = *state;
    char *errors = load_fails(t,
                              "[connection x]\n"                /* 1 */
                              "connection_string = " CS_DB "\n" /* 2 */
                              "[forward x]\n"                   /* 3 */
                              "connection_string = " CS_DB "\n" /* 4 */
                              "bind = 1433\n"                   /* 5 */
                              "[forward y]\n"                   /* 6 */
                              "connection_string = " CS_DB "\n" /* 7 */
                              "bind = 1434\n"                   /* 8 */
                              "[connection y]\n"                /* 9 */
                              "[connection x]\n",               /* 10 */
                              3);

    assert_error(errors, t->path, 3,
                 "the name x is used twice (first on line 1)");
    assert_error(errors, t->path, 9,
                 "the name y is used twice (first on line 6)");
    assert_error(errors, t->path, 10,
                 "the name x is used twice (first on line 1)");
    hc_free(errors);
}

static void agent_error_bad_name(void **state)
{
    const struct tmp *t = *state;
    char long_name[80], text[1024];
    char *errors = load_fails(t,
                              "[connection a/b]\n"         /* 1 */
                              "[forward a b]\n"            /* 2 */
                              "[connection caf\xc3\xa9]\n" /* 3 */
                              CONN_C,                      /* 4-5 */
                              3);

    assert_error(errors, t->path, 1, "bad connection name 'a/b'");
    assert_error(errors, t->path, 2, "bad connection name 'a b'");
    assert_error(errors, t->path, 3, "bad connection name");
    hc_free(errors);

    /* 64 characters are fine, 65 are not. */
    memset(long_name, 'n', 64);
    long_name[64] = '\0';
    snprintf(text, sizeof(text),
             "[connection %s]\nconnection_string = " CS_DB "\n", long_name);
    hc_agent_conf_free(load_ok(t, text));
    snprintf(text, sizeof(text),
             "[connection %sN]\nconnection_string = " CS_DB "\n", long_name);
    fails_with(t, text, 1, "bad connection name");
}

static void agent_error_bad_hostname(void **state)
{
    const struct tmp *t = *state;
    static const char *const bad[] = {
        "bad host",
        "under_score.local",
        "sql.corp.local:1433",
        "caf\xc3\xa9.local",
        "a/b",
        "",
    };
    char text[1024], long_name[300];

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(text, sizeof(text),
                 "[hcmd]\nhosts_file = /etc/hosts\n"
                 "[forward f]\nconnection_string = " CS_DB "\nbind = 1\n"
                 "hostname = %s\n",
                 bad[i]);
        fails_with(t, text, 6, "hostname: a DNS name");
    }
    /* 253 characters are fine, 254 are not. */
    memset(long_name, 'a', 253);
    long_name[253] = '\0';
    snprintf(text, sizeof(text),
             "[hcmd]\nhosts_file = /etc/hosts\n"
             "[forward f]\nconnection_string = " CS_DB "\nbind = 1\n"
             "hostname = %s\n",
             long_name);
    hc_agent_conf_free(load_ok(t, text));
    snprintf(text, sizeof(text),
             "[hcmd]\nhosts_file = /etc/hosts\n"
             "[forward f]\nconnection_string = " CS_DB "\nbind = 1\n"
             "hostname = %sa\n",
             long_name);
    fails_with(t, text, 6, "hostname: a DNS name");
}

/*
 * Defect: hostname without hosts_file in [hcmd] loads cleanly, and the
 * forwarder then ignores the name (src/forward.c binds 127.0.0.1 and writes
 * no hosts block), so the name the user asked for never resolves.
 */
static void regress_agent_hostname_without_hosts_file(void **state)
{
    const struct tmp *t = *state;
    struct hc_agent_conf *conf = NULL;
    char *errors = NULL, msg[2048] = "";
    int rc = load_text(t,
                       "[hcmd]\n"                        /* 1 */
                       "log_level = info\n"              /* 2 */
                       "[forward f]\n"                   /* 3 */
                       "connection_string = " CS_DB "\n" /* 4 */
                       "bind = 1433\n"                   /* 5 */
                       "hostname = sql.corp.local\n",    /* 6 */
                       &conf, &errors);

    if (rc != HC_ECONFIG)
        snprintf(msg, sizeof(msg),
                 "hostname without hosts_file: load returned %d, want "
                 "HC_ECONFIG with \"%s:6: ...hosts_file...\"",
                 rc, t->path);
    else if (!has_error(errors, t->path, 6, "hosts_file"))
        snprintf(msg, sizeof(msg), "no \"%s:6: ...hosts_file...\" in:\n%s",
                 t->path, errors);
    hc_agent_conf_free(conf);
    hc_free(errors);
    if (msg[0] != '\0')
        fail_msg("%s", msg);
}

static void agent_error_bad_numbers(void **state)
{
    const struct tmp *t = *state;
    char *errors = load_fails(t,
                              "[hcmd]\n"                /* 1 */
                              "max_tunnels = 0\n"       /* 2 */
                              "token_lifetime = 9\n"    /* 3 */
                              "ping_interval = abc\n"   /* 4 */
                              "retry_max = 3601\n"      /* 5 */
                              "connect_timeout = 10s\n" /* 6 */
                              "tls_verify = maybe\n"    /* 7 */
                              "log_level = loud\n"      /* 8 */
                              CONN_C,                   /* 9-10 */
                              7);

    assert_error(errors, t->path, 2, "max_tunnels: a number from 1 to 100000");
    assert_error(errors, t->path, 3,
                 "token_lifetime: a number from 10 to 86400");
    assert_error(errors, t->path, 4, "ping_interval: a number from 1 to 3600");
    assert_error(errors, t->path, 5, "retry_max: a number from 1 to 3600");
    assert_error(errors, t->path, 6, "connect_timeout: a number from 1 to 600");
    assert_error(errors, t->path, 7, "tls_verify: expected true or false");
    assert_error(errors, t->path, 8, "log_level: expected error, warn");
    hc_free(errors);

    errors = load_fails(t,
                        "[hcmd]\n"
                        "max_tunnels = 100001\n"
                        "token_lifetime = 86401\n"
                        "ping_interval = 0\n"
                        "retry_max = -5\n"
                        "connect_timeout = 601\n"
                        "max_tunnels = 99999999999999999999999\n" CONN_C,
                        6);
    assert_error(errors, t->path, 2, "max_tunnels:");
    assert_error(errors, t->path, 3, "token_lifetime:");
    assert_error(errors, t->path, 4, "ping_interval:");
    assert_error(errors, t->path, 5, "retry_max:");
    assert_error(errors, t->path, 6, "connect_timeout:");
    assert_error(errors, t->path, 7, "'max_tunnels' is set twice");
    hc_free(errors);
}

static void agent_error_set_twice(void **state)
{
    const struct tmp *t = *state;
    char *errors = load_fails(t,
                              "[hcmd]\n"                         /* 1 */
                              "log_level = info\n"               /* 2 */
                              "log_level = debug\n"              /* 3 */
                              "[hcmd]\n"                         /* 4 */
                              CONN_C                             /* 5-6 */
                              "endpoint = a:1\n"                 /* 7 */
                              "endpoint = b:2\n"                 /* 8 */
                              "connection_string = " CS_DB "\n", /* 9 */
                              4);

    assert_error(errors, t->path, 3, "'log_level' is set twice in [hcmd]");
    assert_error(errors, t->path, 4, "[hcmd] appears twice");
    assert_error(errors, t->path, 8,
                 "'endpoint' is set twice in [connection c]");
    assert_error(errors, t->path, 9,
                 "'connection_string' is set twice in [connection c]");
    hc_free(errors);
}

static void agent_error_key_outside_section(void **state)
{
    const struct tmp *t = *state;

    fails_with(t, "log_level = info\n" CONN_C, 1,
               "key 'log_level' outside any section");
}

/* No error shows the key, whatever is wrong around it. */
static void agent_error_key_not_echoed(void **state)
{
    const struct tmp *t = *state;
    static const char *const bad_cs[] = {
        /* no EntityPath */
        EP ";SharedAccessKeyName=l;SharedAccessKey=" KEY,
        /* the key's name missing */
        EP ";SharedAccessKey=" KEY ";EntityPath=db",
        /* the key twice */
        EP ";SharedAccessKeyName=l;SharedAccessKey=" KEY ";SharedAccessKey=" KEY
           ";EntityPath=db",
        /* with a token */
        EP ";SharedAccessKeyName=l;SharedAccessKey=" KEY
           ";EntityPath=db;SharedAccessSignature=SharedAccessSignature sr=x"
           "&sig=" KEY "&se=1&skn=l",
        /* with Managed Identity */
        EP ";SharedAccessKeyName=l;SharedAccessKey=" KEY
           ";EntityPath=db;Authentication=Managed Identity",
        /* a bad endpoint after the key */
        "SharedAccessKeyName=l;SharedAccessKey=" KEY
        ";EntityPath=db;Endpoint=http://x/",
        /* a segment without '=' next to it, an unknown key after it */
        EP ";SharedAccessKeyName=l;SharedAccessKey;" KEY ";EntityPath=db",
        EP ";SharedAccessKeyName=l;" KEY "x=1;EntityPath=db",
        EP ";SharedAccessKeyName=l;SharedAccessKey=" KEY ";EntityPath=db;"
           "Foo=" KEY,
        /* a space instead of the ';' */
        EP ";SharedAccessKeyName=l;SharedAccessKey=" KEY " EntityPath=db",
    };

    for (size_t i = 0; i < sizeof(bad_cs) / sizeof(bad_cs[0]); i++) {
        char text[2048];
        char *errors;

        snprintf(text, sizeof(text), "[connection c]\nconnection_string = %s\n",
                 bad_cs[i]);
        errors = load_fails(t, text, 1);
        assert_error(errors, t->path, 2, "connection_string:");
        hc_free(errors);
    }

    /* A good key in a file with other errors. */
    {
        char *errors = load_fails(
            t, "[hcmd]\nfoo = " KEY "\n" CONN_C "endpoint = " KEY "\n", 2);
        hc_free(errors);
    }
}

/*
 * Defect: when a long connection string is wrapped (an editor, a paste
 * into a terminal) right after "SharedAccessKey=", the next line is
 * "KEY=;EntityPath=db": the INI reader takes the key for a key name and the
 * error "unknown key '...'" prints it (hc_agent.h: keys never appear in
 * errors).
 */
static void regress_agent_wrapped_connection_string_echoes_key(void **state)
{
    const struct tmp *t = *state;
    struct hc_agent_conf *conf = NULL;
    char *errors = NULL, msg[2048] = "";
    int rc =
        load_text(t,
                  "[connection db]\n"
                  "connection_string = " EP
                  ";SharedAccessKeyName=defaultListener;SharedAccessKey=\n" KEY
                  ";EntityPath=db\n",
                  &conf, &errors);

    if (rc != HC_ECONFIG)
        snprintf(msg, sizeof(msg), "load returned %d, want HC_ECONFIG", rc);
    else if (strstr(errors, KEY_PART) != NULL)
        snprintf(msg, sizeof(msg), "the key shows in the errors:\n%s", errors);
    hc_agent_conf_free(conf);
    hc_free(errors);
    if (msg[0] != '\0')
        fail_msg("%s", msg);
}

/* Every problem of a file comes out of one load, each with its line. */
static void agent_errors_one_pass(void **state)
{
    const struct tmp *t = *state;
    char *errors =
        load_fails(t,
                   "orphan = 1\n"             /* 1 */
                   "[hcmd]\n"                 /* 2 */
                   "max_tunnels = lots\n"     /* 3 */
                   "colour = blue\n"          /* 4 */
                   "not a key value line\n"   /* 5 */
                   "[connection a]\n"         /* 6 */
                   "endpoint = localhost:0\n" /* 7 */
                   "[connection b]\n"         /* 8 */
                   "connection_string = " EP ";SharedAccessKeyName=l;"
                   "SharedAccessKey=" KEY "\n"       /* 9 */
                   "endpoint = [::1]:5432\n"         /* 10 */
                   "[nonsense]\n"                    /* 11 */
                   "ignored = 1\n"                   /* 12 */
                   "[forward a]\n"                   /* 13 */
                   "[forward f]\n"                   /* 14 */
                   "connection_string = " CS_DB "\n" /* 15 */
                   "hostname = bad_name\n"           /* 16 */
                   "bind = 0\n"                      /* 17 */
                   "[forward g]\n",                  /* 18 */
                   13);

    assert_error(errors, t->path, 1, "key 'orphan' outside any section");
    assert_error(errors, t->path, 3, "max_tunnels:");
    assert_error(errors, t->path, 4, "unknown key 'colour'");
    assert_error(errors, t->path, 5, "expected 'key = value'");
    assert_error(errors, t->path, 7, "endpoint:");
    assert_error(errors, t->path, 6,
                 "[connection a]: connection_string is missing");
    assert_error(errors, t->path, 9, "EntityPath is missing");
    assert_error(errors, t->path, 11, "unknown section [nonsense]");
    assert_error(errors, t->path, 13, "the name a is used twice");
    assert_error(errors, t->path, 16, "hostname:");
    assert_error(errors, t->path, 17, "bind:");
    assert_error(errors, t->path, 18,
                 "[forward g]: connection_string is missing");
    assert_error(errors, t->path, 18, "[forward g]: bind is missing");
    hc_free(errors);
}

static void agent_nothing_to_do(void **state)
{
    const struct tmp *t = *state;
    static const char *const texts[] = {
        "",
        "; only a comment\n\n",
        "[hcmd]\nlog_level = debug\n",
    };

    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++)
        fails_with(
            t, texts[i], 0,
            "no [connection NAME] or [forward NAME] section: nothing to do");
}

static void agent_missing_file(void **state)
{
    static struct hc_agent_conf sentinel;
    struct hc_agent_conf *conf = &sentinel;
    char *errors = NULL;
    const char *path = "/tmp/hcmd-test-agent-conf-no-such-dir/hcm.ini";

    assert_int_equal(hc_agent_conf_load(path, &conf, &errors), UV_ENOENT);
    assert_ptr_equal(conf, &sentinel); /* untouched */
    assert_non_null(errors);
    assert_non_null(strstr(errors, path));
    hc_free(errors);
}

/* hc_agent_meta_endpoint */

/* A description exactly as src/relay.c describe() builds it. */
static const char relay_description[] =
    "<entry xmlns=\"http://www.w3.org/2005/Atom\"><id>https://localhost/db"
    "?api-version=2016-07</id><title type=\"text\">db</title>"
    "<updated>2026-11-28T23:40:02.0000000Z</updated><content "
    "type=\"application/xml\">"
    "<HybridConnectionDescription xmlns=\"http://schemas.microsoft."
    "com/netservices/2010/10/servicebus/connect\" xmlns:i=\"http://"
    "www.w3.org/2001/XMLSchema-instance\"><CreatedAt>2026-11-28T23:35:20."
    "0000000Z</CreatedAt><UpdatedAt>2026-11-28T23:35:20.0000000Z</UpdatedAt>"
    "<RequiresClientAuthorization>true</RequiresClientAuthorization>"
    "<UserMetadata>[{&quot;key&quot;:&quot;endpoint&quot;,&quot;value&quot;"
    ":&quot;localhost:6379&quot;}]</UserMetadata>"
    "<ListenerCount>1</ListenerCount></HybridConnectionDescription>"
    "</content></entry>";

/* describe()'s body around meta (already XML-escaped). */
static char *description(const char *meta)
{
    size_t blen = strlen(meta) + 1024;
    char *body = malloc(blen);

    assert_non_null(body);
    snprintf(body, blen,
             "<entry xmlns=\"http://www.w3.org/2005/Atom\"><id>https://%s/%s"
             "?api-version=2016-07</id><title type=\"text\">%s</title>"
             "<updated>%s</updated><content type=\"application/xml\">"
             "<HybridConnectionDescription xmlns=\"http://schemas.microsoft."
             "com/netservices/2010/10/servicebus/connect\" xmlns:i=\"http://"
             "www.w3.org/2001/XMLSchema-instance\"><CreatedAt>%s</CreatedAt>"
             "<UpdatedAt>%s</UpdatedAt><RequiresClientAuthorization>%s"
             "</RequiresClientAuthorization><UserMetadata>%s</UserMetadata>"
             "<ListenerCount>%d</ListenerCount></HybridConnectionDescription>"
             "</content></entry>",
             "localhost", "db", "db", "2026-11-28T23:40:02.0000000Z",
             "2026-11-28T23:35:20.0000000Z", "2026-11-28T23:35:20.0000000Z",
             "true", meta, 1);
    return body;
}

struct meta_result {
    int rc, port;
    char host[256], err[256];
};

/* hc_agent_meta_endpoint on exactly len bytes of a heap copy (ASan sees
 * any read past them). */
static struct meta_result meta_len(const char *xml, size_t len)
{
    struct meta_result r;
    char *copy = malloc(len ? len : 1);

    assert_non_null(copy);
    memcpy(copy, xml, len);
    memset(&r, 0, sizeof(r));
    r.port = -1;
    strcpy(r.host, "untouched");
    strcpy(r.err, "untouched");
    r.rc = hc_agent_meta_endpoint(copy, len, r.host, sizeof(r.host), &r.port,
                                  r.err, sizeof(r.err));
    free(copy);
    return r;
}

static struct meta_result meta(const char *xml)
{
    return meta_len(xml, strlen(xml));
}

/* The endpoint of a description with this (raw) UserMetadata text. */
static struct meta_result meta_of(const char *user_metadata)
{
    char *xml = description(user_metadata);
    struct meta_result r = meta(xml);

    free(xml);
    return r;
}

#define assert_endpoint(r, h, p)                                               \
    do {                                                                       \
        struct meta_result r_ = (r);                                           \
        if (r_.rc != 0)                                                        \
            fail_msg("got %d (%s), want %s:%d", r_.rc, r_.err, (h), (p));      \
        assert_string_equal(r_.host, (h));                                     \
        assert_int_equal(r_.port, (p));                                        \
        assert_string_equal(r_.err, "");                                       \
    } while (0)

#define assert_meta_fails(r, want, what)                                       \
    do {                                                                       \
        struct meta_result r_ = (r);                                           \
        if (r_.rc != (want))                                                   \
            fail_msg("got %d (%s), want %d", r_.rc, r_.err, (want));           \
        if (strstr(r_.err, (what)) == NULL)                                    \
            fail_msg("err \"%s\" lacks \"%s\"", r_.err, (what));               \
    } while (0)

static void meta_relay_description(void **state)
{
    char *built = description("[{&quot;key&quot;:&quot;endpoint&quot;,"
                              "&quot;value&quot;:&quot;localhost:6379&quot;}]");

    /* The helper builds the very text the relay sends. */
    assert_string_equal(built, relay_description);
    free(built);
    assert_endpoint(meta(relay_description), "localhost", 6379);
}

static void meta_escaped_and_plain(void **state)
{
    assert_endpoint(meta_of("[{&quot;key&quot;:&quot;endpoint&quot;,&quot;"
                            "value&quot;:&quot;db.corp.local:1433&quot;}]"),
                    "db.corp.local", 1433);
    /* Not escaped (legal XML for '"'). */
    assert_endpoint(meta_of("[{\"key\":\"endpoint\",\"value\":\"10.0.0.5:5432\""
                            "}]"),
                    "10.0.0.5", 5432);
    /* Mixed, with white space. */
    assert_endpoint(meta_of("\n  [ { \"key\" : &quot;endpoint&quot; ,\n"
                            "    &quot;value&quot;: \"h:1\" } ]\n"),
                    "h", 1);
    /* &apos; &amp; &lt; &gt; inside other values are undone too. */
    assert_endpoint(meta_of("[{&quot;key&quot;:&quot;note&quot;,&quot;value"
                            "&quot;:&quot;a &lt;b&gt; &amp; &apos;c&apos;"
                            "&quot;},{&quot;key&quot;:&quot;endpoint&quot;,"
                            "&quot;value&quot;:&quot;h:2&quot;}]"),
                    "h", 2);
    /* "&amp;quot;" is "&quot;" in the JSON, not a quote: a string "a&quot;"
     * is still a string. */
    assert_endpoint(meta_of("[{&quot;key&quot;:&quot;x&amp;quot;&quot;,"
                            "&quot;value&quot;:1},{&quot;key&quot;:&quot;"
                            "endpoint&quot;,&quot;value&quot;:&quot;h:3"
                            "&quot;}]"),
                    "h", 3);
}

static void meta_numeric_entities(void **state)
{
    assert_endpoint(meta_of("[{&#34;key&#34;:&#34;endpoint&#34;,&#34;value"
                            "&#34;:&#34;localhost:6379&#34;}]"),
                    "localhost", 6379);
    assert_endpoint(meta_of("[{&#x22;key&#x22;:&#X22;endpoint&#x22;,&#x22;"
                            "value&#x22;:&#x22;[::1]:1&#x22;}]"),
                    "::1", 1);
    /* &#58; is ':' */
    assert_endpoint(meta_of("[{\"key\":\"endpoint\",\"value\":\"h&#58;9\"}]"),
                    "h", 9);
}

static void meta_other_items_first(void **state)
{
    assert_endpoint(
        meta_of("[{&quot;key&quot;:&quot;owner&quot;,&quot;value&quot;:"
                "&quot;team-db&quot;},"
                "{&quot;key&quot;:&quot;Endpoint&quot;,&quot;value&quot;:"
                "&quot;wrong:1&quot;},"
                "{&quot;key&quot;:&quot;endpoint&quot;,&quot;value&quot;:"
                "&quot;sql-01:1433&quot;},"
                "{&quot;key&quot;:&quot;endpoint&quot;,&quot;value&quot;:"
                "&quot;second:2&quot;}]"),
        "sql-01", 1433);
    /* Items that are not objects, or lack a key, are passed over. */
    assert_endpoint(meta_of("[1,\"endpoint\",null,{\"value\":\"x:1\"},"
                            "{\"key\":7},{\"key\":\"endpoint\","
                            "\"value\":\"y:2\"}]"),
                    "y", 2);
}

static void meta_ipv6(void **state)
{
    assert_endpoint(meta_of("[{&quot;key&quot;:&quot;endpoint&quot;,&quot;"
                            "value&quot;:&quot;[::1]:5432&quot;}]"),
                    "::1", 5432);
    assert_endpoint(meta_of("[{\"key\":\"endpoint\",\"value\":"
                            "\"[fd00:ab::7]:65535\"}]"),
                    "fd00:ab::7", 65535);
}

static void meta_not_found(void **state)
{
    static const char no_meta[] =
        "<entry xmlns=\"http://www.w3.org/2005/Atom\"><content><Hybrid"
        "ConnectionDescription><RequiresClientAuthorization>true</Requires"
        "ClientAuthorization><ListenerCount>0</ListenerCount></Hybrid"
        "ConnectionDescription></content></entry>";

    assert_meta_fails(meta(no_meta), HC_ENOTFOUND, "no user metadata");
    assert_meta_fails(meta(""), HC_ENOTFOUND, "no user metadata");
    assert_meta_fails(meta("<UserMetadata i:nil=\"true\"/>"), HC_ENOTFOUND,
                      "no user metadata");
    /* The feed the relay sends for an unknown entity. */
    assert_meta_fails(
        meta("<feed xmlns=\"http://www.w3.org/2005/Atom\"><title "
             "type=\"text\">Publicly Listed Services</title><id>uuid:00000000-"
             "0000-0000-0000-000000000000</id><updated>2026-11-28T23:35:20."
             "0000000Z</updated></feed>"),
        HC_ENOTFOUND, "no user metadata");
    assert_meta_fails(meta_of("[]"), HC_ENOTFOUND, "no \"endpoint\" item");
    assert_meta_fails(meta_of(" [ ] "), HC_ENOTFOUND, "no \"endpoint\" item");
    assert_meta_fails(meta_of("[{&quot;key&quot;:&quot;owner&quot;,&quot;"
                              "value&quot;:&quot;x:1&quot;}]"),
                      HC_ENOTFOUND, "no \"endpoint\" item");
}

static void meta_bad_endpoint(void **state)
{
    static const char *const bad[] = {
        "localhost", "localhost:0", "localhost:65536",
        "::1:5432",  "[::1]",       ":6379",
        "a b:1",     "h:x",         "http://h:1/",
        "",
    };
    char um[256];

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(um, sizeof(um),
                 "[{&quot;key&quot;:&quot;endpoint&quot;,&quot;value&quot;:"
                 "&quot;%s&quot;}]",
                 bad[i]);
        assert_meta_fails(meta_of(um), HC_ESYNTAX, "not HOST:PORT");
    }
    /* Not a string, or no value at all. */
    assert_meta_fails(meta_of("[{\"key\":\"endpoint\",\"value\":6379}]"),
                      HC_ESYNTAX, "not HOST:PORT");
    assert_meta_fails(meta_of("[{\"key\":\"endpoint\"}]"), HC_ESYNTAX,
                      "not HOST:PORT");
    /* A host longer than the caller's buffer. */
    {
        char host[8], err[128];
        char *xml = description("[{\"key\":\"endpoint\",\"value\":"
                                "\"a-long-host-name:1\"}]");
        int port = 0, rc;

        rc = hc_agent_meta_endpoint(xml, strlen(xml), host, sizeof(host), &port,
                                    err, sizeof(err));
        free(xml);
        assert_int_equal(rc, HC_ESYNTAX);
        assert_non_null(strstr(err, "not HOST:PORT"));
    }
}

static void meta_not_an_array(void **state)
{
    static const char *const bad[] = {
        "{&quot;endpoint&quot;:&quot;localhost:6379&quot;}",
        "{&quot;key&quot;:&quot;endpoint&quot;,&quot;value&quot;:&quot;"
        "localhost:6379&quot;}",
        "&quot;localhost:6379&quot;",
        "localhost:6379",
        "[{&quot;key&quot;:&quot;endpoint&quot;,&quot;value&quot;:&quot;"
        "localhost:6379&quot;}",
        "[{&quot;key&quot;:&quot;endpoint&quot;,&quot;key&quot;:&quot;"
        "x&quot;}]",
        "[] []",
        "[&quot;unterminated]",
        "null",
    };

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_meta_fails(meta_of(bad[i]), HC_ESYNTAX, "not a JSON array");
}

static void meta_truncated(void **state)
{
    size_t full = strlen(relay_description);
    const char *close = strstr(relay_description, "</UserMetadata>");
    const char *open = strstr(relay_description, "<UserMetadata>");

    assert_non_null(close);
    assert_non_null(open);
    assert_meta_fails(meta("<UserMetadata>[{\"key\":\"endpoint\",\"value\":"
                           "\"h:1\"}]"),
                      HC_ESYNTAX, "malformed");
    assert_meta_fails(meta("<UserMetadata>[{\"key\":\"endpoint\",\"value\":"
                           "\"h:1\"}]</UserMetadata"),
                      HC_ESYNTAX, "malformed");
    /* Every cut of the relay's text: a clean answer, never a read past the
     * len bytes (each cut is an exact-size heap copy). */
    for (size_t len = 0; len <= full; len++) {
        struct meta_result r = meta_len(relay_description, len);
        size_t end_of_close =
            (size_t)(close - relay_description) + strlen("</UserMetadata>");
        size_t end_of_open =
            (size_t)(open - relay_description) + strlen("<UserMetadata>");
        int want = len >= end_of_close  ? 0
                   : len >= end_of_open ? HC_ESYNTAX
                                        : HC_ENOTFOUND;

        if (r.rc != want)
            fail_msg("cut at %zu of %zu: got %d (%s), want %d", len, full, r.rc,
                     r.err, want);
        if (want == 0)
            assert_int_equal(r.port, 6379);
    }
}

/* Every hc_malloc of hc_agent_meta_endpoint fails in turn. */
static void meta_oom(void **state)
{
    char host[64], err[128];
    long i, used = 0;
    int port = 0, rc;

    for (i = 0;; i++) {
        hc_mem_fail_after(i);
        rc =
            hc_agent_meta_endpoint(relay_description, strlen(relay_description),
                                   host, sizeof(host), &port, err, sizeof(err));
        used = hc_mem_fail_after(-1);
        if (rc == 0)
            break;
        assert_int_equal(rc, UV_ENOMEM);
        assert_string_equal(err, "out of memory");
        assert_true(i < used);
    }
    assert_true(i >= used);
    assert_true(i > 0);
    assert_string_equal(host, "localhost");
    assert_int_equal(port, 6379);
}

/*
 * Defect: a hybrid connection without user metadata. src/relay.c
 * describe() then sends "<UserMetadata></UserMetadata>" (empty text), and
 * hc_agent_meta_endpoint answers HC_ESYNTAX "user metadata is not a JSON
 * array ..." where hc_agent.h promises HC_ENOTFOUND for "no such item"
 * (the agent's status then blames a malformed description instead of the
 * missing endpoint).
 */
static void regress_meta_empty_user_metadata(void **state)
{
    struct meta_result r = meta_of("");
    struct meta_result r2 = meta_of("  \n ");

    if (r.rc != HC_ENOTFOUND || r2.rc != HC_ENOTFOUND)
        fail_msg("<UserMetadata></UserMetadata>: got %d (%s), with white "
                 "space %d (%s); want HC_ENOTFOUND (%d)",
                 r.rc, r.err, r2.rc, r2.err, HC_ENOTFOUND);
}

int main(int argc, char **argv)
{
#define TMP_TEST(f) cmocka_unit_test_setup_teardown(f, tmp_setup, tmp_teardown)
    const struct CMUnitTest tests[] = {
        TMP_TEST(agent_sample_loads),
        TMP_TEST(agent_defaults),
        TMP_TEST(agent_every_setting),
        TMP_TEST(agent_long_connection_string),
        TMP_TEST(agent_endpoint_forms),
        TMP_TEST(agent_forward_bind),
        TMP_TEST(agent_error_unknown_key),
        TMP_TEST(agent_error_unknown_section),
        TMP_TEST(agent_error_missing_connection_string),
        TMP_TEST(agent_error_forward_without_bind),
        TMP_TEST(agent_error_bad_connection_string),
        TMP_TEST(agent_error_bad_endpoint),
        TMP_TEST(agent_error_bad_bind),
        TMP_TEST(agent_error_duplicate_name),
        TMP_TEST(agent_error_bad_name),
        TMP_TEST(agent_error_bad_hostname),
        TMP_TEST(regress_agent_hostname_without_hosts_file),
        TMP_TEST(agent_error_bad_numbers),
        TMP_TEST(agent_error_set_twice),
        TMP_TEST(agent_error_key_outside_section),
        TMP_TEST(agent_error_key_not_echoed),
        TMP_TEST(regress_agent_wrapped_connection_string_echoes_key),
        TMP_TEST(agent_errors_one_pass),
        TMP_TEST(agent_nothing_to_do),
        cmocka_unit_test(agent_missing_file),
        cmocka_unit_test(meta_relay_description),
        cmocka_unit_test(meta_escaped_and_plain),
        cmocka_unit_test(meta_numeric_entities),
        cmocka_unit_test(meta_other_items_first),
        cmocka_unit_test(meta_ipv6),
        cmocka_unit_test(meta_not_found),
        cmocka_unit_test(meta_bad_endpoint),
        cmocka_unit_test(meta_not_an_array),
        cmocka_unit_test(meta_truncated),
        cmocka_unit_test(meta_oom),
        cmocka_unit_test(regress_meta_empty_user_metadata),
    };
#undef TMP_TEST

    if (argc > 1)
        cmocka_set_test_filter(argv[1]);
    return cmocka_run_group_tests_name("agent_conf", tests, NULL, NULL);
}
