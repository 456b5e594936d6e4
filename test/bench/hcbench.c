/*
 * hcbench — the load generator of the hcmd benchmark (test/bench/run.sh).
 *
 * One program, plain sockets and epoll, one thread:
 *
 *   hcbench server [-p PORT]              the endpoint: prints "port N", then
 *                                         serves forever (see the protocol)
 *   hcbench tput -p PORT -s STREAMS -n BYTES -a HEX -b HEX [-T SECS]
 *                                         STREAMS connections, BYTES each way
 *                                         on each, both ways at once; SHA-256
 *                                         checked at both ends
 *   hcbench lat -p PORT -m SIZE -c COUNT [-o FILE] [-T SECS]
 *                                         COUNT round trips of SIZE bytes on
 *                                         one connection (after a warm-up);
 *                                         -o appends each RTT (us) to FILE
 *   hcbench setup -p PORT -n COUNT -c CONC [-T SECS]
 *                                         COUNT new connections, CONC at once,
 *                                         each a 1-byte echo then close
 *   hcbench idle -p PORT -n COUNT -c CONC [-T SECS]
 *                                         as setup but keeps them open; prints
 *                                         "ready ..." and waits to be killed
 *   hcbench probe -p PORT [-T SECS]       retries a 1-byte echo until it works
 *   hcbench hashes BYTES                  the SHA-256 of BYTES of pattern A
 *                                         (client to endpoint) and pattern B
 *   hcbench freeport                      prints a free TCP port on 127.0.0.1
 *
 * Endpoint protocol. A connection whose first 16 bytes are "TPUT" and a
 * 64-bit big-endian size N (then 4 zero bytes) is a throughput stream: the
 * endpoint sends N bytes of pattern B while it reads N bytes and hashes
 * them; once it has all N it sends the 32-byte SHA-256 of what it read.
 * The client reads N + 32 bytes, checks its own hash of the N against
 * pattern B's and the trailer against pattern A's, and only then closes:
 * nothing depends on half-close. Any other first byte makes the connection
 * an echo. Patterns are pseudo-random bytes repeating every PATLEN (a prime,
 * so no chunk size lines up with it).
 *
 * SHA-256 comes from OpenSSL's libcrypto when built with -DHCB_OPENSSL
 * (SHA-NI makes it some 1.5 GB/s, far above any chain under test); else
 * from mbedTLS. Every result line is "key=value" words on stdout; errors go
 * to stderr and make the exit status 1.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#ifdef HCB_OPENSSL
#include <openssl/evp.h>
typedef EVP_MD_CTX *hctx_t;
static void h_init(hctx_t *h)
{
    *h = EVP_MD_CTX_new();
    EVP_DigestInit_ex(*h, EVP_sha256(), NULL);
}
static void h_update(hctx_t *h, const void *p, size_t n)
{
    EVP_DigestUpdate(*h, p, n);
}
static void h_final(hctx_t *h, uint8_t out[32])
{
    unsigned int l = 32;
    EVP_DigestFinal_ex(*h, out, &l);
    EVP_MD_CTX_free(*h);
    *h = NULL;
}
#define HASH_LIB "openssl"
#else
#include <mbedtls/sha256.h>
#include <mbedtls/version.h>
typedef mbedtls_sha256_context hctx_t;
#if MBEDTLS_VERSION_MAJOR >= 3
#define SHA_START mbedtls_sha256_starts
#define SHA_UPDATE mbedtls_sha256_update
#define SHA_FINISH mbedtls_sha256_finish
#else
#define SHA_START mbedtls_sha256_starts_ret
#define SHA_UPDATE mbedtls_sha256_update_ret
#define SHA_FINISH mbedtls_sha256_finish_ret
#endif
static void h_init(hctx_t *h)
{
    mbedtls_sha256_init(h);
    SHA_START(h, 0);
}
static void h_update(hctx_t *h, const void *p, size_t n)
{
    SHA_UPDATE(h, p, n);
}
static void h_final(hctx_t *h, uint8_t out[32])
{
    SHA_FINISH(h, out);
    mbedtls_sha256_free(h);
}
#define HASH_LIB "mbedtls"
#endif

#define PATLEN 1048573u /* a prime just under 1 MiB */
#define CHUNK (256 * 1024)
#define HDRLEN 16

static uint8_t *pat[2]; /* [0] client -> endpoint, [1] endpoint -> client */
static uint8_t rbuf[CHUNK];
static int port_arg = 0;
static const char *host_arg = "127.0.0.1";
static double timeout_arg = 0;
static int failed = 0;

static void fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "hcbench: ");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    failed = 1;
}

static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "hcbench: ");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static void raise_nofile(void)
{
    struct rlimit r;
    if (getrlimit(RLIMIT_NOFILE, &r) == 0 && r.rlim_cur < r.rlim_max) {
        r.rlim_cur = r.rlim_max;
        setrlimit(RLIMIT_NOFILE, &r);
    }
}

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static void pat_init(void)
{
    for (int d = 0; d < 2; d++) {
        uint64_t s = d ? 0x485942454e43482bULL : 0x68636d642d62656eULL;
        pat[d] = malloc(PATLEN + CHUNK + 8);
        if (!pat[d])
            die("out of memory");
        for (size_t i = 0; i < PATLEN; i += 8) {
            uint64_t v = splitmix(&s);
            memcpy(pat[d] + i, &v, 8);
        }
        memcpy(pat[d] + PATLEN, pat[d], CHUNK);
    }
}

/* Up to CHUNK contiguous bytes of pattern d at stream offset off. */
static const uint8_t *pat_at(int d, uint64_t off, size_t *avail)
{
    uint64_t o = off % PATLEN;
    *avail = CHUNK;
    return pat[d] + o;
}

static void pat_hash(int d, uint64_t size, uint8_t out[32])
{
    hctx_t h;
    uint64_t off = 0;
    h_init(&h);
    while (off < size) {
        size_t avail;
        const uint8_t *p = pat_at(d, off, &avail);
        if (avail > size - off)
            avail = (size_t)(size - off);
        h_update(&h, p, avail);
        off += avail;
    }
    h_final(&h, out);
}

static void hex(const uint8_t *b, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++)
        sprintf(out + 2 * i, "%02x", b[i]);
}

static int unhex(const char *s, uint8_t *out, size_t n)
{
    if (strlen(s) != 2 * n)
        return -1;
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        if (sscanf(s + 2 * i, "%2x", &v) != 1)
            return -1;
        out[i] = (uint8_t)v;
    }
    return 0;
}

static void set_nodelay(int fd)
{
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

/* Throughput sockets only: 4 MiB buffers keep the stream moving while the
 * (single) thread hashes; the chain's own sockets are not touched. */
static void set_bigbuf(int fd)
{
    int big = 4 << 20;
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof(big));
}

static void set_nonblock(int fd)
{
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

static struct sockaddr_in target(void)
{
    struct sockaddr_in a;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port_arg);
    if (inet_pton(AF_INET, host_arg, &a.sin_addr) != 1)
        die("bad address %s", host_arg);
    return a;
}

/* A blocking connect; -1 with errno on failure. */
static int dial(int bigbuf)
{
    struct sockaddr_in a = target();
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (bigbuf)
        set_bigbuf(fd);
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    set_nodelay(fd);
    return fd;
}

static int write_all(int fd, const void *p, size_t n)
{
    const uint8_t *b = p;
    while (n > 0) {
        ssize_t w = write(fd, b, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        b += w;
        n -= (size_t)w;
    }
    return 0;
}

static int read_all(int fd, void *p, size_t n)
{
    uint8_t *b = p;
    while (n > 0) {
        ssize_t r = read(fd, b, n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        b += r;
        n -= (size_t)r;
    }
    return 0;
}

static void on_alarm(int sig)
{
    (void)sig;
    static const char m[] = "hcbench: timed out\n";
    (void)!write(2, m, sizeof(m) - 1);
    _exit(2);
}

static void arm_timeout(void)
{
    if (timeout_arg > 0) {
        signal(SIGALRM, on_alarm);
        alarm((unsigned)(timeout_arg + 0.999));
    }
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of a sorted array. */
static double pct(const double *v, size_t n, double p)
{
    if (n == 0)
        return 0;
    size_t k = (size_t)(p / 100.0 * (double)n + 0.999999);
    if (k < 1)
        k = 1;
    if (k > n)
        k = n;
    return v[k - 1];
}

/* ------------------------------------------------------------ server --- */

enum { M_NEW, M_ECHO, M_TPUT };

struct sconn {
    int fd;
    int mode;
    uint32_t ev;
    uint8_t hdr[HDRLEN];
    int hlen;
    /* echo: bytes not yet written back */
    uint8_t *pend;
    size_t plen, poff, pcap;
    /* throughput */
    uint64_t size, sent, rcvd;
    hctx_t h;
    int hashing;
    uint8_t trailer[32];
    int tsent, rdone;
};

static int ep;

static void sc_interest(struct sconn *c, uint32_t ev)
{
    if (ev == c->ev)
        return;
    struct epoll_event e = {.events = ev, .data.ptr = c};
    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &e);
    c->ev = ev;
}

static void sc_close(struct sconn *c)
{
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    if (c->hashing) {
        uint8_t junk[32];
        h_final(&c->h, junk);
    }
    free(c->pend);
    free(c);
}

/* Echo: write now what we can, keep the rest and stop reading. */
static void sc_echo(struct sconn *c, const uint8_t *p, size_t n)
{
    if (c->plen == c->poff) {
        ssize_t w = write(c->fd, p, n);
        if (w < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                return; /* the read side will see the error */
            w = 0;
        }
        p += w;
        n -= (size_t)w;
        c->plen = c->poff = 0;
    }
    if (n == 0)
        return;
    if (c->plen + n > c->pcap) {
        c->pcap = c->plen + n;
        c->pend = realloc(c->pend, c->pcap);
        if (!c->pend)
            die("out of memory");
    }
    memcpy(c->pend + c->plen, p, n);
    c->plen += n;
    sc_interest(c, EPOLLOUT);
}

/* Returns -1 when the connection must be closed. */
static int sc_tput_in(struct sconn *c, const uint8_t *p, size_t n)
{
    if (c->rcvd + n > c->size) {
        fail("server: a throughput stream sent more than its %llu bytes",
             (unsigned long long)c->size);
        return -1;
    }
    h_update(&c->h, p, n);
    c->rcvd += n;
    if (c->rcvd == c->size) {
        h_final(&c->h, c->trailer);
        c->hashing = 0;
        c->rdone = 1;
        sc_interest(c, EPOLLIN | EPOLLOUT);
    }
    return 0;
}

static int sc_in(struct sconn *c, const uint8_t *p, size_t n)
{
    if (c->mode == M_NEW) {
        if (p[0] != 'T' && c->hlen == 0) {
            c->mode = M_ECHO;
        } else {
            size_t k = HDRLEN - (size_t)c->hlen;
            if (k > n)
                k = n;
            memcpy(c->hdr + c->hlen, p, k);
            c->hlen += (int)k;
            p += k;
            n -= k;
            if (c->hlen < HDRLEN)
                return 0;
            if (memcmp(c->hdr, "TPUT", 4) != 0) {
                c->mode = M_ECHO;
                sc_echo(c, c->hdr, HDRLEN);
            } else {
                c->mode = M_TPUT;
                c->size = 0;
                for (int i = 0; i < 8; i++)
                    c->size = (c->size << 8) | c->hdr[4 + i];
                h_init(&c->h);
                c->hashing = 1;
                if (c->size == 0) {
                    h_final(&c->h, c->trailer);
                    c->hashing = 0;
                    c->rdone = 1;
                }
                sc_interest(c, EPOLLIN | EPOLLOUT);
            }
            if (n == 0)
                return 0;
        }
    }
    if (c->mode == M_ECHO) {
        sc_echo(c, p, n);
        return 0;
    }
    return sc_tput_in(c, p, n);
}

/* Both return -1 when they closed (and freed) c. */
static int sc_read(struct sconn *c)
{
    for (int i = 0; i < 4; i++) {
        if (c->mode == M_ECHO && c->plen > c->poff)
            return 0;
        ssize_t r = read(c->fd, rbuf, sizeof(rbuf));
        if (r < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return 0;
            sc_close(c);
            return -1;
        }
        if (r == 0) {
            if (c->mode == M_TPUT && (!c->rdone || c->tsent < 32))
                fail("server: throughput stream closed after %llu of %llu "
                     "bytes in, %llu out",
                     (unsigned long long)c->rcvd, (unsigned long long)c->size,
                     (unsigned long long)c->sent);
            sc_close(c);
            return -1;
        }
        if (sc_in(c, rbuf, (size_t)r) != 0) {
            sc_close(c);
            return -1;
        }
    }
    return 0;
}

static int sc_write(struct sconn *c)
{
    if (c->mode == M_ECHO) {
        while (c->poff < c->plen) {
            ssize_t w = write(c->fd, c->pend + c->poff, c->plen - c->poff);
            if (w < 0) {
                if (errno == EAGAIN || errno == EWOULDBLOCK)
                    return 0;
                sc_close(c);
                return -1;
            }
            c->poff += (size_t)w;
        }
        c->plen = c->poff = 0;
        sc_interest(c, EPOLLIN);
        return 0;
    }
    if (c->mode != M_TPUT)
        return 0;
    for (int i = 0; i < 4; i++) {
        ssize_t w;
        if (c->sent < c->size) {
            size_t avail;
            const uint8_t *p = pat_at(1, c->sent, &avail);
            if (avail > c->size - c->sent)
                avail = (size_t)(c->size - c->sent);
            w = write(c->fd, p, avail);
            if (w > 0)
                c->sent += (uint64_t)w;
        } else if (c->rdone && c->tsent < 32) {
            w = write(c->fd, c->trailer + c->tsent, (size_t)(32 - c->tsent));
            if (w > 0)
                c->tsent += (int)w;
        } else {
            sc_interest(c, EPOLLIN);
            return 0;
        }
        if (w < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return 0;
            sc_close(c);
            return -1;
        }
    }
    return 0;
}

static int cmd_server(void)
{
    raise_nofile();
    signal(SIGPIPE, SIG_IGN);
    int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    set_bigbuf(ls); /* inherited; memory is only used when data queues */
    struct sockaddr_in a = target();
    if (bind(ls, (struct sockaddr *)&a, sizeof(a)) != 0 ||
        listen(ls, 4096) != 0)
        die("server: bind/listen %s:%d: %s", host_arg, port_arg,
            strerror(errno));
    socklen_t al = sizeof(a);
    getsockname(ls, (struct sockaddr *)&a, &al);
    printf("port %d\n", ntohs(a.sin_port));
    fflush(stdout);
    ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event le = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(ep, EPOLL_CTL_ADD, ls, &le);
    struct epoll_event evs[256];
    for (;;) {
        int n = epoll_wait(ep, evs, 256, -1);
        if (n < 0 && errno == EINTR)
            continue;
        for (int i = 0; i < n; i++) {
            struct sconn *c = evs[i].data.ptr;
            if (c == NULL) {
                for (int k = 0; k < 64; k++) {
                    int fd =
                        accept4(ls, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                    if (fd < 0)
                        break;
                    set_nodelay(fd);
                    c = calloc(1, sizeof(*c));
                    if (!c)
                        die("out of memory");
                    c->fd = fd;
                    c->ev = EPOLLIN;
                    struct epoll_event e = {.events = EPOLLIN, .data.ptr = c};
                    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e);
                }
                continue;
            }
            if ((evs[i].events & EPOLLOUT) && sc_write(c) != 0)
                continue; /* closed and freed */
            if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
                sc_read(c);
        }
    }
    return 0;
}

/* ------------------------------------------------------- throughput --- */

struct tstream {
    int fd;
    uint64_t sent, rcvd;
    hctx_t h;
    uint8_t trailer[32];
    int done;
};

static int cmd_tput(int streams, uint64_t size, const char *ahex,
                    const char *bhex)
{
    uint8_t ea[32], eb[32];
    if (!ahex || !bhex) {
        pat_hash(0, size, ea);
        pat_hash(1, size, eb);
    } else if (unhex(ahex, ea, 32) != 0 || unhex(bhex, eb, 32) != 0) {
        die("tput: -a/-b want 64 hex digits");
    }
    signal(SIGPIPE, SIG_IGN);
    raise_nofile();
    arm_timeout();
    struct tstream *s = calloc((size_t)streams, sizeof(*s));
    ep = epoll_create1(EPOLL_CLOEXEC);
    double t0 = now();
    for (int i = 0; i < streams; i++) {
        uint8_t hdr[HDRLEN] = {'T', 'P', 'U', 'T'};
        for (int k = 0; k < 8; k++)
            hdr[4 + k] = (uint8_t)(size >> (56 - 8 * k));
        s[i].fd = dial(1);
        if (s[i].fd < 0)
            die("tput: connect %s:%d: %s", host_arg, port_arg, strerror(errno));
        if (write_all(s[i].fd, hdr, HDRLEN) != 0)
            die("tput: write: %s", strerror(errno));
        set_nonblock(s[i].fd);
        h_init(&s[i].h);
        struct epoll_event e = {.events = EPOLLIN | EPOLLOUT,
                                .data.u32 = (uint32_t)i};
        epoll_ctl(ep, EPOLL_CTL_ADD, s[i].fd, &e);
    }
    int left = streams, verified = 0;
    struct epoll_event evs[64];
    while (left > 0) {
        int n = epoll_wait(ep, evs, 64, 1000);
        if (n < 0 && errno == EINTR)
            continue;
        for (int j = 0; j < n; j++) {
            struct tstream *t = &s[evs[j].data.u32];
            if (t->done)
                continue;
            if (evs[j].events & EPOLLOUT) {
                for (int k = 0; k < 4 && t->sent < size; k++) {
                    size_t avail;
                    const uint8_t *p = pat_at(0, t->sent, &avail);
                    if (avail > size - t->sent)
                        avail = (size_t)(size - t->sent);
                    ssize_t w = write(t->fd, p, avail);
                    if (w < 0) {
                        if (errno != EAGAIN && errno != EWOULDBLOCK)
                            die("tput: stream %u: write after %llu bytes: %s",
                                evs[j].data.u32, (unsigned long long)t->sent,
                                strerror(errno));
                        break;
                    }
                    t->sent += (uint64_t)w;
                }
                if (t->sent == size) {
                    struct epoll_event e = {.events = EPOLLIN,
                                            .data.u32 = evs[j].data.u32};
                    epoll_ctl(ep, EPOLL_CTL_MOD, t->fd, &e);
                }
            }
            if (evs[j].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
                for (int k = 0; k < 4; k++) {
                    ssize_t r = read(t->fd, rbuf, sizeof(rbuf));
                    if (r < 0) {
                        if (errno == EAGAIN || errno == EWOULDBLOCK ||
                            errno == EINTR)
                            break;
                        die("tput: stream %u: read after %llu bytes: %s",
                            evs[j].data.u32, (unsigned long long)t->rcvd,
                            strerror(errno));
                    }
                    if (r == 0)
                        die("tput: stream %u closed after %llu of %llu bytes "
                            "in (%llu out)",
                            evs[j].data.u32, (unsigned long long)t->rcvd,
                            (unsigned long long)(size + 32),
                            (unsigned long long)t->sent);
                    size_t m = (size_t)r, off = 0;
                    if (t->rcvd < size) {
                        size_t d = m;
                        if (d > size - t->rcvd)
                            d = (size_t)(size - t->rcvd);
                        h_update(&t->h, rbuf, d);
                        t->rcvd += d;
                        off = d;
                    }
                    if (off < m) {
                        size_t tl = (size_t)(t->rcvd - size);
                        if (tl + (m - off) > 32)
                            die("tput: stream %u: more bytes than sent",
                                evs[j].data.u32);
                        memcpy(t->trailer + tl, rbuf + off, m - off);
                        t->rcvd += m - off;
                    }
                    if (t->rcvd == size + 32)
                        break;
                }
            }
            if (t->sent == size && t->rcvd == size + 32) {
                uint8_t got[32];
                h_final(&t->h, got);
                t->done = 1;
                left--;
                int ok = 1;
                if (memcmp(got, eb, 32) != 0) {
                    fail("tput: stream %u: SHA-256 of the bytes from the "
                         "endpoint differs",
                         evs[j].data.u32);
                    ok = 0;
                }
                if (memcmp(t->trailer, ea, 32) != 0) {
                    fail("tput: stream %u: SHA-256 at the endpoint differs "
                         "from what was sent",
                         evs[j].data.u32);
                    ok = 0;
                }
                verified += ok;
                epoll_ctl(ep, EPOLL_CTL_DEL, t->fd, NULL);
                close(t->fd);
            }
        }
    }
    double secs = now() - t0;
    double mib = (double)size * streams / 1048576.0;
    printf("tput streams=%d bytes_per_stream=%llu secs=%.3f mib_s=%.1f "
           "verified=%d hash=%s\n",
           streams, (unsigned long long)size, secs, mib / secs, verified,
           HASH_LIB);
    return failed || verified != streams;
}

/* ------------------------------------------------------------ latency --- */

static int cmd_lat(size_t msize, int count, const char *dump)
{
    signal(SIGPIPE, SIG_IGN);
    arm_timeout();
    int fd = dial(0);
    if (fd < 0)
        die("lat: connect %s:%d: %s", host_arg, port_arg, strerror(errno));
    uint8_t *out = malloc(msize), *in = malloc(msize);
    memset(out, 'x', msize);
    int warm = count / 10;
    if (warm < 10)
        warm = 10;
    if (warm > 200)
        warm = 200;
    double *rtt = malloc(sizeof(double) * (size_t)count);
    for (int i = 0; i < warm + count; i++) {
        double t = now();
        if (write_all(fd, out, msize) != 0)
            die("lat: write: %s", strerror(errno));
        if (read_all(fd, in, msize) != 0)
            die("lat: read after %d messages: %s", i,
                errno ? strerror(errno) : "closed");
        double dt = now() - t;
        if (in[0] != 'x' || in[msize - 1] != 'x')
            die("lat: echo differs");
        if (i >= warm)
            rtt[i - warm] = dt * 1e6;
    }
    close(fd);
    if (dump != NULL) {
        FILE *f = fopen(dump, "a");
        if (f == NULL)
            die("lat: %s: %s", dump, strerror(errno));
        for (int i = 0; i < count; i++)
            fprintf(f, "%.1f\n", rtt[i]);
        fclose(f);
    }
    qsort(rtt, (size_t)count, sizeof(double), cmp_double);
    double sum = 0;
    for (int i = 0; i < count; i++)
        sum += rtt[i];
    printf("lat size=%zu count=%d p50_us=%.1f p99_us=%.1f max_us=%.1f "
           "mean_us=%.1f\n",
           msize, count, pct(rtt, (size_t)count, 50),
           pct(rtt, (size_t)count, 99), rtt[count - 1], sum / count);
    return 0;
}

/* ----------------------------------------------------- setup and idle --- */

struct slot {
    int fd;
    int state; /* 0 free, 1 connecting, 2 waiting for the echo, 3 held */
    double t0;
};

static volatile sig_atomic_t stop_flag;
static void on_term(int sig)
{
    (void)sig;
    stop_flag = 1;
}

static int cmd_setup(int count, int conc, int hold)
{
    signal(SIGPIPE, SIG_IGN);
    raise_nofile();
    if (!hold)
        arm_timeout();
    if (conc > count)
        conc = count;
    int nslots = hold ? count : conc;
    struct slot *sl = calloc((size_t)nslots, sizeof(*sl));
    double *lat = malloc(sizeof(double) * (size_t)count);
    int started = 0, ok = 0, bad = 0, inflight = 0, free_hint = 0;
    struct sockaddr_in a = target();
    ep = epoll_create1(EPOLL_CLOEXEC);
    double t0 = now(), deadline = timeout_arg > 0 ? t0 + timeout_arg : 0;
    char lasterr[128] = "";

    for (;;) {
        while (inflight < conc && started < count) {
            int k = free_hint;
            while (sl[k].state != 0)
                k = (k + 1) % nslots;
            free_hint = (k + 1) % nslots;
            struct slot *s = &sl[k];
            s->fd =
                socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
            if (s->fd < 0)
                die("setup: socket: %s (after %d)", strerror(errno), started);
            set_nodelay(s->fd);
            s->t0 = now();
            started++;
            inflight++;
            if (connect(s->fd, (struct sockaddr *)&a, sizeof(a)) != 0 &&
                errno != EINPROGRESS) {
                snprintf(lasterr, sizeof(lasterr), "connect: %s",
                         strerror(errno));
                close(s->fd);
                bad++;
                inflight--;
                continue;
            }
            s->state = 1;
            struct epoll_event e = {.events = EPOLLOUT,
                                    .data.u32 = (uint32_t)k};
            epoll_ctl(ep, EPOLL_CTL_ADD, s->fd, &e);
        }
        if (inflight == 0 && started >= count)
            break;
        if (deadline > 0 && now() > deadline) {
            fprintf(stderr, "hcbench: setup: timed out with %d of %d done\n",
                    ok + bad, count);
            failed = 1;
            break;
        }
        struct epoll_event evs[256];
        int n = epoll_wait(ep, evs, 256, 200);
        if (n < 0 && errno == EINTR)
            continue;
        for (int j = 0; j < n; j++) {
            int k = (int)evs[j].data.u32;
            struct slot *s = &sl[k];
            int err = 0;
            if (s->state == 1) {
                socklen_t l = sizeof(err);
                getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &l);
                if (err == 0) {
                    if (write(s->fd, "x", 1) != 1)
                        err = errno ? errno : EIO;
                    else {
                        s->state = 2;
                        struct epoll_event e = {.events = EPOLLIN,
                                                .data.u32 = (uint32_t)k};
                        epoll_ctl(ep, EPOLL_CTL_MOD, s->fd, &e);
                        continue;
                    }
                }
                snprintf(lasterr, sizeof(lasterr), "connect: %s",
                         strerror(err));
            } else if (s->state == 2) {
                char ch;
                ssize_t r = read(s->fd, &ch, 1);
                if (r < 0 && (errno == EAGAIN || errno == EINTR))
                    continue;
                if (r == 1 && ch == 'x') {
                    lat[ok++] = (now() - s->t0) * 1e3;
                    inflight--;
                    if (hold) {
                        s->state = 3;
                        epoll_ctl(ep, EPOLL_CTL_DEL, s->fd, NULL);
                    } else {
                        epoll_ctl(ep, EPOLL_CTL_DEL, s->fd, NULL);
                        close(s->fd);
                        s->state = 0;
                    }
                    continue;
                }
                snprintf(lasterr, sizeof(lasterr), "echo: %s",
                         r == 0 ? "closed before the echo" : strerror(errno));
            } else {
                continue;
            }
            epoll_ctl(ep, EPOLL_CTL_DEL, s->fd, NULL);
            close(s->fd);
            s->state = 0;
            bad++;
            inflight--;
        }
    }
    double secs = now() - t0;
    qsort(lat, (size_t)ok, sizeof(double), cmp_double);
    printf("%s n=%d ok=%d fail=%d conc=%d secs=%.3f rate=%.1f p50_ms=%.3f "
           "p99_ms=%.3f%s%s\n",
           hold ? "ready" : "setup", count, ok, bad, conc, secs, ok / secs,
           pct(lat, (size_t)ok, 50), pct(lat, (size_t)ok, 99),
           *lasterr ? " last_error=" : "", lasterr);
    fflush(stdout);
    if (bad > 0)
        fprintf(stderr, "hcbench: %d of %d connections failed (last: %s)\n",
                bad, count, lasterr);
    if (hold) {
        signal(SIGTERM, on_term);
        signal(SIGINT, on_term);
        while (!stop_flag)
            pause();
        for (int i = 0; i < nslots; i++)
            if (sl[i].state == 3)
                close(sl[i].fd);
    }
    return failed || ok == 0;
}

/* -------------------------------------------------------------- probe --- */

static int cmd_probe(void)
{
    signal(SIGPIPE, SIG_IGN);
    double deadline = now() + (timeout_arg > 0 ? timeout_arg : 10);
    char why[128] = "no attempt";
    while (now() < deadline) {
        int fd = dial(0);
        if (fd < 0) {
            snprintf(why, sizeof(why), "connect: %s", strerror(errno));
        } else {
            char ch = 0;
            struct pollfd p = {.fd = fd, .events = POLLIN};
            if (write(fd, "x", 1) == 1 && poll(&p, 1, 2000) == 1 &&
                read(fd, &ch, 1) == 1 && ch == 'x') {
                close(fd);
                return 0;
            }
            snprintf(why, sizeof(why), "no echo");
            close(fd);
        }
        usleep(100000);
    }
    fprintf(stderr, "hcbench: probe %s:%d: %s\n", host_arg, port_arg, why);
    return 1;
}

/* --------------------------------------------------------------- main --- */

static void usage(void)
{
    fprintf(stderr,
            "usage: hcbench server|tput|lat|setup|idle|probe|hashes|freeport "
            "[-h HOST] [-p PORT] [-s STREAMS] [-n N] [-m SIZE] [-c N] "
            "[-a HEX -b HEX] [-o FILE] [-T SECS]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    if (argc < 2)
        usage();
    const char *cmd = argv[1];
    int streams = 1, conc = 1;
    long long n = 0;
    long msize = 64, count = 1000;
    const char *ahex = NULL, *bhex = NULL, *dump = NULL;
    optind = 2;
    int o;
    while ((o = getopt(argc, argv, "h:p:s:n:m:c:a:b:o:T:")) != -1) {
        switch (o) {
        case 'h':
            host_arg = optarg;
            break;
        case 'p':
            port_arg = atoi(optarg);
            break;
        case 's':
            streams = atoi(optarg);
            break;
        case 'n':
            n = atoll(optarg);
            break;
        case 'm':
            msize = atol(optarg);
            break;
        case 'c':
            count = conc = atoi(optarg);
            break;
        case 'a':
            ahex = optarg;
            break;
        case 'b':
            bhex = optarg;
            break;
        case 'o':
            dump = optarg;
            break;
        case 'T':
            timeout_arg = atof(optarg);
            break;
        default:
            usage();
        }
    }
    if (strcmp(cmd, "freeport") == 0) {
        port_arg = 0;
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = target();
        socklen_t l = sizeof(a);
        if (bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
            getsockname(fd, (struct sockaddr *)&a, &l) != 0)
            die("freeport: %s", strerror(errno));
        printf("%d\n", ntohs(a.sin_port));
        close(fd);
        return 0;
    }
    if (strcmp(cmd, "hashes") == 0) {
        uint8_t h[32];
        char x[65];
        pat_init();
        for (int d = 0; d < 2; d++) {
            pat_hash(d, (uint64_t)n, h);
            hex(h, 32, x);
            printf("%s%s", x, d ? "\n" : " ");
        }
        return 0;
    }
    if (strcmp(cmd, "server") == 0) {
        pat_init();
        return cmd_server();
    }
    if (port_arg <= 0)
        die("%s: -p PORT is required", cmd);
    if (strcmp(cmd, "tput") == 0) {
        if (n <= 0 || streams <= 0)
            die("tput: -n BYTES and -s STREAMS must be positive");
        pat_init();
        return cmd_tput(streams, (uint64_t)n, ahex, bhex);
    }
    if (strcmp(cmd, "lat") == 0) {
        if (msize <= 0 || count <= 0)
            die("lat: -m SIZE and -c COUNT must be positive");
        return cmd_lat((size_t)msize, (int)count, dump);
    }
    if (strcmp(cmd, "setup") == 0 || strcmp(cmd, "idle") == 0) {
        if (n <= 0 || conc <= 0)
            die("%s: -n COUNT and -c CONC must be positive", cmd);
        return cmd_setup((int)n, conc, strcmp(cmd, "idle") == 0);
    }
    if (strcmp(cmd, "probe") == 0)
        return cmd_probe();
    usage();
    return 2;
}
