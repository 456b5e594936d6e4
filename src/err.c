#include <uv.h>

#include "hc_err.h"

const char *hc_strerror(int err)
{
    switch (err) {
#define HC_ERR_CASE(name, code, text)                                          \
    case code:                                                                 \
        return text;
        HC_ERRNO_MAP(HC_ERR_CASE)
#undef HC_ERR_CASE
    default:
        return uv_strerror(err);
    }
}
