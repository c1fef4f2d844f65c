// client.c - the echo client of bench/loop: conns connections over
// threads epoll threads, each connection sending a message of size bytes
// and waiting for the whole echo before sending the next. It is written in
// C so that the client's own cost (it shares the machine with the server)
// is small and the same for every server.
//
//   gcc -O2 -pthread -o client client.c
//   ./client -a 127.0.0.1 -p PORT -c 256 -s 64 -d 3 -w 0.5 [-t 1] [-i]
//
// It prints "measuring" when the warm-up ends, then one JSON line:
// {"rps":..., "p50_us":..., "p99_us":..., "total":...}. With -i it opens
// the connections, prints "idle N", and waits for SIGTERM without sending.
// With -n (churn) each of the threads instead connects, sends one message,
// reads the echo and closes, over and over: "rps" counts connections.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static const char *host = "127.0.0.1";
static int port, nconns = 256, size = 64, nthreads = 1, idle, churn;
static struct sockaddr_in srvaddr;
static double dur = 3, warm = 0.5;
static volatile int measuring, stopping;

struct conn {
	int fd, got;
	uint64_t sent_ns;
};

struct thr {
	int first, n;
	uint64_t count;
	uint32_t *lat; // latencies in ns/16, measured phase
	size_t nlat, cap;
};

static uint64_t now_ns(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + ts.tv_nsec;
}

static void die(const char *m) { perror(m); exit(1); }

static struct conn *conns;
static char *msg;

static void send_msg(struct conn *c) {
	c->got = 0;
	c->sent_ns = now_ns();
	int off = 0;
	while (off < size) {
		ssize_t n = write(c->fd, msg + off, size - off);
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR) continue;
			die("write");
		}
		off += n;
	}
}

static void *run(void *arg) {
	struct thr *t = arg;
	int ep = epoll_create1(0);
	char *buf = malloc(size > 65536 ? size : 65536);
	for (int i = t->first; i < t->first + t->n; i++) {
		struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &conns[i]};
		if (epoll_ctl(ep, EPOLL_CTL_ADD, conns[i].fd, &ev) < 0) die("epoll_ctl");
		send_msg(&conns[i]);
	}
	struct epoll_event evs[512];
	while (!stopping) {
		int n = epoll_wait(ep, evs, 512, 100);
		for (int i = 0; i < n; i++) {
			struct conn *c = evs[i].data.ptr;
			ssize_t r = read(c->fd, buf, size - c->got);
			if (r <= 0) {
				if (r < 0 && (errno == EAGAIN || errno == EINTR)) continue;
				fprintf(stderr, "client: connection closed by server\n");
				exit(1);
			}
			c->got += r;
			if (c->got < size) continue;
			if (measuring) {
				t->count++;
				if (t->nlat == t->cap) {
					t->cap = t->cap ? 2 * t->cap : 1 << 20;
					t->lat = realloc(t->lat, t->cap * sizeof *t->lat);
				}
				uint64_t d = (now_ns() - c->sent_ns) / 16;
				t->lat[t->nlat++] = d > UINT32_MAX ? UINT32_MAX : (uint32_t)d;
			}
			send_msg(c);
		}
	}
	return NULL;
}

// churner connects, echoes one message and closes, until stopping.
static void *churner(void *arg) {
	struct thr *t = arg;
	char *buf = malloc(size);
	while (!stopping) {
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0) die("socket");
		uint64_t t0 = now_ns();
		if (connect(fd, (struct sockaddr *)&srvaddr, sizeof srvaddr) < 0) die("connect");
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
		if (write(fd, msg, size) != size) die("write");
		for (int got = 0; got < size;) {
			ssize_t r = read(fd, buf + got, size - got);
			if (r <= 0) die("read");
			got += r;
		}
		struct linger lg = {1, 0}; // reset: no TIME_WAIT pile-up on the client's ports
		setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
		close(fd);
		if (measuring) {
			t->count++;
			if (t->nlat == t->cap) {
				t->cap = t->cap ? 2 * t->cap : 1 << 20;
				t->lat = realloc(t->lat, t->cap * sizeof *t->lat);
			}
			uint64_t d = (now_ns() - t0) / 16;
			t->lat[t->nlat++] = d > UINT32_MAX ? UINT32_MAX : (uint32_t)d;
		}
	}
	return NULL;
}

static int cmp(const void *a, const void *b) {
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

static void onterm(int s) { (void)s; }

int main(int argc, char **argv) {
	int opt;
	while ((opt = getopt(argc, argv, "a:p:c:s:d:w:t:in")) != -1) {
		switch (opt) {
		case 'a': host = optarg; break;
		case 'p': port = atoi(optarg); break;
		case 'c': nconns = atoi(optarg); break;
		case 's': size = atoi(optarg); break;
		case 'd': dur = atof(optarg); break;
		case 'w': warm = atof(optarg); break;
		case 't': nthreads = atoi(optarg); break;
		case 'i': idle = 1; break;
		case 'n': churn = 1; break;
		}
	}
	signal(SIGPIPE, SIG_IGN);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
	inet_pton(AF_INET, host, &sa.sin_addr);
	srvaddr = sa;
	conns = calloc(nconns, sizeof *conns);
	msg = malloc(size);
	memset(msg, 'x', size);
	for (int i = 0; i < nconns && !churn; i++) {
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0) die("socket");
		if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) die("connect");
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
		conns[i].fd = fd;
	}
	if (idle) {
		struct sigaction act = {.sa_handler = onterm};
		sigaction(SIGTERM, &act, NULL);
		printf("idle %d\n", nconns);
		fflush(stdout);
		pause();
		return 0;
	}
	struct thr *ts = calloc(nthreads, sizeof *ts);
	pthread_t *th = calloc(nthreads, sizeof *th);
	for (int i = 0, first = 0; i < nthreads; i++) {
		ts[i].first = first;
		ts[i].n = nconns / nthreads + (i < nconns % nthreads);
		first += ts[i].n;
		pthread_create(&th[i], NULL, churn ? churner : run, &ts[i]);
	}
	usleep((useconds_t)(warm * 1e6));
	printf("measuring\n");
	fflush(stdout);
	uint64_t t0 = now_ns();
	measuring = 1;
	usleep((useconds_t)(dur * 1e6));
	measuring = 0;
	uint64_t el = now_ns() - t0;
	stopping = 1;
	for (int i = 0; i < nthreads; i++) pthread_join(th[i], NULL);
	uint64_t count = 0;
	size_t nl = 0;
	for (int i = 0; i < nthreads; i++) count += ts[i].count, nl += ts[i].nlat;
	uint32_t *all = malloc((nl ? nl : 1) * sizeof *all);
	for (int i = 0, k = 0; i < nthreads; i++) {
		memcpy(all + k, ts[i].lat, ts[i].nlat * sizeof *all);
		k += ts[i].nlat;
	}
	qsort(all, nl, sizeof *all, cmp);
	double p50 = nl ? all[nl / 2] * 16 / 1e3 : 0, p99 = nl ? all[nl * 99 / 100] * 16 / 1e3 : 0;
	printf("{\"rps\":%.0f,\"p50_us\":%.1f,\"p99_us\":%.1f,\"total\":%llu}\n", count / (el / 1e9), p50, p99,
	       (unsigned long long)count);
	return 0;
}
