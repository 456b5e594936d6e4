/*
 * hcmd - the Hybrid Connection Manager agent. Glue only: flags, the
 * configuration, signals, the loop.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <limits.h>
#include <sys/stat.h>

#include <jansson.h>
#include <mbedtls/version.h>
#include <uv.h>
#include <wslay/wslayver.h>

#include "hc_agent.h"
#include "hc_cli.h"
#include "hc_conf.h"
#include "hc_control.h"
#include "hc_notify.h"
#include "hc_log.h"
#include "hc_mem.h"
#include "hc_version.h"

#define DEFAULT_CONF "/etc/hcmd/hcm.ini"

static const char usage[] =
    "usage: hcmd [-c FILE] [-v] [--strict]  run the agent in the "
    "foreground\n"
    "       hcmd [-c FILE] --check          validate the configuration\n"
    "       hcmd add|remove|list|show ...   manage connections (--help "
    "each)\n"
    "       hcmd test NAME|HOST:PORT        diagnostics from this host\n"
    "       hcmd version               versions of hcmd and its libraries\n"
    "FILE defaults to " DEFAULT_CONF ".\n";

static struct hc_agent *agent;
static const char *conf_path;
static int verbose;
static int signals_seen;
static uv_signal_t sigint, sigterm, sighup;
static struct hc_control *control;
static char *conf_control_socket, *conf_control_group;
static uv_timer_t watchdog;

static void shutdown_daemon(void)
{
    hc_notify("STOPPING=1");
    hc_agent_stop(agent);
    hc_control_stop(control);
    control = NULL;
    uv_timer_stop(&watchdog);
    uv_unref((uv_handle_t *)&sigint);
    uv_unref((uv_handle_t *)&sigterm);
}

/* Read the file again and apply it; a bad file changes nothing. */
static int reload(const char *why)
{
    struct hc_agent_conf *conf;
    char *errors = NULL, err[400];
    enum hc_log_level level;
    int rc = hc_agent_conf_load(conf_path, &conf, &errors);

    if (rc != 0) {
        hc_log_err("%s: %s has errors; the running configuration stays", why,
                   conf_path);
        hc_log_lines(HC_LOG_ERR, errors);
        hc_free(errors);
        return rc;
    }
    hc_free(errors);
    hc_notify("RELOADING=1");
    level = verbose ? HC_LOG_DEBUG : (enum hc_log_level)conf->log_level;
    rc = hc_agent_reload(agent, conf, err, sizeof(err));
    if (rc == 0)
        hc_log_set_level(level); /* only a configuration that took */
    hc_notify("READY=1\nSTATUS=configuration reloaded");
    if (rc != 0)
        hc_log_err("%s: %s; the running configuration stays", why, err);
    else
        hc_log_info("%s: configuration reloaded from %s", why, conf_path);
    return rc;
}

static void on_signal(uv_signal_t *s, int signum)
{
    if (signum == SIGHUP) {
        reload("SIGHUP");
        return;
    }
    if (signals_seen++ > 0) {
        hc_log_warn("second signal: exiting now");
        exit(1);
    }
    hc_log_info("%s: shutting down", signum == SIGINT ? "SIGINT" : "SIGTERM");
    shutdown_daemon();
}

/* The control socket: "status" and "reload". */
static char *on_request(const char *req, void *data)
{
    if (strcmp(req, "status") == 0)
        return hc_agent_status_json(agent);
    if (strcmp(req, "reload") == 0) {
        int rc = reload("reload request");
        return hc_strdup(rc == 0 ? "{\"ok\":true}\n"
                                 : "{\"ok\":false,\"error\":\"the "
                                   "configuration has errors; see the "
                                   "daemon's log\"}\n");
    }
    return hc_strdup("{\"ok\":false,\"error\":\"unknown request\"}\n");
}

static void on_watchdog(uv_timer_t *t)
{
    hc_notify("WATCHDOG=1");
}

int main(int argc, char **argv)
{
    const char *path = DEFAULT_CONF;
    int check = 0, strict = 0;
    static char real[PATH_MAX];
    struct hc_agent_conf *conf;
    char *errors = NULL;
    char err[512];
    uv_loop_t *loop;
    int rc;

    hc_log_init("hcmd");
    /* "hcmd -c FILE list" reads as "hcmd list -c FILE". */
    if (argc > 3 && strcmp(argv[1], "-c") == 0 &&
        (hc_cli_is_command(argv[3]) || strcmp(argv[3], "test") == 0)) {
        static char dash_c[] = "-c";
        char *file = argv[2];
        argv[1] = argv[3];
        argv[2] = dash_c;
        argv[3] = file;
    }
    if (argc > 1 && hc_cli_is_command(argv[1]))
        return hc_cli_main(argc, argv);
    if (argc > 1 && strcmp(argv[1], "test") == 0)
        return hc_diag_main(argc, argv);
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-c") == 0 && i + 1 < argc) {
            path = argv[++i];
        } else if (strcmp(argv[i], "--check") == 0) {
            check = 1;
        } else if (strcmp(argv[i], "--strict") == 0) {
            strict = 1;
        } else if (strcmp(argv[i], "-v") == 0) {
            verbose = 1;
        } else if (strcmp(argv[i], "-h") == 0 ||
                   strcmp(argv[i], "--help") == 0) {
            fputs(usage, stdout);
            return 0;
        } else if (strcmp(argv[i], "version") == 0 ||
                   strcmp(argv[i], "--version") == 0) {
            printf("hcmd %s (libuv %s, %s, wslay %s, jansson %s)\n", HC_VERSION,
                   uv_version_string(), MBEDTLS_VERSION_STRING_FULL,
                   WSLAY_VERSION, JANSSON_VERSION);
            return 0;
        } else {
            fprintf(stderr, "hcmd: unknown argument '%s'\n%s", argv[i], usage);
            return 2;
        }
    }
    /* Absolute, so "hcmd list" can tell it is the same file. */
    if (realpath(path, real) != NULL)
        path = real;
    conf_path = path;
    rc = hc_agent_conf_load(path, &conf, &errors);
    if (rc != 0) {
        /* Under journald every line needs its priority. */
        if (getenv("JOURNAL_STREAM") != NULL && !check)
            hc_log_lines(HC_LOG_ERR,
                         errors ? errors : "cannot load configuration");
        else
            fputs(errors ? errors : "hcmd: cannot load configuration\n",
                  stderr);
        hc_free(errors);
        return 1;
    }
    hc_free(errors);
    if (hc_conf_check_secrecy(path, strict) != 0) {
        hc_agent_conf_free(conf);
        return 1;
    }
    if (check) {
        printf("%s: configuration OK\n", path);
        hc_agent_conf_free(conf);
        return 0;
    }
    hc_log_set_level(verbose ? HC_LOG_DEBUG
                             : (enum hc_log_level)conf->log_level);
    signal(SIGPIPE, SIG_IGN);
    loop = uv_default_loop();
    /* The agent owns conf from here on; keep what main still needs. */
    if (conf->control_socket != NULL)
        conf_control_socket = hc_xstrdup(conf->control_socket);
    if (conf->control_group != NULL)
        conf_control_group = hc_xstrdup(conf->control_group);
    rc = hc_agent_new(&agent, loop, conf, err, sizeof(err));
    if (rc != 0) {
        hc_log_err("%s", err);
        return 1;
    }
    uv_signal_init(loop, &sigint);
    uv_signal_init(loop, &sigterm);
    uv_signal_init(loop, &sighup);
    uv_signal_start(&sigint, on_signal, SIGINT);
    uv_signal_start(&sigterm, on_signal, SIGTERM);
    uv_signal_start(&sighup, on_signal, SIGHUP);
    uv_unref((uv_handle_t *)&sighup);
    hc_log_info("hcmd %s starting with %s", HC_VERSION, path);
    uv_timer_init(loop, &watchdog);
    {
        /* First: a second instance must stop before it touches anything. */
        char sock[256];
        if (conf_control_socket != NULL)
            snprintf(sock, sizeof(sock), "%s", conf_control_socket);
        else
            hc_control_default_path(sock, sizeof(sock));
        rc = hc_control_start(&control, loop, sock, conf_control_group,
                              on_request, NULL, err, sizeof(err));
    }
    if (rc == 0)
        rc = hc_agent_start(agent, err, sizeof(err));
    if (rc != 0) {
        hc_log_err("%s", err);
        shutdown_daemon();
    } else {
        uint64_t wd = hc_notify_watchdog_ms();
        if (wd > 0)
            uv_timer_start(&watchdog, on_watchdog, wd / 2, wd / 2);
        hc_notify("READY=1\nSTATUS=running");
    }
    uv_run(loop, UV_RUN_DEFAULT);
    uv_close((uv_handle_t *)&sighup, NULL);
    uv_close((uv_handle_t *)&sigint, NULL);
    uv_close((uv_handle_t *)&sigterm, NULL);
    uv_close((uv_handle_t *)&watchdog, NULL);
    uv_run(loop, UV_RUN_DEFAULT);
    hc_agent_free(agent);
    hc_free(conf_control_socket);
    hc_free(conf_control_group);
    uv_loop_close(loop);
    hc_log_info("stopped");
    return rc == 0 ? 0 : 1;
}
