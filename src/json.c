/*
 * json.c - building and parsing control-channel messages with jansson.
 *
 * jansson allocates its own nodes through its own allocator; everything this
 * file hands to the caller comes from hc_malloc.
 */
#include <stdint.h>
#include <string.h>

#include <jansson.h>
#include <mbedtls/platform_util.h>
#include <uv.h>

#include "hc_err.h"
#include "hc_json.h"
#include "hc_mem.h"

static unsigned char ascii_lower(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c - 'A' + 'a') : c;
}

static int ascii_caseeq(const char *a, size_t alen, const char *b, size_t blen)
{
    size_t i;

    if (alen != blen)
        return 0;
    for (i = 0; i < alen; i++)
        if (ascii_lower((unsigned char)a[i]) !=
            ascii_lower((unsigned char)b[i]))
            return 0;
    return 1;
}

/*
 * Whether s[0..len) is UTF-8 as jansson accepts it: shortest forms only, no
 * surrogates, nothing above U+10FFFF. NUL is fine (jansson escapes it).
 */
static int utf8_valid(const unsigned char *s, size_t len)
{
    size_t i = 0;

    while (i < len) {
        unsigned char c = s[i];
        size_t k, n;
        uint32_t cp;

        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xc2 && c <= 0xdf) {
            n = 1;
            cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            n = 2;
            cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            n = 3;
            cp = c & 0x07;
        } else {
            return 0;
        }
        if (len - i - 1 < n)
            return 0;
        for (k = 1; k <= n; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return 0;
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
            cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return 0;
        i += n + 1;
    }
    return 1;
}

/*
 * s[0..len) as valid UTF-8: s itself when it already is (*tmp = NULL), else a
 * Latin-1 to UTF-8 conversion in *tmp (hc_malloc'd, the caller frees it).
 * Returns NULL when memory is out.
 */
static const char *as_utf8(const char *s, size_t len, char **tmp,
                           size_t *out_len)
{
    size_t i, o = 0;
    char *d;

    *tmp = NULL;
    if (utf8_valid((const unsigned char *)s, len)) {
        *out_len = len;
        return s;
    }
    d = hc_malloc(2 * len + 1);
    if (d == NULL)
        return NULL;
    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];

        if (c < 0x80) {
            d[o++] = (char)c;
        } else {
            d[o++] = (char)(0xc0 | (c >> 6));
            d[o++] = (char)(0x80 | (c & 0x3f));
        }
    }
    d[o] = '\0';
    *tmp = d;
    *out_len = o;
    return d;
}

/* A new JSON string for s[0..len) (see as_utf8); NULL when memory is out. */
static json_t *str_new(const char *s, size_t len)
{
    char *tmp;
    size_t n;
    const char *u = as_utf8(s, len, &tmp, &n);
    json_t *v;

    if (u == NULL)
        return NULL;
    v = json_stringn(u, n);
    hc_free(tmp);
    return v;
}

/* obj[key[0..klen)] = v, stealing v (also on failure); 0 or -1. */
static int set_new(json_t *obj, const char *key, size_t klen, json_t *v)
{
    char *tmp;
    size_t n;
    const char *u;
    int rc;

    if (v == NULL)
        return -1;
    u = as_utf8(key, klen, &tmp, &n);
    if (u == NULL) {
        json_decref(v);
        return -1;
    }
    rc = json_object_setn_new(obj, u, n, v);
    hc_free(tmp);
    return rc;
}

static int set_cstr(json_t *obj, const char *key, const char *s)
{
    return set_new(obj, key, strlen(key), str_new(s, strlen(s)));
}

/*
 * Wipe the bytes of a jansson string before it is freed. jansson's storage is
 * plain heap memory that the node owns, so writing through the cast is fine.
 */
static void wipe_json_string(json_t *v)
{
    if (json_is_string(v))
        mbedtls_platform_zeroize((void *)(uintptr_t)json_string_value(v),
                                 json_string_length(v));
}

/*
 * root as compact JSON in a hc_malloc'd, NUL-terminated buffer; NULL when
 * memory is out. secret: wipe the buffer if it has to be thrown away.
 */
static char *dump(const json_t *root, int secret)
{
    const size_t flags = JSON_COMPACT | JSON_PRESERVE_ORDER;
    size_t need = json_dumpb(root, NULL, 0, flags);
    char *out;

    if (need == 0)
        return NULL;
    out = hc_malloc(need + 1);
    if (out == NULL)
        return NULL;
    if (json_dumpb(root, out, need, flags) != need) {
        if (secret)
            hc_free_secret(out, need + 1);
        else
            hc_free(out);
        return NULL;
    }
    out[need] = '\0';
    return out;
}

/*
 * The value of header i joined with every later header of the same name, as
 * a new JSON string; NULL when memory is out.
 */
static json_t *joined_value(const struct hc_http_header *hdrs, size_t n,
                            size_t i)
{
    const struct hc_http_header *a = &hdrs[i];
    size_t j, total = a->value_len, o;
    char *buf;
    json_t *v;

    for (j = i + 1; j < n; j++)
        if (ascii_caseeq(a->name, a->name_len, hdrs[j].name, hdrs[j].name_len))
            total += 2 + hdrs[j].value_len;
    if (total == a->value_len)
        return str_new(a->value, a->value_len);

    buf = hc_malloc(total);
    if (buf == NULL)
        return NULL;
    memcpy(buf, a->value, a->value_len);
    o = a->value_len;
    for (j = i + 1; j < n; j++) {
        if (!ascii_caseeq(a->name, a->name_len, hdrs[j].name, hdrs[j].name_len))
            continue;
        memcpy(buf + o, ", ", 2);
        memcpy(buf + o + 2, hdrs[j].value, hdrs[j].value_len);
        o += 2 + hdrs[j].value_len;
    }
    v = str_new(buf, total);
    hc_free(buf);
    return v;
}

/* Whether a header before i has the same name as header i. */
static int seen_before(const struct hc_http_header *hdrs, size_t i)
{
    size_t j;

    for (j = 0; j < i; j++)
        if (ascii_caseeq(hdrs[i].name, hdrs[i].name_len, hdrs[j].name,
                         hdrs[j].name_len))
            return 1;
    return 0;
}

char *hc_json_accept(const char *address, const char *id,
                     const struct hc_http_header *hdrs, size_t n,
                     const char *remote_addr, int remote_port)
{
    json_t *root, *acc, *ch, *re;
    char *out = NULL;
    size_t i;

    root = json_object();
    if (root == NULL)
        return NULL;
    /* Each set_new steals its value, so on failure nothing leaks and the
     * whole tree goes with root. */
    acc = json_object();
    if (set_new(root, "accept", 6, acc) != 0)
        goto done;
    if (set_cstr(acc, "address", address) != 0 || set_cstr(acc, "id", id) != 0)
        goto done;
    ch = json_object();
    if (set_new(acc, "connectHeaders", 14, ch) != 0)
        goto done;
    for (i = 0; i < n; i++) {
        if (seen_before(hdrs, i))
            continue;
        if (set_new(ch, hdrs[i].name, hdrs[i].name_len,
                    joined_value(hdrs, n, i)) != 0)
            goto done;
    }
    if (remote_addr != NULL) {
        re = json_object();
        if (set_new(acc, "remoteEndpoint", 14, re) != 0)
            goto done;
        if (set_cstr(re, "address", remote_addr) != 0 ||
            set_new(re, "port", 4, json_integer(remote_port)) != 0)
            goto done;
    }
    out = dump(root, 0);
done:
    json_decref(root);
    return out;
}

char *hc_json_renew_token(const char *token)
{
    json_t *root, *rt, *tok;
    char *out = NULL;

    root = json_object();
    if (root == NULL)
        return NULL;
    rt = json_object();
    if (set_new(root, "renewToken", 10, rt) != 0)
        goto done;
    tok = str_new(token, strlen(token));
    if (tok == NULL)
        goto done;
    json_incref(tok); /* kept to wipe it after the dump */
    if (set_new(rt, "token", 5, tok) == 0)
        out = dump(root, 1);
    wipe_json_string(tok);
    json_decref(tok);
done:
    json_decref(root);
    return out;
}

/*
 * Copy the string member name of obj into *out. Absent or null: HC_ESYNTAX
 * when required, else 0 with *out left NULL. Not a string: HC_ESYNTAX.
 * UV_ENOMEM when memory is out.
 */
static int get_str(const json_t *obj, const char *name, int required,
                   char **out)
{
    json_t *v = json_object_get(obj, name);

    if (v == NULL || json_is_null(v))
        return required ? HC_ESYNTAX : 0;
    if (!json_is_string(v))
        return HC_ESYNTAX;
    *out = hc_strndup(json_string_value(v), json_string_length(v));
    return *out != NULL ? 0 : UV_ENOMEM;
}

/*
 * An integer in [min, max] given as a JSON integer or as a string of 1 to 9
 * decimal digits (no sign, no spaces). 0 with *out set, or HC_ESYNTAX.
 */
static int get_int(const json_t *v, json_int_t min, json_int_t max, int *out)
{
    json_int_t x = 0;

    if (json_is_integer(v)) {
        x = json_integer_value(v);
    } else if (json_is_string(v)) {
        const char *s = json_string_value(v);
        size_t i, n = json_string_length(v);

        if (n == 0 || n > 9)
            return HC_ESYNTAX;
        for (i = 0; i < n; i++) {
            if (s[i] < '0' || s[i] > '9')
                return HC_ESYNTAX;
            x = x * 10 + (s[i] - '0');
        }
    } else {
        return HC_ESYNTAX;
    }
    if (x < min || x > max)
        return HC_ESYNTAX;
    *out = (int)x;
    return 0;
}

/* The optional boolean "body": absent or null leaves has_body 0. */
static int get_body(const json_t *obj, struct hc_ctl_msg *m)
{
    json_t *v = json_object_get(obj, "body");

    if (v == NULL || json_is_null(v))
        return 0;
    if (!json_is_boolean(v))
        return HC_ESYNTAX;
    m->has_body = 1;
    m->body = json_is_true(v);
    return 0;
}

/* The optional object of string headers obj[name] into m->headers. */
static int get_headers(const json_t *obj, const char *name,
                       struct hc_ctl_msg *m)
{
    json_t *h = json_object_get(obj, name), *v;
    const char *key;
    size_t n;

    if (h == NULL || json_is_null(h))
        return 0;
    if (!json_is_object(h))
        return HC_ESYNTAX;
    /* Check every value before allocating anything. */
    json_object_foreach(h, key, v)
    {
        if (!json_is_string(v))
            return HC_ESYNTAX;
    }
    n = json_object_size(h);
    if (n == 0)
        return 0;
    m->headers = hc_calloc(n, sizeof(*m->headers));
    if (m->headers == NULL)
        return UV_ENOMEM;
    json_object_foreach(h, key, v)
    {
        struct hc_ctl_header *hd = &m->headers[m->nheaders++];

        hd->name = hc_strdup(key);
        hd->value = hc_strndup(json_string_value(v), json_string_length(v));
        if (hd->name == NULL || hd->value == NULL)
            return UV_ENOMEM;
    }
    return 0;
}

/* remoteEndpoint is informational: whatever is malformed in it is dropped. */
static int get_remote(const json_t *obj, struct hc_ctl_msg *m)
{
    json_t *re = json_object_get(obj, "remoteEndpoint"), *a;
    int port;

    if (!json_is_object(re))
        return 0;
    if (get_int(json_object_get(re, "port"), 0, 65535, &port) == 0)
        m->remote_port = port;
    a = json_object_get(re, "address");
    if (json_is_string(a)) {
        m->remote_addr =
            hc_strndup(json_string_value(a), json_string_length(a));
        if (m->remote_addr == NULL)
            return UV_ENOMEM;
    }
    return 0;
}

static int parse_accept(const json_t *o, struct hc_ctl_msg *m)
{
    int rc;

    if ((rc = get_str(o, "address", 1, &m->address)) != 0 ||
        (rc = get_str(o, "id", 1, &m->id)) != 0 ||
        (rc = get_headers(o, "connectHeaders", m)) != 0 ||
        (rc = get_remote(o, m)) != 0)
        return rc;
    return 0;
}

static int parse_request(const json_t *o, struct hc_ctl_msg *m)
{
    int rc;

    if ((rc = get_str(o, "address", 1, &m->address)) != 0 ||
        (rc = get_str(o, "id", 1, &m->id)) != 0 ||
        (rc = get_str(o, "requestTarget", 0, &m->request_target)) != 0 ||
        (rc = get_str(o, "method", 0, &m->method)) != 0 ||
        (rc = get_body(o, m)) != 0 ||
        (rc = get_headers(o, "requestHeaders", m)) != 0 ||
        (rc = get_remote(o, m)) != 0)
        return rc;
    return 0;
}

static int parse_renew_token(const json_t *o, struct hc_ctl_msg *m)
{
    return get_str(o, "token", 1, &m->token);
}

static int parse_response(const json_t *o, struct hc_ctl_msg *m)
{
    json_t *sc = json_object_get(o, "statusCode");
    int rc;

    rc = get_str(o, "requestId", 1, &m->request_id);
    if (rc != 0)
        return rc;
    if (sc == NULL || get_int(sc, 100, 999, &m->status_code) != 0)
        return HC_ESYNTAX;
    rc = get_str(o, "statusDescription", 0, &m->status_description);
    if (rc == 0)
        rc = get_body(o, m);
    if (rc == 0)
        rc = get_headers(o, "responseHeaders", m);
    return rc;
}

int hc_json_parse_ctl(const char *data, size_t len, struct hc_ctl_msg *m)
{
    static const struct {
        const char *name;
        enum hc_ctl_type type;
        int (*parse)(const json_t *, struct hc_ctl_msg *);
    } types[] = {
        {"accept", HC_CTL_ACCEPT, parse_accept},
        {"request", HC_CTL_REQUEST, parse_request},
        {"renewToken", HC_CTL_RENEW_TOKEN, parse_renew_token},
        {"response", HC_CTL_RESPONSE, parse_response},
    };
    json_error_t jerr;
    json_t *root, *body;
    const char *key;
    void *it;
    size_t i;
    int rc = 0;

    memset(m, 0, sizeof(*m));
    if (len > HC_JSON_CTL_MAX)
        return HC_ETOOBIG;
    if (len == 0)
        return HC_ESYNTAX;
    /* Duplicate names are refused: with two "id"s, two readers of the same
     * message could disagree on which one counts. */
    root = json_loadb(data, len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL)
        return json_error_code(&jerr) == json_error_out_of_memory ? UV_ENOMEM
                                                                  : HC_ESYNTAX;
    if (!json_is_object(root) || json_object_size(root) != 1) {
        rc = HC_ESYNTAX;
        goto done;
    }
    it = json_object_iter(root);
    key = json_object_iter_key(it);
    body = json_object_iter_value(it);
    m->name = hc_strdup(key);
    if (m->name == NULL) {
        rc = UV_ENOMEM;
        goto done;
    }
    for (i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
        if (strcmp(key, types[i].name) != 0)
            continue;
        m->type = types[i].type;
        rc = json_is_object(body) ? types[i].parse(body, m) : HC_ESYNTAX;
        break;
    }
done:
    if (rc != 0)
        hc_ctl_msg_free(m);
    /* The token is secret-ish: do not leave jansson's copy in freed memory. */
    if (json_is_object(root)) {
        json_t *rt = json_object_get(root, "renewToken");

        if (json_is_object(rt))
            wipe_json_string(json_object_get(rt, "token"));
    }
    json_decref(root);
    return rc;
}

void hc_ctl_msg_free(struct hc_ctl_msg *m)
{
    size_t i;

    if (m == NULL)
        return;
    for (i = 0; i < m->nheaders; i++) {
        hc_free(m->headers[i].name);
        hc_free(m->headers[i].value);
    }
    hc_free(m->headers);
    hc_free(m->name);
    hc_free(m->address);
    hc_free(m->id);
    hc_free(m->remote_addr);
    hc_free(m->method);
    hc_free(m->request_target);
    hc_free_secret_str(m->token);
    hc_free(m->request_id);
    hc_free(m->status_description);
    memset(m, 0, sizeof(*m));
}

const char *hc_ctl_header(const struct hc_ctl_msg *m, const char *name)
{
    size_t i, n = strlen(name);

    for (i = 0; i < m->nheaders; i++)
        if (ascii_caseeq(m->headers[i].name, strlen(m->headers[i].name), name,
                         n))
            return m->headers[i].value;
    return NULL;
}
