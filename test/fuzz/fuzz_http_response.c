/*
 * fuzz_http_response.c - hc_http_parse_response on any bytes (the relay's
 * answer to our upgrade, or an HTTP proxy's answer to CONNECT), on its
 * prefixes (the HC_EAGAIN paths), and what the agent does with a parsed
 * head: look up the upgrade headers, compare Sec-WebSocket-Accept and
 * escape the reason phrase for the log.
 *
 * Checks: see fuzz_http.h; also the status is 100..999 and the reason lies
 * within the head.
 */
#include "fuzz_http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct hc_http_head h;
    char *buf = fuzz_dup(data, size);
    size_t head_len = 0;
    int rc = hc_http_parse_response(buf, size, &h);

    FUZZ_CHECK(fuzz_http_rc_ok(rc));
    if (rc == 0) {
        const struct hc_http_header *f;
        fuzz_http_check_head(&h, buf, size);
        head_len = h.head_len;
        FUZZ_CHECK(h.status >= 100 && h.status <= 999);
        FUZZ_CHECK(fuzz_within(h.reason, h.reason_len, buf, h.head_len));
        FUZZ_CHECK(hc_http_reason(h.status) != NULL);
        f = hc_http_find(&h, "Upgrade");
        if (f != NULL)
            (void)hc_http_has_token(f->value, f->value_len, "websocket");
        f = hc_http_find(&h, "Connection");
        if (f != NULL)
            (void)hc_http_has_token(f->value, f->value_len, "Upgrade");
        f = hc_http_find(&h, "Sec-WebSocket-Accept");
        if (f != NULL) {
            char want[29];
            hc_http_ws_accept("dGhlIHNhbXBsZSBub25jZQ==", 24, want);
            (void)(f->value_len == 28 && memcmp(f->value, want, 28) == 0);
        }
        fuzz_http_escape(h.reason, h.reason_len, 160);
        fuzz_http_escape(h.reason, h.reason_len, 5);
        fuzz_http_escape(h.reason, h.reason_len, 1);
    }
    fuzz_http_prefixes(hc_http_parse_response, data, size, rc, head_len);
    free(buf);
    return 0;
}
