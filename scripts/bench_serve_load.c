/* A closed-loop HTTP/1.1 load generator: CLIENTS keep-alive connections on one epoll thread, each sending the
   request in PAYLOAD and waiting for the whole answer before the next one. Prints "sent errors cpu_seconds" and
   then the latency of every request started after the warm-up, in microseconds, one a line. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

typedef struct { int fd; size_t got; double t0; char buf[1 << 16]; } conn_t;

static double now(void) { struct timespec ts; clock_gettime(CLOCK_MONOTONIC, &ts); return ts.tv_sec + ts.tv_nsec * 1e-9; }

static int send_all(int fd, const char *p, size_t n) {
    while (n) { ssize_t w = send(fd, p, n, MSG_NOSIGNAL); if (w <= 0) return -1; p += w; n -= (size_t)w; }
    return 0;
}

/* 1: a whole answer is in (*ok: status 200), 0: not yet, -1: malformed */
static int complete(conn_t *c, int *ok) {
    c->buf[c->got] = 0;
    char *end = strstr(c->buf, "\r\n\r\n");
    if (!end) return 0;
    char *cl = strcasestr(c->buf, "\r\ncontent-length:");
    if (!cl || cl > end) return -1;
    size_t need = (size_t)(end + 4 - c->buf) + strtoul(cl + 17, NULL, 10);
    if (c->got < need) return 0;
    *ok = strncmp(c->buf, "HTTP/1.1 200", 12) == 0;
    return 1;
}

int main(int argc, char **argv) {
    if (argc != 6) { fprintf(stderr, "usage: load PORT PAYLOAD CLIENTS WARMUP SECONDS\n"); return 2; }
    int port = atoi(argv[1]), clients = atoi(argv[3]);
    double warmup = atof(argv[4]), seconds = atof(argv[5]);
    FILE *f = fopen(argv[2], "rb");
    if (!f) { perror("payload"); return 2; }
    static char payload[1 << 20];
    size_t plen = fread(payload, 1, sizeof payload, f);
    fclose(f);
    size_t cap = 1 << 22, nlat = 0;
    unsigned *lat = malloc(cap * sizeof *lat);
    conn_t *conns = calloc((size_t)clients, sizeof *conns);
    int ep = epoll_create1(0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((unsigned short)port)};
    inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
    double start = now(), warm = start + warmup, until = warm + seconds;
    long sent = 0, errors = 0;
    int active = 0, one = 1;
    for (int i = 0; i < clients; i++) {
        conn_t *c = &conns[i];
        c->fd = socket(AF_INET, SOCK_STREAM, 0);
        setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (connect(c->fd, (struct sockaddr *)&addr, sizeof addr) != 0) { perror("connect"); return 1; }
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
        epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
        c->t0 = now();
        if (send_all(c->fd, payload, plen) != 0) { perror("send"); return 1; }
        sent++, active++;
    }
    struct epoll_event evs[256];
    while (active > 0) {
        int n = epoll_wait(ep, evs, 256, 5000);
        if (n <= 0) { fprintf(stderr, "no answer for 5 s\n"); return 1; }
        for (int k = 0; k < n; k++) {
            conn_t *c = evs[k].data.ptr;
            ssize_t r = recv(c->fd, c->buf + c->got, sizeof c->buf - 1 - c->got, 0);
            if (r <= 0) { fprintf(stderr, "connection closed by the server\n"); return 1; }
            c->got += (size_t)r;
            int ok = 0, done = complete(c, &ok);
            if (done < 0) { fprintf(stderr, "malformed answer\n"); return 1; }
            if (!done) continue;
            double t = now();
            if (c->t0 >= warm) {
                if (nlat < cap) lat[nlat++] = (unsigned)((t - c->t0) * 1e6 + 0.5);
                errors += !ok;
            }
            c->got = 0;
            if (t >= until) { close(c->fd); active--; continue; }
            c->t0 = t;
            if (send_all(c->fd, payload, plen) != 0) { perror("send"); return 1; }
            sent++;
        }
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("%ld %ld %.6f\n", sent, errors, ru.ru_utime.tv_sec + ru.ru_utime.tv_usec * 1e-6 + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec * 1e-6);
    for (size_t i = 0; i < nlat; i++) printf("%u\n", lat[i]);
    return 0;
}
