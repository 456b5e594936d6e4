/*
 * hc_err.h - error codes shared by every module.
 *
 * Functions return 0 on success and a negative code on failure. libuv codes
 * (UV_ENOMEM, UV_EINVAL, ...) are used as they are; codes of our own live in
 * the band below -5000 so they never collide with libuv's. Raw mbedTLS or
 * wslay codes never cross a module boundary: they are logged where they
 * happen and mapped to one of these.
 */
#ifndef HC_ERR_H
#define HC_ERR_H

#define HC_ERRNO_MAP(X)                                                        \
    X(EPROTO, -5001, "protocol error")                                         \
    X(ETLS, -5002, "TLS error")                                                \
    X(EAUTH, -5003, "authorization failed")                                    \
    X(ECONFIG, -5004, "configuration error")                                   \
    X(EAGAIN, -5005, "more input needed")                                      \
    X(ETOOBIG, -5006, "input too large")                                       \
    X(EFORBIDDEN, -5007, "forbidden")                                          \
    X(ENOTFOUND, -5008, "not found")                                           \
    X(EEXPIRED, -5009, "token expired")                                        \
    X(ESYNTAX, -5010, "syntax error")

enum {
#define HC_ERR_ENUM(name, code, text) HC_##name = (code),
    HC_ERRNO_MAP(HC_ERR_ENUM)
#undef HC_ERR_ENUM
};

/* Text for any code: ours, then libuv's. Never returns NULL. */
const char *hc_strerror(int err);

#endif
