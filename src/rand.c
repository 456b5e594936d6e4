#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <uv.h>

#include "hc_log.h"
#include "hc_rand.h"

void hc_random(void *buf, size_t len)
{
    int rc = uv_random(NULL, NULL, buf, len, 0, NULL);
    if (rc != 0) {
        hc_log_err("no random bytes from the system: %s", uv_strerror(rc));
        abort();
    }
}

void hc_guid(char out[37])
{
    uint8_t b[16];
    hc_random(b, sizeof(b));
    b[6] = (uint8_t)((b[6] & 0x0f) | 0x40);
    b[8] = (uint8_t)((b[8] & 0x3f) | 0x80);
    snprintf(out, 37,
             "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x"
             "%02x",
             b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10],
             b[11], b[12], b[13], b[14], b[15]);
}
