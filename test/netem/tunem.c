/*
 * tunem.c - a small userspace network emulator for the tests: it bridges
 * two TUN devices, usually in two network namespaces, and forwards every
 * IP packet from one to the other after a fixed one-way delay, dropping a
 * random share of them, in each direction. It stands in for
 * "tc qdisc add ... netem delay D loss L" where the kernel has no netem.
 *
 *   tunem --dev-a NAME [--ns-a NS] --dev-b NAME [--ns-b NS]
 *         [--delay-ms 100] [--loss 1.0] [--queue 2048]
 *         [--max-seconds 300] [--seed N]
 *
 * NS is a name under /run/netns (as "ip netns add" makes them) or a path;
 * without it the device is made in tunem's own namespace. The devices
 * (IFF_TUN, no packet info) exist while tunem runs; "ip" gives them their
 * addresses and brings them up once tunem has printed its "tunem ready"
 * line. Packets leave in the order in which they are due; each direction
 * queues at most --queue packets and drops what does not fit.
 *
 * tunem runs until SIGTERM, SIGINT or SIGHUP, or for --max-seconds, and
 * then prints one line of counters per direction on stdout:
 *
 *   tunem a->b received=N forwarded=N dropped=N lost=N overflow=N
 *         oversize=N errors=N pending=N bytes=N
 *
 * dropped = lost (the random loss) + overflow (queue full) + oversize
 * (larger than a queue slot) + errors (the write to the other device
 * failed); pending packets were still queued at exit.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>
#include <linux/if_tun.h>

#define SLOT_SIZE 2048       /* bytes a queued packet may have */
#define READ_SIZE 65536      /* a TUN read never returns more */
#define READS_PER_WAKEUP 256 /* then the other device gets its turn */

struct pkt {
    uint64_t due_ns;
    uint16_t len;
    unsigned char data[SLOT_SIZE];
};

struct dir {
    const char *name; /* "a->b" */
    int in, out;
    struct pkt *ring;
    size_t cap, head, count;
    uint64_t received, forwarded, lost, overflow, oversize, errors, bytes;
};

static volatile sig_atomic_t stop_signal;

static void on_signal(int sig)
{
    stop_signal = sig;
}

static uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* splitmix64: seeds xorshift64* so that every seed gives a good state. */
static uint64_t rng_state;

static void rng_seed(uint64_t seed)
{
    uint64_t z = seed + 0x9e3779b97f4a7c15u;

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    rng_state = z ^ (z >> 31);
    if (rng_state == 0)
        rng_state = 1;
}

/* A uniform double in [0, 1). */
static double rng_next(void)
{
    uint64_t x = rng_state;

    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    rng_state = x;
    return (double)((x * 0x2545f4914f6cdd1du) >> 11) / 9007199254740992.0;
}

/*
 * Opens a TUN device named dev inside network namespace ns (NULL: the
 * current one), then returns to the namespace home. -1 on error, with a
 * message on stderr.
 */
static int open_tun(const char *ns, const char *dev, int home)
{
    char path[4096];
    struct ifreq ifr;
    int fd, nsfd;

    if (ns != NULL) {
        if (strchr(ns, '/') != NULL)
            snprintf(path, sizeof(path), "%s", ns);
        else
            snprintf(path, sizeof(path), "/run/netns/%s", ns);
        nsfd = open(path, O_RDONLY | O_CLOEXEC);
        if (nsfd < 0) {
            fprintf(stderr, "tunem: %s: %s\n", path, strerror(errno));
            return -1;
        }
        if (setns(nsfd, CLONE_NEWNET) != 0) {
            fprintf(stderr, "tunem: setns %s: %s\n", path, strerror(errno));
            close(nsfd);
            return -1;
        }
        close(nsfd);
    }
    fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        fprintf(stderr, "tunem: /dev/net/tun: %s\n", strerror(errno));
    } else {
        memset(&ifr, 0, sizeof(ifr));
        ifr.ifr_flags = IFF_TUN | IFF_NO_PI;
        snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", dev);
        if (ioctl(fd, TUNSETIFF, &ifr) != 0) {
            fprintf(stderr, "tunem: TUNSETIFF %s: %s\n", dev, strerror(errno));
            close(fd);
            fd = -1;
        }
    }
    if (ns != NULL && setns(home, CLONE_NEWNET) != 0) {
        fprintf(stderr, "tunem: setns back: %s\n", strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

/* Reads what dir->in has (bounded), losing or queueing each packet. */
static void take_packets(struct dir *d, unsigned char *buf, double loss,
                         uint64_t delay_ns)
{
    int i;

    for (i = 0; i < READS_PER_WAKEUP; i++) {
        ssize_t n = read(d->in, buf, READ_SIZE);
        struct pkt *p;

        if (n < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
                d->errors++;
            return;
        }
        if (n == 0)
            return;
        d->received++;
        if (rng_next() < loss) {
            d->lost++;
            continue;
        }
        if ((size_t)n > SLOT_SIZE) {
            d->oversize++;
            continue;
        }
        if (d->count == d->cap) {
            d->overflow++;
            continue;
        }
        p = &d->ring[(d->head + d->count) % d->cap];
        p->due_ns = now_ns() + delay_ns;
        p->len = (uint16_t)n;
        memcpy(p->data, buf, (size_t)n);
        d->count++;
    }
}

/* Writes every packet that is due; returns when the next one is due. */
static uint64_t send_due(struct dir *d, uint64_t now)
{
    while (d->count > 0) {
        struct pkt *p = &d->ring[d->head];

        if (p->due_ns > now)
            return p->due_ns;
        if (write(d->out, p->data, p->len) == (ssize_t)p->len) {
            d->forwarded++;
            d->bytes += p->len;
        } else {
            d->errors++;
        }
        d->head = (d->head + 1) % d->cap;
        d->count--;
    }
    return UINT64_MAX;
}

static void print_counters(const struct dir *d)
{
    printf("tunem %s received=%" PRIu64 " forwarded=%" PRIu64
           " dropped=%" PRIu64 " lost=%" PRIu64 " overflow=%" PRIu64
           " oversize=%" PRIu64 " errors=%" PRIu64 " pending=%zu"
           " bytes=%" PRIu64 "\n",
           d->name, d->received, d->forwarded,
           d->lost + d->overflow + d->oversize + d->errors, d->lost,
           d->overflow, d->oversize, d->errors, d->count, d->bytes);
}

static void usage(void)
{
    fprintf(stderr,
            "usage: tunem --dev-a NAME [--ns-a NS] --dev-b NAME [--ns-b NS]\n"
            "             [--delay-ms MS] [--loss PERCENT] [--queue N]\n"
            "             [--max-seconds S] [--seed N]\n");
}

/* Parses a number in [lo, hi]; exits with usage on anything else. */
static double parse_num(const char *opt, const char *s, double lo, double hi)
{
    char *end;
    double v;

    errno = 0;
    v = strtod(s, &end);
    if (errno != 0 || end == s || *end != '\0' || !(v >= lo && v <= hi)) {
        fprintf(stderr, "tunem: --%s: %s is not a number from %g to %g\n", opt,
                s, lo, hi);
        usage();
        exit(2);
    }
    return v;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"ns-a", required_argument, NULL, 'A'},
        {"dev-a", required_argument, NULL, 'a'},
        {"ns-b", required_argument, NULL, 'B'},
        {"dev-b", required_argument, NULL, 'b'},
        {"delay-ms", required_argument, NULL, 'd'},
        {"loss", required_argument, NULL, 'l'},
        {"queue", required_argument, NULL, 'q'},
        {"max-seconds", required_argument, NULL, 'm'},
        {"seed", required_argument, NULL, 's'},
        {NULL, 0, NULL, 0},
    };
    const char *ns_a = NULL, *ns_b = NULL, *dev_a = NULL, *dev_b = NULL;
    double delay_ms = 100, loss_pct = 1, max_seconds = 300;
    size_t queue = 2048;
    uint64_t seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
    struct dir dirs[2];
    unsigned char *buf = NULL;
    struct sigaction sa;
    sigset_t block, waitmask;
    uint64_t start, deadline, delay_ns;
    const char *reason = "signal";
    int home = -1, fd_a = -1, fd_b = -1, rc = 1, c, i;

    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'A':
            ns_a = optarg;
            break;
        case 'a':
            dev_a = optarg;
            break;
        case 'B':
            ns_b = optarg;
            break;
        case 'b':
            dev_b = optarg;
            break;
        case 'd':
            delay_ms = parse_num("delay-ms", optarg, 0, 60000);
            break;
        case 'l':
            loss_pct = parse_num("loss", optarg, 0, 100);
            break;
        case 'q':
            queue = (size_t)parse_num("queue", optarg, 1, 1 << 20);
            break;
        case 'm':
            max_seconds = parse_num("max-seconds", optarg, 1, 86400);
            break;
        case 's':
            seed = (uint64_t)parse_num("seed", optarg, 0, 9007199254740991.0);
            break;
        default:
            usage();
            return 2;
        }
    }
    if (optind != argc || dev_a == NULL || dev_b == NULL ||
        strlen(dev_a) >= IFNAMSIZ || strlen(dev_b) >= IFNAMSIZ) {
        usage();
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    rng_seed(seed);
    delay_ns = (uint64_t)(delay_ms * 1e6);

    /* The stop signals are only taken while waiting in ppoll(). */
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigemptyset(&block);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGHUP);
    sigprocmask(SIG_BLOCK, &block, &waitmask);
    sigdelset(&waitmask, SIGTERM);
    sigdelset(&waitmask, SIGINT);
    sigdelset(&waitmask, SIGHUP);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    memset(dirs, 0, sizeof(dirs));
    home = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
    if (home < 0) {
        fprintf(stderr, "tunem: /proc/self/ns/net: %s\n", strerror(errno));
        goto out;
    }
    fd_a = open_tun(ns_a, dev_a, home);
    if (fd_a < 0)
        goto out;
    fd_b = open_tun(ns_b, dev_b, home);
    if (fd_b < 0)
        goto out;
    buf = malloc(READ_SIZE);
    dirs[0].ring = calloc(queue, sizeof(struct pkt));
    dirs[1].ring = calloc(queue, sizeof(struct pkt));
    if (buf == NULL || dirs[0].ring == NULL || dirs[1].ring == NULL) {
        fprintf(stderr, "tunem: out of memory\n");
        goto out;
    }
    dirs[0].name = "a->b";
    dirs[0].in = fd_a;
    dirs[0].out = fd_b;
    dirs[1].name = "b->a";
    dirs[1].in = fd_b;
    dirs[1].out = fd_a;
    dirs[0].cap = dirs[1].cap = queue;

    printf("tunem ready a=%s/%s b=%s/%s delay_ms=%g loss=%g%% queue=%zu "
           "seed=%" PRIu64 "\n",
           ns_a ? ns_a : "-", dev_a, ns_b ? ns_b : "-", dev_b, delay_ms,
           loss_pct, queue, seed);

    start = now_ns();
    deadline = start + (uint64_t)(max_seconds * 1e9);
    while (stop_signal == 0) {
        struct pollfd pfd[2];
        struct timespec ts;
        uint64_t now = now_ns(), next = deadline, t;

        if (now >= deadline) {
            reason = "max-seconds";
            break;
        }
        for (i = 0; i < 2; i++) {
            t = send_due(&dirs[i], now);
            if (t < next)
                next = t;
        }
        ts.tv_sec = (time_t)((next - now) / 1000000000u);
        ts.tv_nsec = (long)((next - now) % 1000000000u);
        pfd[0].fd = fd_a;
        pfd[1].fd = fd_b;
        pfd[0].events = pfd[1].events = POLLIN;
        pfd[0].revents = pfd[1].revents = 0;
        if (ppoll(pfd, 2, &ts, &waitmask) < 0) {
            if (errno == EINTR)
                continue;
            fprintf(stderr, "tunem: ppoll: %s\n", strerror(errno));
            reason = "error";
            break;
        }
        for (i = 0; i < 2; i++) {
            if (pfd[i].revents & (POLLERR | POLLHUP | POLLNVAL)) {
                fprintf(stderr, "tunem: device %s failed\n",
                        i == 0 ? dev_a : dev_b);
                reason = "error";
                stop_signal = -1;
            } else if (pfd[i].revents & POLLIN) {
                take_packets(&dirs[i], buf, loss_pct / 100.0, delay_ns);
            }
        }
    }
    print_counters(&dirs[0]);
    print_counters(&dirs[1]);
    printf("tunem exit reason=%s seconds=%.1f\n", reason,
           (double)(now_ns() - start) / 1e9);
    rc = strcmp(reason, "error") == 0 ? 1 : 0;
out:
    free(buf);
    free(dirs[0].ring);
    free(dirs[1].ring);
    if (fd_a >= 0)
        close(fd_a);
    if (fd_b >= 0)
        close(fd_b);
    if (home >= 0)
        close(home);
    return rc;
}
