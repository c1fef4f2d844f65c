#!/usr/bin/env bash
# Page-cache-hot 4 KiB random reads on one CPU: fio's io_uring engine at
# queue depth 1 against rio (one goroutine, ReadAt then Wait), alternating.
# Both files are kept resident (mapped and locked) during the runs.
#
#   bench/hotread.sh            # 5 rounds on CPU 1
# Needs fio (apt-get install -y fio).
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-5}
CPU=${CPU:-1}
OUT=${OUT:-/tmp/rio-bench-hot}
mkdir -p "$OUT"
go test -c -o "$OUT/rio.test" .
FILE="$OUT/hot64m"
[ -f "$FILE" ] || head -c $((64 << 20)) /dev/urandom >"$FILE"
RIO_TEST_CHILD=pin RIO_PIN_FILE="$FILE" "$OUT/rio.test" 2>/dev/null &
PIN=$!
trap 'kill $PIN 2>/dev/null; rm -f "$FILE"' EXIT
sleep 1

for i in $(seq "$ROUNDS"); do
	taskset -c "$CPU" fio --name=hot --filename="$FILE" --ioengine=io_uring --rw=randread --bs=4k \
		--iodepth=1 --direct=0 --runtime=2 --time_based --output-format=terse --terse-version=3 |
		awk -F';' '{ print "fio_iops", $8 }'
	taskset -c "$CPU" "$OUT/rio.test" -test.run '^$' -test.benchtime 2s -test.bench '^BenchmarkReadHot4K$/^rio$' |
		awk '/^BenchmarkReadHot4K/ { print "rio_iops", 1e9 / $3 }'
done | awk '
	/^fio_iops/ { f[nf++] = $2 }
	/^rio_iops/ { g[ng++] = $2 }
	function median(a, n,   i, j, t) {
		for (i = 0; i < n; i++) for (j = i + 1; j < n; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
		return n % 2 ? a[int(n / 2)] : (a[n / 2 - 1] + a[n / 2]) / 2
	}
	END {
		mf = median(f, nf); mg = median(g, ng)
		printf "%-34s %10s\n", "4 KiB hot random reads, one CPU", "IOPS"
		printf "%-34s %10.0f\n", "fio io_uring, iodepth 1", mf
		printf "%-34s %10.0f\n", "rio ReadAt+Wait, one goroutine", mg
		printf "rio/fio: %.0f%% (medians of %d alternating rounds)\n", 100 * mg / mf, nf
	}'
