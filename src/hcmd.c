/*
 * hcmd - the Hybrid Connection Manager agent. Glue only.
 */
#include <stdio.h>
#include <string.h>

#include <jansson.h>
#include <mbedtls/version.h>
#include <uv.h>
#include <wslay/wslayver.h>

#include "hc_version.h"

static const char usage[] =
    "usage: hcmd version       versions of hcmd and its libraries\n"
    "       hcmd --help        this text\n";

int main(int argc, char **argv)
{
    if (argc == 2 && (strcmp(argv[1], "version") == 0 ||
                      strcmp(argv[1], "--version") == 0)) {
        printf("hcmd %s (libuv %s, %s, wslay %s, jansson %s)\n", HC_VERSION,
               uv_version_string(), MBEDTLS_VERSION_STRING_FULL,
               WSLAY_VERSION, JANSSON_VERSION);
        return 0;
    }
    if (argc == 2 &&
        (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        fputs(usage, stdout);
        return 0;
    }
    fprintf(stderr, "hcmd: the agent is not built yet in this version\n%s",
            usage);
    return 2;
}
