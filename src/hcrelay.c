/*
 * hcrelay - a single-node relay speaking the Azure Relay Hybrid Connections
 * protocol. Glue only: flags, configuration, signals, the loop.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <mbedtls/version.h>
#include <uv.h>
#include <wslay/wslayver.h>
#include <jansson.h>

#include "hc_conf.h"
#include "hc_connstr.h"
#include "hc_err.h"
#include "hc_log.h"
#include "hc_mem.h"
#include "hc_notify.h"
#include "hc_relay.h"
#include "hc_version.h"

static const char usage[] =
    "usage: hcrelay -c FILE [-v] [--strict]  run the relay in the foreground\n"
    "       hcrelay -c FILE --check          validate the configuration\n"
    "       hcrelay -c FILE connection-string HC RULE [--secondary]\n"
    "                                        print a connection string\n"
    "       hcrelay version                  versions of hcrelay and its "
    "libraries\n";

static struct hc_relay *relay;
static const char *conf_path;
static int verbose;
static int signals_seen;
static uv_signal_t sigint, sigterm, sighup;
static uv_timer_t watchdog;

static void on_watchdog(uv_timer_t *t)
{
    hc_notify("WATCHDOG=1");
}

static void on_signal(uv_signal_t *s, int signum)
{
    if (signum == SIGHUP) {
        struct hc_relay_conf *conf;
        char *errors = NULL;
        if (hc_relay_conf_load(conf_path, &conf, &errors) != 0) {
            /* Keep the running configuration; say why, line by line. */
            hc_log_err("SIGHUP: %s has errors; the running configuration "
                       "stays",
                       conf_path);
            hc_log_lines(HC_LOG_ERR, errors);
            hc_free(errors);
            return;
        }
        hc_free(errors);
        hc_notify("RELOADING=1");
        hc_log_set_level(verbose ? HC_LOG_DEBUG
                                 : (enum hc_log_level)conf->log_level);
        hc_relay_reload(relay, conf);
        hc_notify("READY=1\nSTATUS=configuration reloaded");
        hc_log_info("SIGHUP: configuration reloaded from %s", conf_path);
        return;
    }
    if (signals_seen++ > 0) {
        hc_log_warn("second signal: exiting now");
        exit(1);
    }
    hc_log_info("%s: shutting down", signum == SIGINT ? "SIGINT" : "SIGTERM");
    hc_notify("STOPPING=1");
    hc_relay_stop(relay);
    uv_timer_stop(&watchdog);
    /* Keep listening for a second signal, but let the loop end. */
    uv_unref((uv_handle_t *)&sigint);
    uv_unref((uv_handle_t *)&sigterm);
}

static int print_connection_string(struct hc_relay_conf *conf,
                                   const char *hc_name, const char *rule_name,
                                   int secondary)
{
    struct hc_relay_hc *hc = hc_relay_conf_find_hc(conf, hc_name);
    struct hc_relay_rule *rule = NULL;
    const char *rule_hc = NULL;
    char spec[600];
    char *s;

    if (hc == NULL) {
        fprintf(stderr, "hcrelay: no hybrid connection named %s\n", hc_name);
        return 1;
    }
    snprintf(spec, sizeof(spec), "%s/%s", hc->name, rule_name);
    rule = hc_relay_conf_find_rule(conf, spec, &rule_hc);
    if (rule == NULL)
        rule = hc_relay_conf_find_rule(conf, rule_name, &rule_hc);
    if (rule == NULL) {
        fprintf(stderr, "hcrelay: no rule %s on %s or on the namespace\n",
                rule_name, hc->name);
        return 1;
    }
    if (secondary && rule->secondary_key == NULL) {
        fprintf(stderr, "hcrelay: rule %s has no secondary_key\n", rule_name);
        return 1;
    }
    if (conf->listen_port == 0) {
        fprintf(stderr, "hcrelay: listen names port 0; a connection string "
                        "needs the real port\n");
        return 1;
    }
    s = hc_connstr_format(conf->hostname, conf->listen_port, rule->name,
                          secondary ? rule->secondary_key : rule->primary_key,
                          hc->name);
    if (s == NULL) {
        fprintf(stderr, "hcrelay: out of memory\n");
        return 1;
    }
    printf("%s\n", s);
    hc_free_secret_str(s);
    return 0;
}

int main(int argc, char **argv)
{
    const char *path = NULL;
    int check = 0, strict = 0, i;
    struct hc_relay_conf *conf;
    char *errors = NULL;
    char err[512];
    uv_loop_t *loop;
    int rc;

    hc_log_init("hcrelay");
    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-c") == 0 && i + 1 < argc) {
            path = argv[++i];
        } else if (strcmp(argv[i], "--strict") == 0) {
            strict = 1;
        } else if (strcmp(argv[i], "--check") == 0) {
            check = 1;
        } else if (strcmp(argv[i], "-v") == 0) {
            verbose = 1;
        } else if (strcmp(argv[i], "-h") == 0 ||
                   strcmp(argv[i], "--help") == 0) {
            fputs(usage, stdout);
            return 0;
        } else if (strcmp(argv[i], "version") == 0 ||
                   strcmp(argv[i], "--version") == 0) {
            printf("hcrelay %s (libuv %s, %s, wslay %s, jansson %s)\n",
                   HC_VERSION, uv_version_string(), MBEDTLS_VERSION_STRING_FULL,
                   WSLAY_VERSION, JANSSON_VERSION);
            return 0;
        } else if (strcmp(argv[i], "connection-string") == 0) {
            break;
        } else {
            fprintf(stderr, "hcrelay: unknown argument '%s'\n%s", argv[i],
                    usage);
            return 2;
        }
    }
    if (path == NULL) {
        fprintf(stderr, "hcrelay: -c FILE is required\n%s", usage);
        return 2;
    }
    rc = hc_relay_conf_load(path, &conf, &errors);
    if (rc != 0) {
        if (getenv("JOURNAL_STREAM") != NULL && !check)
            hc_log_lines(HC_LOG_ERR,
                         errors ? errors : "cannot load configuration");
        else
            fputs(errors ? errors : "hcrelay: cannot load configuration\n",
                  stderr);
        hc_free(errors);
        return 1;
    }
    hc_free(errors);
    if (hc_conf_check_secrecy(path, strict) != 0) {
        hc_relay_conf_free(conf);
        return 1;
    }
    if (i < argc) {
        int secondary = 0;
        if (argc - i < 3 || argc - i > 4 ||
            (argc - i == 4 && strcmp(argv[i + 3], "--secondary") != 0)) {
            fprintf(stderr, "hcrelay: usage: hcrelay -c FILE "
                            "connection-string HC RULE [--secondary]\n");
            hc_relay_conf_free(conf);
            return 2;
        }
        secondary = argc - i == 4;
        rc = print_connection_string(conf, argv[i + 1], argv[i + 2], secondary);
        hc_relay_conf_free(conf);
        return rc;
    }
    if (check) {
        printf("%s: configuration OK\n", path);
        hc_relay_conf_free(conf);
        return 0;
    }
    conf_path = path;
    hc_log_set_level(verbose ? HC_LOG_DEBUG
                             : (enum hc_log_level)conf->log_level);
    signal(SIGPIPE, SIG_IGN);
    loop = uv_default_loop();
    rc = hc_relay_new(&relay, loop, conf, err, sizeof(err));
    if (rc != 0) {
        hc_log_err("%s", err);
        return 1;
    }
    rc = hc_relay_start(relay, err, sizeof(err));
    if (rc != 0) {
        hc_log_err("%s", err);
        hc_relay_stop(relay);
        uv_run(loop, UV_RUN_DEFAULT);
        hc_relay_free(relay);
        return 1;
    }
    uv_signal_init(loop, &sigint);
    uv_signal_init(loop, &sigterm);
    uv_signal_init(loop, &sighup);
    uv_signal_start(&sigint, on_signal, SIGINT);
    uv_signal_start(&sigterm, on_signal, SIGTERM);
    uv_signal_start(&sighup, on_signal, SIGHUP);
    uv_unref((uv_handle_t *)&sighup);
    uv_timer_init(loop, &watchdog);
    if (hc_notify_watchdog_ms() > 0)
        uv_timer_start(&watchdog, on_watchdog, hc_notify_watchdog_ms() / 2,
                       hc_notify_watchdog_ms() / 2);
    hc_notify("READY=1\nSTATUS=listening");
    hc_log_info("hcrelay %s listening on %s:%d (wss), namespace %s", HC_VERSION,
                conf->listen_host, hc_relay_port(relay), conf->hostname);
    uv_run(loop, UV_RUN_DEFAULT);
    uv_close((uv_handle_t *)&sighup, NULL);
    uv_close((uv_handle_t *)&sigint, NULL);
    uv_close((uv_handle_t *)&sigterm, NULL);
    uv_close((uv_handle_t *)&watchdog, NULL);
    uv_run(loop, UV_RUN_DEFAULT);
    hc_relay_free(relay);
    uv_loop_close(loop);
    hc_log_info("stopped");
    return 0;
}
