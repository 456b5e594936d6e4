/*
 * fuzz_meta.c - hc_agent_meta_endpoint on any bytes (the entity
 * description the relay returns: Atom XML whose UserMetadata holds a JSON
 * array), with host buffers of several sizes, each a heap block of exactly
 * that size.
 *
 * Checks: the result is 0, HC_ENOTFOUND, HC_ESYNTAX or UV_ENOMEM; err is
 * NUL-terminated (and empty on success); on success the host is a
 * non-empty string within its buffer and the port is 1..65535.
 */
#include <uv.h>

#include "fuzz_common.h"
#include "hc_agent.h"
#include "hc_err.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const size_t caps[] = {256, 16, 1};
    char *xml = fuzz_dup(data, size);

    for (size_t i = 0; i < sizeof(caps) / sizeof(caps[0]); i++) {
        char *host = malloc(caps[i]);
        char *err = malloc(128);
        int port = -1, rc;

        if (host == NULL || err == NULL)
            abort();
        memset(err, 'x', 128);
        rc = hc_agent_meta_endpoint(xml, size, host, caps[i], &port, err, 128);
        FUZZ_CHECK(rc == 0 || rc == HC_ENOTFOUND || rc == HC_ESYNTAX ||
                   rc == UV_ENOMEM);
        FUZZ_CHECK(memchr(err, '\0', 128) != NULL);
        if (rc == 0) {
            FUZZ_CHECK(err[0] == '\0');
            FUZZ_CHECK(memchr(host, '\0', caps[i]) != NULL);
            FUZZ_CHECK(host[0] != '\0');
            FUZZ_CHECK(port >= 1 && port <= 65535);
        } else {
            FUZZ_CHECK(err[0] != '\0');
        }
        free(err);
        free(host);
    }
    free(xml);
    return 0;
}
