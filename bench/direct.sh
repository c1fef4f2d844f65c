#!/usr/bin/env bash
# O_DIRECT 4 KiB random reads of a 1 GiB file: fio's io_uring engine at
# iodepth 128 (and 256) against file/ with 256 reads in flight from one
# goroutine, waiting for the oldest (rio-async, ReadAtAsync) or taking
# them in completion order and refilling in a Batch (rio-collect), run in
# alternation round by round on the same file. Prints each round and the
# medians.
#
#   quiet bench/direct.sh           # 5 rounds
#   ROUNDS=9 quiet bench/direct.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-5}
OUT=${OUT:-/tmp/rio-bench-direct}
N=${N:-300000} # reads per rio run (a few seconds)
mkdir -p "$OUT"
FILE="$OUT/file1g"
trap 'rm -f "$FILE"' EXIT
go test -c -o "$OUT/file.test" ./file/
# Written with O_DIRECT and synced: the reads must find clean, uncached
# pages (dirty ones send io_uring's reads to its worker threads).
dd if=/dev/urandom of="$FILE" bs=8M count=128 oflag=direct status=none
sync

fio_iops() {
	fio --name=rr --filename="$FILE" --ioengine=io_uring --direct=1 --rw=randread --bs=4k \
		--iodepth="$1" --runtime=5 --time_based --output-format=terse --terse-version=3 | awk -F';' '{ print $8 }'
}
rio_iops() {
	RIO_BENCH_FILE="$FILE" "$OUT/file.test" -test.run '^$' -test.benchtime "${N}x" \
		-test.bench "^BenchmarkDirectRandRead\$/^depth=256\$/^impl=$1\$" |
		awk '/^Benchmark/ { for (i = 1; i < NF; i++) if ($(i + 1) == "IOPS") print $i }'
}

for i in $(seq "$ROUNDS"); do
	echo "round $i fio128 $(fio_iops 128) fio256 $(fio_iops 256) rio-async $(rio_iops rio-async) rio-collect $(rio_iops rio-collect)"
done | tee "$OUT/rounds.txt" | awk '
	{ print; for (k = 3; k <= NF; k += 2) { v[$k, n[$k]++] = $(k + 1); names[$k] = 1 } }
	function median(name,   m, i, j, t, a) {
		m = n[name]
		for (i = 0; i < m; i++) a[i] = v[name, i]
		for (i = 0; i < m; i++) for (j = i + 1; j < m; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
		return m % 2 ? a[int(m / 2)] : (a[m / 2 - 1] + a[m / 2]) / 2
	}
	END {
		f = median("fio128")
		for (k in names) printf "%-12s median %8.0f IOPS  %.2fx fio128\n", k, median(k), median(k) / f
	}'
