/*
 * rio C baseline: io_uring NOP cost measured through liburing.
 *
 * Two measurements, each run for a fixed wall-clock duration:
 *   nop_single   - one NOP per io_uring_enter: prep, submit+wait for 1, reap.
 *   nop_batch<N> - N NOPs queued, one io_uring_enter that submits all N and
 *                  waits for N completions, then all N reaped.
 *
 * Output: one key=value line per measurement, e.g.
 *   nop_single ops_per_sec=1950000 ns_per_op=512.8 enters=... cpu_ns_per_op=...
 *
 * Usage: nopbench [seconds=2] [batch=32]
 * Build: cc -O2 -o nopbench nopbench.c -luring   (see Makefile)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <liburing.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* How many rounds run between two looks at the clock. */
#define ROUNDS_PER_CLOCK_CHECK 512

struct result {
	uint64_t ops;    /* NOPs completed */
	uint64_t enters; /* submit(-and-wait) calls made */
	double wall_s;   /* wall time */
	double cpu_s;    /* process CPU time (user+sys) */
};

static double clock_s(clockid_t id)
{
	struct timespec ts;
	clock_gettime(id, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what, int err)
{
	fprintf(stderr, "nopbench: %s: %s\n", what, strerror(err < 0 ? -err : err));
	exit(1);
}

/*
 * Queue `n` NOPs, enter the kernel once to submit them and wait for all `n`
 * completions, then consume every CQE. Returns the number reaped.
 */
static unsigned round_trip(struct io_uring *ring, unsigned n, uint64_t *tag)
{
	for (unsigned i = 0; i < n; i++) {
		struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
		if (!sqe)
			die("get_sqe (SQ full)", EBUSY);
		io_uring_prep_nop(sqe);
		io_uring_sqe_set_data64(sqe, ++*tag);
	}

	int rc = io_uring_submit_and_wait(ring, n);
	if (rc < 0)
		die("submit_and_wait", rc);

	unsigned head, seen = 0;
	struct io_uring_cqe *cqe;
	io_uring_for_each_cqe(ring, head, cqe) {
		if (cqe->res < 0)
			die("nop completion", cqe->res);
		seen++;
	}
	io_uring_cq_advance(ring, seen);
	return seen;
}

/* Run round trips of `n` NOPs until `seconds` of wall time have passed. */
static struct result measure(struct io_uring *ring, unsigned n, double seconds)
{
	struct result r = {0};
	uint64_t tag = 0;
	double wall0 = clock_s(CLOCK_MONOTONIC);
	double cpu0 = clock_s(CLOCK_PROCESS_CPUTIME_ID);
	double deadline = wall0 + seconds;
	double wall1;

	for (;;) {
		for (int k = 0; k < ROUNDS_PER_CLOCK_CHECK; k++) {
			unsigned got = round_trip(ring, n, &tag);
			if (got != n) {
				fprintf(stderr, "nopbench: reaped %u of %u\n", got, n);
				exit(1);
			}
			r.ops += got;
			r.enters++;
		}
		wall1 = clock_s(CLOCK_MONOTONIC);
		if (wall1 >= deadline)
			break;
	}
	r.wall_s = wall1 - wall0;
	r.cpu_s = clock_s(CLOCK_PROCESS_CPUTIME_ID) - cpu0;
	return r;
}

static void report(const char *name, const struct result *r)
{
	printf("%s ops_per_sec=%.0f ns_per_op=%.1f enters=%llu ops=%llu secs=%.3f cpu_ns_per_op=%.1f\n",
	       name, (double)r->ops / r->wall_s, r->wall_s * 1e9 / (double)r->ops,
	       (unsigned long long)r->enters, (unsigned long long)r->ops, r->wall_s,
	       r->cpu_s * 1e9 / (double)r->ops);
	fflush(stdout);
}

int main(int argc, char **argv)
{
	double seconds = argc > 1 ? strtod(argv[1], NULL) : 2.0;
	long batch = argc > 2 ? strtol(argv[2], NULL, 10) : 32;
	if (seconds <= 0 || batch < 1 || batch > 4096) {
		fprintf(stderr, "usage: %s [seconds>0 (default 2)] [batch 1..4096 (default 32)]\n", argv[0]);
		return 2;
	}

	/* SQ at least as big as a batch; the CQ is twice that by default. */
	unsigned entries = 64;
	while (entries < (unsigned)batch)
		entries <<= 1;

	struct io_uring ring;
	int rc = io_uring_queue_init(entries, &ring, 0);
	if (rc < 0)
		die("io_uring_queue_init", rc);

	/* Short warm-up so page faults on the rings and caches don't count. */
	measure(&ring, (unsigned)batch, seconds / 20 < 0.1 ? seconds / 20 : 0.1);

	struct result single = measure(&ring, 1, seconds);
	report("nop_single", &single);

	char name[32];
	snprintf(name, sizeof name, "nop_batch%ld", batch);
	struct result many = measure(&ring, (unsigned)batch, seconds);
	report(name, &many);

	io_uring_queue_exit(&ring);
	return 0;
}
