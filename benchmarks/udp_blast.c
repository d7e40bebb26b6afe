/* udp_blast: the benchmark's UDP sender, a separate process that outpaces any receiver here.
 *
 *   udp_blast HOST PORT FILE RATE SECONDS
 *
 * Sends the lines of FILE (one datagram each, as written: give them their PRI), in order and
 * round and round, at RATE datagrams/s for SECONDS, with sendmmsg(2) in batches of up to 256,
 * paced against the clock every 100 us so the offered rate is smooth, not bursty. Batches
 * rotate over 16 sockets (16 source ports, as 16 devices would be), so that a receiver's
 * SO_REUSEPORT group spreads them over its workers. Prints one
 * line: "sent N in S s (R/s), send errors E". A receiver that cannot keep up loses datagrams
 * in its own socket buffer (the kernel counts them there); the sender never blocks on it.
 *
 * Built by benchmarks/bench_compare.py with the machine's C compiler (gcc -O2).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BATCH 256
#define SOCKETS 16

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
    if (argc != 6) {
        fprintf(stderr, "usage: %s HOST PORT FILE RATE SECONDS\n", argv[0]);
        return 2;
    }
    const char *host = argv[1], *port = argv[2], *path = argv[3];
    double rate = atof(argv[4]), seconds = atof(argv[5]);
    if (rate <= 0 || seconds <= 0) {
        fprintf(stderr, "udp_blast: RATE and SECONDS must be positive\n");
        return 2;
    }

    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        return 2;
    }
    size_t cap = 1024, count = 0;
    char **lines = malloc(cap * sizeof *lines);
    size_t *lengths = malloc(cap * sizeof *lengths);
    char *line = NULL;
    size_t size = 0;
    ssize_t got;
    while ((got = getline(&line, &size, f)) != -1) {
        while (got > 0 && (line[got - 1] == '\n' || line[got - 1] == '\r')) got--;
        if (got == 0) continue;
        if (count == cap) {
            cap *= 2;
            lines = realloc(lines, cap * sizeof *lines);
            lengths = realloc(lengths, cap * sizeof *lengths);
        }
        lines[count] = malloc(got);
        memcpy(lines[count], line, got);
        lengths[count++] = got;
    }
    free(line);
    fclose(f);
    if (count == 0) {
        fprintf(stderr, "udp_blast: %s has no lines\n", path);
        return 2;
    }

    struct addrinfo hints = {.ai_socktype = SOCK_DGRAM}, *addr;
    int rc = getaddrinfo(host, port, &hints, &addr);
    if (rc != 0) {
        fprintf(stderr, "udp_blast: %s: %s\n", host, gai_strerror(rc));
        return 2;
    }
    int fds[SOCKETS];
    for (int i = 0; i < SOCKETS; i++) {
        int sndbuf = 1 << 20;
        fds[i] = socket(addr->ai_family, SOCK_DGRAM, 0);
        if (fds[i] < 0 || connect(fds[i], addr->ai_addr, addr->ai_addrlen) != 0) {
            perror("udp_blast: connect");
            return 2;
        }
        setsockopt(fds[i], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
    }
    freeaddrinfo(addr);
    unsigned turn = 0;

    struct mmsghdr msgs[BATCH];
    struct iovec iovs[BATCH];
    memset(msgs, 0, sizeof msgs);
    unsigned long long sent = 0, errors = 0;
    size_t next = 0;
    double start = now(), elapsed = 0;
    while ((elapsed = now() - start) < seconds) {
        unsigned long long due = (unsigned long long)(rate * elapsed);
        if (due <= sent) {
            struct timespec pause = {0, 100000};
            nanosleep(&pause, NULL);
            continue;
        }
        while (sent < due) {
            unsigned n = due - sent > BATCH ? BATCH : (unsigned)(due - sent);
            for (unsigned i = 0; i < n; i++) {
                iovs[i].iov_base = lines[next];
                iovs[i].iov_len = lengths[next];
                msgs[i].msg_hdr.msg_iov = &iovs[i];
                msgs[i].msg_hdr.msg_iovlen = 1;
                next = next + 1 == count ? 0 : next + 1;
            }
            int done = sendmmsg(fds[turn++ % SOCKETS], msgs, n, 0);
            if (done < 0) {
                /* ECONNREFUSED (no listener yet) or a full send buffer: count it as not sent. */
                errors++;
                next = (next + count - n % count) % count;
                break;
            }
            if ((unsigned)done < n) next = (next + count - (n - done) % count) % count;
            sent += done;
        }
    }
    printf("sent %llu in %.3f s (%.0f/s), send errors %llu\n", sent, elapsed, sent / elapsed, errors);
    return 0;
}
