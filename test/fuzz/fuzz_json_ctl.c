/*
 * fuzz_json_ctl.c - hc_json_parse_ctl on any bytes (a text frame on the
 * control channel), hc_ctl_header lookups and hc_ctl_msg_free.
 *
 * Checks:
 *  - the result is 0, HC_ESYNTAX or HC_ETOOBIG; on error the message is
 *    zeroed;
 *  - on success the members a type requires are there, numbers are in
 *    range, headers are non-NULL strings and hc_ctl_header finds the first
 *    one of each name (ignoring case);
 *  - what the builders make of a parsed message parses back: an accept
 *    with the same address, id and remote endpoint; a renewToken with the
 *    same token;
 *  - hc_ctl_msg_free zeroes the message and is idempotent.
 */
#include <strings.h>

#include "fuzz_common.h"
#include "hc_err.h"
#include "hc_json.h"
#include "hc_mem.h"

static int str_eq(const char *a, const char *b)
{
    if (a == NULL || b == NULL)
        return a == b;
    return strcmp(a, b) == 0;
}

static void check_zero(const struct hc_ctl_msg *m)
{
    static const struct hc_ctl_msg zero;
    FUZZ_CHECK(memcmp(m, &zero, sizeof(zero)) == 0);
}

static void check_headers(const struct hc_ctl_msg *m)
{
    FUZZ_CHECK((m->headers == NULL) == (m->nheaders == 0));
    for (size_t i = 0; i < m->nheaders; i++) {
        const char *v;
        size_t first = i;
        FUZZ_CHECK(m->headers[i].name != NULL && m->headers[i].value != NULL);
        for (size_t j = 0; j < i; j++) {
            if (strcasecmp(m->headers[j].name, m->headers[i].name) == 0) {
                first = j;
                break;
            }
        }
        v = hc_ctl_header(m, m->headers[i].name);
        FUZZ_CHECK(v == m->headers[first].value);
    }
    (void)hc_ctl_header(m, "Host");
    (void)hc_ctl_header(m, "sec-websocket-protocol");
}

/* An accept built from the parsed members must parse back. */
static void check_accept_roundtrip(const struct hc_ctl_msg *m)
{
    struct hc_http_header *hdrs = NULL;
    struct hc_ctl_msg back;
    char *json;
    int rc;

    if (m->nheaders > 0) {
        hdrs = calloc(m->nheaders, sizeof(*hdrs));
        if (hdrs == NULL)
            abort();
        for (size_t i = 0; i < m->nheaders; i++) {
            hdrs[i].name = m->headers[i].name;
            hdrs[i].name_len = strlen(m->headers[i].name);
            hdrs[i].value = m->headers[i].value;
            hdrs[i].value_len = strlen(m->headers[i].value);
        }
    }
    json = hc_json_accept(m->address, m->id, hdrs, m->nheaders, m->remote_addr,
                          m->remote_port);
    FUZZ_CHECK(json != NULL);
    rc = hc_json_parse_ctl(json, strlen(json), &back);
    if (strlen(json) > HC_JSON_CTL_MAX) {
        FUZZ_CHECK(rc == HC_ETOOBIG);
    } else {
        if (rc != 0)
            fprintf(stderr, "accept did not parse back: %s\n", json);
        FUZZ_CHECK(rc == 0);
        FUZZ_CHECK(back.type == HC_CTL_ACCEPT);
        FUZZ_CHECK(str_eq(back.address, m->address));
        FUZZ_CHECK(str_eq(back.id, m->id));
        FUZZ_CHECK(str_eq(back.remote_addr, m->remote_addr));
        if (m->remote_addr != NULL)
            FUZZ_CHECK(back.remote_port == m->remote_port);
        FUZZ_CHECK(back.nheaders <= m->nheaders);
        for (size_t i = 0; i < back.nheaders; i++)
            FUZZ_CHECK(hc_ctl_header(m, back.headers[i].name) != NULL);
        hc_ctl_msg_free(&back);
    }
    hc_free(json);
    free(hdrs);
}

static void check_renew_roundtrip(const struct hc_ctl_msg *m)
{
    struct hc_ctl_msg back;
    char *json = hc_json_renew_token(m->token);

    FUZZ_CHECK(json != NULL);
    if (strlen(json) <= HC_JSON_CTL_MAX) {
        FUZZ_CHECK(hc_json_parse_ctl(json, strlen(json), &back) == 0);
        FUZZ_CHECK(back.type == HC_CTL_RENEW_TOKEN);
        FUZZ_CHECK(str_eq(back.token, m->token));
        hc_ctl_msg_free(&back);
    }
    hc_free_secret_str(json);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct hc_ctl_msg m;
    char *buf = fuzz_dup(data, size);
    int rc;

    memset(&m, 0xa5, sizeof(m)); /* the parser must set every member */
    rc = hc_json_parse_ctl(buf, size, &m);
    FUZZ_CHECK(rc == 0 || rc == HC_ESYNTAX || rc == HC_ETOOBIG);
    if (size > HC_JSON_CTL_MAX)
        FUZZ_CHECK(rc == HC_ETOOBIG);
    if (rc != 0) {
        check_zero(&m);
        goto out;
    }
    FUZZ_CHECK(m.name != NULL);
    FUZZ_CHECK(m.remote_port >= 0 && m.remote_port <= 65535);
    FUZZ_CHECK(m.has_body == 0 || m.has_body == 1);
    FUZZ_CHECK(m.body == 0 || m.body == 1);
    check_headers(&m);
    switch (m.type) {
    case HC_CTL_ACCEPT:
        FUZZ_CHECK(strcmp(m.name, "accept") == 0);
        FUZZ_CHECK(m.address != NULL && m.id != NULL);
        check_accept_roundtrip(&m);
        break;
    case HC_CTL_REQUEST:
        FUZZ_CHECK(strcmp(m.name, "request") == 0);
        FUZZ_CHECK(m.address != NULL && m.id != NULL);
        break;
    case HC_CTL_RENEW_TOKEN:
        FUZZ_CHECK(strcmp(m.name, "renewToken") == 0);
        FUZZ_CHECK(m.token != NULL);
        check_renew_roundtrip(&m);
        break;
    case HC_CTL_RESPONSE:
        FUZZ_CHECK(strcmp(m.name, "response") == 0);
        FUZZ_CHECK(m.request_id != NULL);
        FUZZ_CHECK(m.status_code >= 100 && m.status_code <= 999);
        break;
    case HC_CTL_UNKNOWN:
        break;
    default:
        FUZZ_CHECK(!"unknown type value");
    }
    hc_ctl_msg_free(&m);
    check_zero(&m);
    hc_ctl_msg_free(&m);
    check_zero(&m);
out:
    free(buf);
    return 0;
}
