#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <mbedtls/base64.h>
#include <mbedtls/platform_util.h>
#include <uv.h>

#include "hc_conf.h"
#include "hc_proxy.h"
#include "hc_url.h"

int hc_proxy_parse(const char *url, struct hc_proxy *p, char *err,
                   size_t errlen)
{
    const char *rest, *at, *slash;
    char hostport[300], cred[300];
    size_t n;

    memset(p, 0, sizeof(*p));
    if (strncasecmp(url, "http://", 7) != 0) {
        snprintf(err, errlen, "proxy: expected http://[user:pass@]HOST:PORT");
        return UV_EINVAL;
    }
    rest = url + 7;
    slash = strchr(rest, '/');
    n = slash ? (size_t)(slash - rest) : strlen(rest);
    if (slash != NULL && slash[1] != '\0') {
        snprintf(err, errlen, "proxy: no path allowed after HOST:PORT");
        return UV_EINVAL;
    }
    at = memrchr(rest, '@', n);
    if (at != NULL) {
        const char *colon = memchr(rest, ':', (size_t)(at - rest));
        char user[200], pass[200];
        size_t ul = colon ? (size_t)(colon - rest) : (size_t)(at - rest);
        size_t pl = colon ? (size_t)(at - colon - 1) : 0;
        size_t olen;
        if (ul >= sizeof(user) || pl >= sizeof(pass) ||
            hc_url_decode(user, rest, ul, 0) < 0 ||
            (colon && hc_url_decode(pass, colon + 1, pl, 0) < 0)) {
            snprintf(err, errlen, "proxy: bad user name or password");
            return UV_EINVAL;
        }
        if (!colon)
            pass[0] = '\0';
        snprintf(cred, sizeof(cred), "%s:%s", user, pass);
        mbedtls_platform_zeroize(pass, sizeof(pass));
        memcpy(p->auth, "Basic ", 6);
        if (mbedtls_base64_encode(
                (unsigned char *)p->auth + 6, sizeof(p->auth) - 6, &olen,
                (const unsigned char *)cred, strlen(cred)) != 0) {
            mbedtls_platform_zeroize(cred, sizeof(cred));
            snprintf(err, errlen, "proxy: credentials too long");
            return UV_EINVAL;
        }
        mbedtls_platform_zeroize(cred, sizeof(cred));
        n -= (size_t)(at + 1 - rest);
        rest = at + 1;
    }
    if (n >= sizeof(hostport)) {
        snprintf(err, errlen, "proxy: host too long");
        return UV_EINVAL;
    }
    memcpy(hostport, rest, n);
    hostport[n] = '\0';
    if (hc_conf_hostport(hostport, p->host, sizeof(p->host), &p->port) != 0 ||
        p->port == 0) {
        mbedtls_platform_zeroize(p->auth, sizeof(p->auth));
        snprintf(err, errlen, "proxy: expected HOST:PORT after http://");
        return UV_EINVAL;
    }
    return 0;
}

int hc_proxy_exempt(const char *no_proxy, const char *host)
{
    const char *s = no_proxy;
    size_t hl = strlen(host);

    if (s == NULL)
        return 0;
    while (*s) {
        const char *e = strchr(s, ',');
        size_t n = e ? (size_t)(e - s) : strlen(s);
        while (n > 0 && isspace((unsigned char)*s)) {
            s++;
            n--;
        }
        while (n > 0 && isspace((unsigned char)s[n - 1]))
            n--;
        if (n == 1 && s[0] == '*')
            return 1;
        if (n > 0 && s[0] == '.') {
            s++;
            n--;
        }
        if (n > 0 && (hl == n || (hl > n && host[hl - n - 1] == '.')) &&
            strncasecmp(host + hl - n, s, n) == 0)
            return 1;
        if (e == NULL)
            break;
        s = e + 1;
    }
    return 0;
}
