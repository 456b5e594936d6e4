/*
 * fuzz_proxy.c - the outbound proxy setting (hcm.ini's proxy and no_proxy,
 * or the https_proxy / no_proxy environment): hc_proxy_parse on the first
 * NUL-separated part of the input, hc_proxy_exempt with the second part as
 * the no_proxy list and the third (or the parsed proxy host) as the host.
 *
 * Checks: parse returns 0 or UV_EINVAL; on success the host is non-empty,
 * the port 1..65535 and auth empty or "Basic ..."; on error a reason is
 * given, and a password longer than any fixed message is never in it; exempt
 * returns 0 or 1, and "*" exempts every host.
 */
#include <strings.h>

#include <uv.h>

#include "fuzz_common.h"
#include "hc_proxy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_piece part[3];
    size_t np = fuzz_split(data, size, 0, part, 3);
    char *url = fuzz_cstr(part[0].p, part[0].len);
    char *no_proxy = np > 1 ? fuzz_cstr(part[1].p, part[1].len) : NULL;
    char *host = np > 2 ? fuzz_cstr(part[2].p, part[2].len) : NULL;
    char *err = malloc(200);
    struct hc_proxy p;
    int rc, ex;

    if (err == NULL)
        abort();
    err[0] = '\0';
    rc = hc_proxy_parse(url, &p, err, 200);
    FUZZ_CHECK(rc == 0 || rc == UV_EINVAL);
    if (rc == 0) {
        FUZZ_CHECK(memchr(p.host, '\0', sizeof(p.host)) != NULL);
        FUZZ_CHECK(p.host[0] != '\0');
        FUZZ_CHECK(p.port >= 1 && p.port <= 65535);
        FUZZ_CHECK(memchr(p.auth, '\0', sizeof(p.auth)) != NULL);
        FUZZ_CHECK(p.auth[0] == '\0' || strncmp(p.auth, "Basic ", 6) == 0);
    } else {
        FUZZ_CHECK(err[0] != '\0' && memchr(err, '\0', 200) != NULL);
        /* The password as written: after the first ':' of the userinfo,
         * up to the last '@' before any '/'. */
        if (strncasecmp(url, "http://", 7) == 0) {
            const char *rest = url + 7;
            size_t n = strcspn(rest, "/");
            const char *at = memrchr(rest, '@', n);
            const char *colon =
                at ? memchr(rest, ':', (size_t)(at - rest)) : NULL;
            if (colon != NULL && at - colon - 1 >= 64)
                FUZZ_CHECK(memmem(err, strlen(err), colon + 1,
                                  (size_t)(at - colon - 1)) == NULL);
        }
    }

    ex = hc_proxy_exempt(no_proxy, host ? host : (rc == 0 ? p.host : url));
    FUZZ_CHECK(ex == 0 || ex == 1);
    FUZZ_CHECK(hc_proxy_exempt(NULL, url) == 0);
    FUZZ_CHECK(hc_proxy_exempt("", url) == 0);
    FUZZ_CHECK(hc_proxy_exempt("*", url) == 1);
    if (no_proxy != NULL) {
        ex = hc_proxy_exempt(no_proxy, "relay.servicebus.windows.net");
        FUZZ_CHECK(ex == 0 || ex == 1);
    }
    free(err);
    free(host);
    free(no_proxy);
    free(url);
    return 0;
}
