/*
 * hc_proxy.h - the outbound HTTP proxy setting: "proxy" in [hcmd], else
 * https_proxy / HTTPS_PROXY, with no_proxy / NO_PROXY exceptions.
 */
#ifndef HC_PROXY_H
#define HC_PROXY_H

#include <stddef.h>

#include "hc_conn.h"

/*
 * Parse "http://[user:pass@]HOST:PORT[/]" (user and pass percent-encoded)
 * into p. Returns 0, or UV_EINVAL with a one-line reason in err that never
 * contains the password.
 */
int hc_proxy_parse(const char *url, struct hc_proxy *p, char *err,
                   size_t errlen);
/*
 * Does no_proxy (comma-separated: "*", host names, ".domain" or "domain"
 * suffixes, IP addresses; NULL or empty: none) exempt host? 1 or 0.
 */
int hc_proxy_exempt(const char *no_proxy, const char *host);

#endif
