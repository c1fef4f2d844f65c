#!/usr/bin/env bash
# Side-by-side NOP benchmark: C with liburing (bench/c) against rio, run in
# alternation on the same CPU so that machine drift hits both alike. Prints
# the median of each and rio's throughput as a fraction of C's. The last
# row compares 32 r.Nop() calls then 32 Waits (no Batch) with C's batch.
#
#   bench/nop.sh              # 5 rounds of 1 s each on CPU 1
#   ROUNDS=9 CPU=0 bench/nop.sh
#
# Needs liburing-dev (apt-get install -y liburing-dev) for the C side.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-5}
CPU=${CPU:-1}
OUT=${OUT:-/tmp/rio-bench-c}

make -s -C bench/c OUT="$OUT"
go test -c -o "$OUT/rio.test" .

for i in $(seq "$ROUNDS"); do
	taskset -c "$CPU" "$OUT/nopbench" 1 32
	taskset -c "$CPU" "$OUT/rio.test" -test.run '^$' -test.benchtime 1s -test.bench '^BenchmarkNop$/^armed-on-demand$'
	taskset -c "$CPU" "$OUT/rio.test" -test.run '^$' -test.benchtime 1s -test.bench '^BenchmarkNopBatch32$'
	taskset -c "$CPU" "$OUT/rio.test" -test.run '^$' -test.benchtime 1s -test.bench '^BenchmarkNopOneByOne32$'
done | awk '
	/^nop_single/ { for (i = 1; i <= NF; i++) if ($i ~ /^ns_per_op=/) { sub("ns_per_op=", "", $i); c1[n1++] = $i } }
	/^nop_batch32/ { for (i = 1; i <= NF; i++) if ($i ~ /^ns_per_op=/) { sub("ns_per_op=", "", $i); c32[n32++] = $i } }
	/^BenchmarkNop\/armed-on-demand/ { g1[m1++] = $3 }
	/^BenchmarkNopBatch32/ { g32[m32++] = $3 }
	/^BenchmarkNopOneByOne32/ { o32[k32++] = $3 }
	function median(a, n,   i, j, t) {
		for (i = 0; i < n; i++) for (j = i + 1; j < n; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
		return n % 2 ? a[int(n / 2)] : (a[n / 2 - 1] + a[n / 2]) / 2
	}
	END {
		s1 = median(c1, n1); b1 = median(g1, m1); s32 = median(c32, n32); b32 = median(g32, m32); o = median(o32, k32)
		printf "%-22s %12s %12s %10s\n", "workload", "C ns/op", "rio ns/op", "rio/C"
		printf "%-22s %12.1f %12.1f %9.0f%%\n", "NOP round trip", s1, b1, 100 * s1 / b1
		printf "%-22s %12.1f %12.1f %9.0f%%\n", "NOP batch of 32", s32, b32, 100 * s32 / b32
		printf "%-22s %12.1f %12.1f %9.0f%%\n", "32 NOPs one by one", s32, o, 100 * s32 / o
		printf "(medians of %d alternating rounds; rio/C is throughput relative to C)\n", n1
	}'
