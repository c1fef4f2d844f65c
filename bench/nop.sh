#!/usr/bin/env bash
# Side-by-side NOP benchmark: C with liburing (bench/c) against rio, run in
# alternation on the same CPU so that machine drift hits both alike. Prints
# the median (and range) of each and rio's throughput as a fraction of C's.
# The "one by one" rows compare 32 r.Nop() calls then 32 Waits (no Batch)
# with C's batch. The "reused" rows are the same loops with the
# Completions handed back for reuse (Completion.Release, Batch.Recycle):
# no allocation per operation. The "floor" row is the batch's system call
# alone, on a ring set up as New does, with rio's tracking held off
# (BenchmarkNopBatch32Floor): what the batch costs above it is rio's own.
#
#   bench/nop.sh              # 5 rounds of 1 s each on CPU 1
#   ROUNDS=9 CPU=0 bench/nop.sh
#   BASE=main bench/nop.sh    # also alternate rio at git revision main
#
# Needs liburing-dev (apt-get install -y liburing-dev) for the C side.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-5}
CPU=${CPU:-1}
OUT=${OUT:-/tmp/rio-bench-c}
BASE=${BASE:-}

make -s -C bench/c OUT="$OUT"
go test -c -o "$OUT/rio.test" .
if [ -n "$BASE" ]; then
	rm -rf "$OUT/base"
	git worktree add -q --detach "$OUT/base" "$BASE"
	trap 'git worktree remove --force "$OUT/base"' EXIT
	(cd "$OUT/base" && go test -c -o "$OUT/base.test" .)
fi

bench() { # bench BINARY TAG: every NOP benchmark the binary has, its lines tagged
	taskset -c "$CPU" "$1" -test.run '^$' -test.benchtime 1s \
		-test.bench '^BenchmarkNop(Batch32|Batch32Recycled|Batch32Floor|OneByOne32|OneByOne32Released|Released)?$' 2>/dev/null |
		sed -n "s/^\(BenchmarkNop[A-Za-z0-9]*\)[-/ ]\([a-z-]*\)/$2 \1 \2/p"
}
for i in $(seq "$ROUNDS"); do
	taskset -c "$CPU" "$OUT/nopbench" 1 32
	if [ -n "$BASE" ]; then bench "$OUT/base.test" base; fi
	bench "$OUT/rio.test" rio
done | awk -v base="$BASE" '
	/^nop_single/ { for (i = 1; i <= NF; i++) if ($i ~ /^ns_per_op=/) { sub("ns_per_op=", "", $i); v["C", "rt"] = v["C", "rt"] " " $i } }
	/^nop_batch32/ { for (i = 1; i <= NF; i++) if ($i ~ /^ns_per_op=/) { sub("ns_per_op=", "", $i); v["C", "b32"] = v["C", "b32"] " " $i } }
	/^(base|rio) BenchmarkNop / { if ($3 == "armed-on-demand") v[$1, "rt"] = v[$1, "rt"] " " $5 }
	/^(base|rio) BenchmarkNopReleased / { v[$1, "rtR"] = v[$1, "rtR"] " " $4 }
	/^(base|rio) BenchmarkNopBatch32 / { v[$1, "b32"] = v[$1, "b32"] " " $4 }
	/^(base|rio) BenchmarkNopBatch32Recycled / { v[$1, "b32R"] = v[$1, "b32R"] " " $4 }
	/^(base|rio) BenchmarkNopBatch32Floor / { v[$1, "b32F"] = v[$1, "b32F"] " " $4 }
	/^(base|rio) BenchmarkNopOneByOne32 / { v[$1, "o32"] = v[$1, "o32"] " " $4 }
	/^(base|rio) BenchmarkNopOneByOne32Released / { v[$1, "o32R"] = v[$1, "o32R"] " " $4 }
	function med(s,   a, n, i, j, t) {
		n = split(s, a, " ")
		if (n == 0) return ""
		for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
		lo = a[1]; hi = a[n]
		return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
	}
	function cell(s,   m) { m = med(s); return m == "" ? sprintf("%22s", "-") : sprintf("%8.1f [%5.0f-%5.0f]", m, lo, hi) }
	function row(name, ckey, key,   c, b, r) {
		c = med(v["C", ckey]); cs = cell(v["C", ckey])
		b = med(v["base", key]); bs = cell(v["base", key])
		r = med(v["rio", key]); rs = cell(v["rio", key])
		printf "%-26s %s", name, cs
		if (base != "") printf " %s %6s", bs, b == "" ? "-" : sprintf("%.2fx", c / b)
		printf " %s %6s\n", rs, r == "" ? "-" : sprintf("%.2fx", c / r)
	}
	END {
		printf "%-26s %22s", "workload (ns/op)", "C [range]"
		if (base != "") printf " %22s %6s", base " [range]", "/C"
		printf " %22s %6s\n", "rio [range]", "/C"
		row("NOP round trip", "rt", "rt")
		row("  reused (Release)", "rt", "rtR")
		row("NOP batch of 32", "b32", "b32")
		row("  reused (Recycle)", "b32", "b32R")
		row("  floor (raw enter)", "b32", "b32F")
		row("32 NOPs one by one", "b32", "o32")
		row("  reused (Release)", "b32", "o32R")
		printf "(medians of alternating rounds; x: throughput relative to C; one by one is against C'"'"'s batch)\n"
	}'
