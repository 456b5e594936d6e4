/*
 * sas.c - Shared Access Signature tokens: sign, parse, verify, scope, expiry.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <mbedtls/base64.h>
#include <mbedtls/constant_time.h>
#include <mbedtls/md.h>
#include <mbedtls/platform_util.h>

#include "hc_err.h"
#include "hc_mem.h"
#include "hc_sas.h"
#include "hc_url.h"

#define SAS_PREFIX "SharedAccessSignature"
#define SAS_PREFIX_LEN (sizeof(SAS_PREFIX) - 1)
#define SIG_LEN 32
#define SKN_MAX 256
/* 32 bytes are 44 base64 characters; allow each to be escaped. */
#define SIG_TEXT_MAX (44 * 3)

static unsigned char to_lower(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + ('a' - 'A')) : c;
}

static int equal_nocase(const char *a, const char *b, size_t len)
{
    size_t i;

    for (i = 0; i < len; i++)
        if (to_lower((unsigned char)a[i]) != to_lower((unsigned char)b[i]))
            return 0;
    return 1;
}

/*
 * HMAC-SHA256 of a || b with key as text. The md context holds state derived
 * from the key; mbedtls_md_free wipes it. Returns 0 or -1.
 */
static int hmac_sha256(const char *key, const char *a, size_t alen,
                       const char *b, size_t blen, uint8_t mac[SIG_LEN])
{
    const mbedtls_md_info_t *info;
    mbedtls_md_context_t ctx;
    int rc = -1;

    info = mbedtls_md_info_from_type(MBEDTLS_MD_SHA256);
    if (info == NULL)
        return -1;
    mbedtls_md_init(&ctx);
    if (mbedtls_md_setup(&ctx, info, 1) != 0)
        goto done;
    if (mbedtls_md_hmac_starts(&ctx, (const unsigned char *)key, strlen(key)) !=
        0)
        goto done;
    if (mbedtls_md_hmac_update(&ctx, (const unsigned char *)a, alen) != 0)
        goto done;
    if (mbedtls_md_hmac_update(&ctx, (const unsigned char *)b, blen) != 0)
        goto done;
    if (mbedtls_md_hmac_finish(&ctx, mac) != 0)
        goto done;
    rc = 0;
done:
    mbedtls_md_free(&ctx);
    return rc;
}

/* "\n" followed by se in decimal, into buf (at least 22 bytes). */
static size_t format_se(char *buf, size_t cap, uint64_t se)
{
    int n = snprintf(buf, cap, "\n%" PRIu64, se);
    return n > 0 ? (size_t)n : 0;
}

char *hc_sas_sign(const char *resource_uri, const char *key_name,
                  const char *key, uint64_t expiry)
{
    char se[24], b64[64];
    uint8_t mac[SIG_LEN];
    char *enc_uri = NULL, *enc_sig = NULL, *enc_skn = NULL, *tok = NULL;
    size_t se_len, b64_len, cap;

    enc_uri = hc_url_encode(resource_uri, strlen(resource_uri));
    if (enc_uri == NULL)
        goto done;
    se_len = format_se(se, sizeof(se), expiry);
    if (hmac_sha256(key, enc_uri, strlen(enc_uri), se, se_len, mac) != 0)
        goto done;
    if (mbedtls_base64_encode((unsigned char *)b64, sizeof(b64), &b64_len, mac,
                              sizeof(mac)) != 0)
        goto done;
    enc_sig = hc_url_encode(b64, b64_len);
    enc_skn = hc_url_encode(key_name, strlen(key_name));
    if (enc_sig == NULL || enc_skn == NULL)
        goto done;

    /* se + 1 skips the "\n" that only belongs in the string to sign. */
    cap = sizeof(SAS_PREFIX " sr=&sig=&se=&skn=") + strlen(enc_uri) +
          strlen(enc_sig) + strlen(se + 1) + strlen(enc_skn);
    tok = hc_malloc(cap);
    if (tok == NULL)
        goto done;
    snprintf(tok, cap, SAS_PREFIX " sr=%s&sig=%s&se=%s&skn=%s", enc_uri,
             enc_sig, se + 1, enc_skn);
done:
    hc_free(enc_uri);
    hc_free(enc_sig);
    hc_free(enc_skn);
    return tok;
}

char *hc_sas_audience(const char *host, const char *entity)
{
    const char *e = entity != NULL ? entity : "";
    size_t hlen = strlen(host), elen, cap, i;
    int bracket;
    char *out, *o;

    /* Take the host bare, then bracket it again if it is an IPv6 literal. */
    if (hlen >= 2 && host[0] == '[' && host[hlen - 1] == ']') {
        host++;
        hlen -= 2;
    }
    bracket = memchr(host, ':', hlen) != NULL;

    while (*e == '/')
        e++;
    elen = strlen(e);
    while (elen > 0 && e[elen - 1] == '/')
        elen--;

    cap = sizeof("http://[]//") + hlen + elen;
    out = hc_malloc(cap);
    if (out == NULL)
        return NULL;
    o = out;
    memcpy(o, "http://", 7);
    o += 7;
    if (bracket)
        *o++ = '[';
    for (i = 0; i < hlen; i++)
        *o++ = (char)to_lower((unsigned char)host[i]);
    if (bracket)
        *o++ = ']';
    *o++ = '/';
    if (elen > 0) {
        memcpy(o, e, elen);
        o += elen;
        *o++ = '/';
    }
    *o = '\0';
    return out;
}

static int is_b64_char(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
           (c >= '0' && c <= '9') || c == '+' || c == '/';
}

static int parse_sig(const char *v, size_t vlen, struct hc_sas_token *t)
{
    char text[SIG_TEXT_MAX + 1];
    ssize_t n;
    size_t i, pad = 0, olen = 0;

    if (vlen == 0 || vlen > SIG_TEXT_MAX)
        return HC_ESYNTAX;
    n = hc_url_decode(text, v, vlen, 0);
    if (n <= 0)
        return HC_ESYNTAX;
    for (i = 0; i < (size_t)n; i++) {
        unsigned char c = (unsigned char)text[i];
        /*
         * Base64 has no space, so a space here can only be a '+' that a
         * form decoder turned into one because the sender left it
         * unescaped in a query string.
         */
        if (c == ' ') {
            c = '+';
            text[i] = '+';
        }
        if (c == '=') {
            pad++;
        } else if (pad > 0 || !is_b64_char(c)) {
            /*
             * Checked here because mbedtls_base64_decode skips spaces and
             * line breaks, which a signature must not contain.
             */
            return HC_ESYNTAX;
        }
    }
    if (pad > 2)
        return HC_ESYNTAX;
    if (mbedtls_base64_decode(t->sig, sizeof(t->sig), &olen,
                              (const unsigned char *)text, (size_t)n) != 0 ||
        olen != SIG_LEN)
        return HC_ESYNTAX;
    t->sig_len = olen;
    return 0;
}

static int parse_se(const char *v, size_t vlen, uint64_t *se)
{
    uint64_t x = 0;
    size_t i;

    if (vlen == 0)
        return HC_ESYNTAX;
    for (i = 0; i < vlen; i++) {
        unsigned d;
        if (v[i] < '0' || v[i] > '9')
            return HC_ESYNTAX;
        d = (unsigned)(v[i] - '0');
        if (x > (UINT64_MAX - d) / 10)
            return HC_ESYNTAX;
        x = x * 10 + d;
    }
    *se = x;
    return 0;
}

static int parse_skn(const char *v, size_t vlen, struct hc_sas_token *t)
{
    char text[SKN_MAX * 3 + 1];
    ssize_t n;

    if (vlen == 0 || vlen > SKN_MAX * 3)
        return HC_ESYNTAX;
    n = hc_url_decode(text, v, vlen, 0);
    if (n <= 0 || n > SKN_MAX)
        return HC_ESYNTAX;
    memcpy(t->skn, text, (size_t)n + 1);
    return 0;
}

int hc_sas_parse(const char *token, size_t len, struct hc_sas_token *t)
{
    const char *p = token, *end = token + len;
    struct hc_query_param f;
    int have_sr = 0, have_sig = 0, have_se = 0, have_skn = 0;

    memset(t, 0, sizeof(*t));
    if (len <= SAS_PREFIX_LEN || !equal_nocase(p, SAS_PREFIX, SAS_PREFIX_LEN))
        return HC_ESYNTAX;
    p += SAS_PREFIX_LEN;
    if (*p != ' ')
        return HC_ESYNTAX;
    while (p < end && *p == ' ')
        p++;

    while (hc_query_next(&p, end, &f)) {
        const char *n = f.name;
        size_t nl = f.name_len;

        if (nl == 2 && memcmp(n, "sr", 2) == 0) {
            if (have_sr++ || f.value_len == 0)
                return HC_ESYNTAX;
            t->sr = f.value;
            t->sr_len = f.value_len;
        } else if (nl == 3 && memcmp(n, "sig", 3) == 0) {
            if (have_sig++ || parse_sig(f.value, f.value_len, t) != 0)
                return HC_ESYNTAX;
        } else if (nl == 2 && memcmp(n, "se", 2) == 0) {
            if (have_se++ || parse_se(f.value, f.value_len, &t->se) != 0)
                return HC_ESYNTAX;
        } else if (nl == 3 && memcmp(n, "skn", 3) == 0) {
            if (have_skn++ || parse_skn(f.value, f.value_len, t) != 0)
                return HC_ESYNTAX;
        }
        /* Other fields are ignored so that a future one does not break. */
    }
    if (!have_sr || !have_sig || !have_se || !have_skn)
        return HC_ESYNTAX;
    return 0;
}

int hc_sas_verify(const struct hc_sas_token *t, const char *key)
{
    char se[24];
    uint8_t mac[SIG_LEN];
    size_t se_len;
    int rc = HC_EAUTH;

    if (t->sig_len != SIG_LEN)
        return HC_EAUTH;
    se_len = format_se(se, sizeof(se), t->se);
    if (hmac_sha256(key, t->sr, t->sr_len, se, se_len, mac) == 0 &&
        mbedtls_ct_memcmp(mac, t->sig, SIG_LEN) == 0)
        rc = 0;
    /* The MAC we computed is a valid signature for this sr and se. */
    mbedtls_platform_zeroize(mac, sizeof(mac));
    return rc;
}

/* Compare two paths, dropping one leading and all trailing '/'. */
static int path_covers(const char *scope, const char *entity)
{
    size_t slen, elen;

    if (*scope == '/')
        scope++;
    slen = strlen(scope);
    while (slen > 0 && scope[slen - 1] == '/')
        slen--;
    while (*entity == '/')
        entity++;
    elen = strlen(entity);
    while (elen > 0 && entity[elen - 1] == '/')
        elen--;

    if (slen == 0)
        return 1;
    if (elen < slen || !equal_nocase(scope, entity, slen))
        return 0;
    return elen == slen || entity[slen] == '/';
}

int hc_sas_in_scope(const struct hc_sas_token *t, const char *host,
                    const char *entity_path)
{
    struct hc_url u;
    char *sr;
    size_t hlen;
    ssize_t n;
    int ok = 0;

    sr = hc_malloc(t->sr_len + 1);
    if (sr == NULL)
        return 0;
    n = hc_url_decode(sr, t->sr, t->sr_len, 0);
    if (n < 0 || hc_url_parse(sr, &u) != 0)
        goto done;

    hlen = strlen(host);
    if (hlen >= 2 && host[0] == '[' && host[hlen - 1] == ']') {
        host++;
        hlen -= 2;
    }
    if (strlen(u.host) == hlen && equal_nocase(u.host, host, hlen)) {
        /* The path of a URI is itself percent-encoded; decode it in place. */
        n = hc_url_decode(u.path, u.path, strlen(u.path), 0);
        if (n >= 0)
            ok = path_covers(u.path, entity_path ? entity_path : "");
    }
    hc_url_free(&u);
done:
    hc_free(sr);
    return ok;
}

int hc_sas_check_expiry(const struct hc_sas_token *t, uint64_t now,
                        uint64_t skew)
{
    /* Written as a difference so se + skew cannot overflow. */
    if (now <= t->se || now - t->se <= skew)
        return 0;
    return HC_EEXPIRED;
}
