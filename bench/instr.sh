#!/usr/bin/env bash
# User-space instructions per operation of root-package benchmarks, counted
# by callgrind: deterministic where the machine's timing noise hides changes
# of a few percent. Each benchmark runs twice (N1 and N2 iterations); the
# difference, divided by N2-N1, leaves out setup. The kernel's side is not
# counted, which is the point: what remains is rio's own work.
#
#   bench/instr.sh                                   # the reused NOP paths
#   bench/instr.sh BenchmarkNopBatch32 BenchmarkNop/armed-on-demand
#   N1=20000 N2=100000 bench/instr.sh ...
#
# callgrind aborts on cgo's signal handling and on Go's preemption
# signals, hence CGO_ENABLED=0 and asyncpreemptoff; -test.cpu 1 keeps the
# runtime's idle spinning out of the count. Needs valgrind.
set -euo pipefail
cd "$(dirname "$0")/.."
N1=${N1:-20000}
N2=${N2:-100000}
BIN=${BIN:-/tmp/rio-instr.test}
[ $# -gt 0 ] || set -- BenchmarkNopBatch32Recycled BenchmarkNopReleased BenchmarkNopOneByOne32Released
CGO_ENABLED=0 go test -c -o "$BIN" .
count() { # count BENCH N: instructions of the whole run
	GODEBUG=asyncpreemptoff=1 valgrind --tool=callgrind --callgrind-out-file=/dev/null \
		"$BIN" -test.run '^$' -test.bench "^${1//\//\$/^}\$" -test.benchtime "${2}x" -test.cpu 1 2>&1 |
		sed -n 's/.*Collected : //p'
}
for b in "$@"; do
	a=$(count "$b" "$N1")
	z=$(count "$b" "$N2")
	echo "$b $(((z - a) / (N2 - N1))) instructions/op"
done
