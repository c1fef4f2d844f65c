#!/usr/bin/env bash
# Side-by-side benchmarks of rionet's features beyond net.Conn against
# package net (issue 13): UDP echo (BenchmarkUDPEcho: package net, rionet's
# recvmsg tried directly then on the ring, ring only, multishot recvmsg)
# a TCP echo in one process for reference (BenchmarkTCPEcho), and serving a
# 64 MiB file over net/http (BenchmarkServeFile: package net, rionet). Every
# round runs every variant once, so that machine drift hits them alike;
# benchstat then summarizes the rounds.
#
#   quiet bench/netfeat.sh                 # 8 rounds of each
#   ROUNDS=10 ONLY=ServeFile quiet bench/netfeat.sh
#
# Raw results go to $OUT/netfeat.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-8}
ONLY=${ONLY:-UDPEcho|TCPEcho|ServeFile}
OUT=${OUT:-/tmp/rio-bench-netfeat}
mkdir -p "$OUT"

go test -c -o "$OUT/rionet.test" ./net/
: >"$OUT/netfeat.txt"
for i in $(seq "$ROUNDS"); do
	if [[ UDPEcho =~ ^($ONLY)$ ]]; then
		"$OUT/rionet.test" -test.run '^$' -test.bench '^BenchmarkUDPEcho$' -test.benchtime 20000x >>"$OUT/netfeat.txt"
	fi
	if [[ TCPEcho =~ ^($ONLY)$ ]]; then
		"$OUT/rionet.test" -test.run '^$' -test.bench '^BenchmarkTCPEcho$' -test.benchtime 20000x >>"$OUT/netfeat.txt"
	fi
	if [[ ServeFile =~ ^($ONLY)$ ]]; then
		"$OUT/rionet.test" -test.run '^$' -test.bench '^BenchmarkServeFile$' -test.benchtime 20x >>"$OUT/netfeat.txt"
	fi
done
~/go/bin/benchstat -col /impl "$OUT/netfeat.txt" 2>/dev/null || ~/go/bin/benchstat "$OUT/netfeat.txt"
