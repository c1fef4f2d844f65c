#!/usr/bin/env bash
# The benchmarks of issue 14, side by side: ReadFile of 10,000 files of
# 4 KiB, ReadFile of one 1 GiB file and fs.WalkDir over DirFS of a tree of
# 100,050 entries, file/ against package os. Each run is a process of its
# own (so that its peak thread count is its own), the two alternate round
# by round, in the other order every other round, and the page cache and
# dentries are warmed before each (cat and find). benchstat compares them.
#
#   quiet bench/file.sh                   # 5 rounds
#   ROUNDS=9 BENCH="WalkDir" quiet bench/file.sh
#
# The data (about 1.1 GiB, 110,000 files) is made in $OUT/data on the
# first run and removed at the end unless KEEP=1.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-5}
OUT=${OUT:-/tmp/rio-bench-file}
BENCH=${BENCH:-ReadFileSmall ReadFileBig WalkDir}
BENCHSTAT=${BENCHSTAT:-$(command -v benchstat || echo ~/go/bin/benchstat)}
export RIO_BENCH_DATA=${RIO_BENCH_DATA:-$OUT/data}
mkdir -p "$OUT" "$RIO_BENCH_DATA"
[ "${KEEP:-0}" = 1 ] || trap 'rm -rf "$RIO_BENCH_DATA"' EXIT
go test -c -o "$OUT/file.test" ./file/

benchtime() {
	case $1 in
	ReadFileSmall) echo 1s ;;
	ReadFileBig) echo 4x ;;
	WalkDir) echo 10x ;;
	*) echo 1s ;;
	esac
}
warm() {
	case $1 in
	ReadFileSmall) find "$RIO_BENCH_DATA/small" -type f -exec cat {} + >/dev/null ;;
	ReadFileBig) cat "$RIO_BENCH_DATA/big/big" >/dev/null ;;
	WalkDir) find "$RIO_BENCH_DATA/tree" >/dev/null ;;
	esac
}

# Make the data.
for b in $BENCH; do
	"$OUT/file.test" -test.run '^$' -test.bench "^Benchmark$b\$/^impl=os\$" -test.benchtime 1x >/dev/null
done

RES="$OUT/results.txt"
: >"$RES"
for i in $(seq "$ROUNDS"); do
	order="rio os"
	[ $((i % 2)) = 0 ] && order="os rio"
	for b in $BENCH; do
		for impl in $order; do
			warm "$b"
			"$OUT/file.test" -test.run '^$' -test.bench "^Benchmark$b\$/^impl=$impl\$" \
				-test.benchtime "$(benchtime "$b")" | grep '^Benchmark' | tee -a "$RES"
		done
	done
done
"$BENCHSTAT" -col /impl "$RES"
