#!/usr/bin/env bash
# Where does a received message cost the server its time? Runs the echo
# servers of bench/net (package net, rionet) and the bench/issuer
# experiment (a locked issuer thread on a raw ring) in alternation against
# the same client, and prints for each run the requests per second, the
# server's CPU time per request and its context switches per request.
#
#   bench/issuer.sh                 # 3 rounds, 256 connections, 64 B
#   ROUNDS=5 CONNS=16 bench/issuer.sh
#
# CPU time and context switches are the server process's (every thread),
# read from /proc just before it is stopped, over the client's warm-up and
# measured run together.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
CONNS=${CONNS:-256}
SIZE=${SIZE:-64}
DUR=${DUR:-3s}
OUT=${OUT:-/tmp/rio-bench-issuer}
mkdir -p "$OUT"
go build -o "$OUT/nb" ./bench/net
go build -o "$OUT/issuer" ./bench/issuer
tck=$(getconf CLK_TCK)

run() {
	local name=$1
	shift
	"$@" >"$OUT/server.out" 2>&1 &
	local pid=$!
	local addr=""
	for _ in $(seq 50); do
		addr=$(grep -o '127.0.0.1:[0-9]*' "$OUT/server.out" | head -1 || true)
		[ -n "$addr" ] && break
		sleep 0.1
	done
	local res
	res=$("$OUT/nb" echo-client -addr "$addr" -conns "$CONNS" -size "$SIZE" -dur "$DUR")
	local ticks cs
	ticks=$(awk '{print $14 + $15}' "/proc/$pid/stat")
	cs=$(cat /proc/"$pid"/task/*/status | awk '/ctxt_switches/ {s += $2} END {print s}')
	kill "$pid"
	wait "$pid" 2>/dev/null || true
	echo "$res" | awk -v name="$name" -v ticks="$ticks" -v tck="$tck" -v cs="$cs" '{
		match($0, /"rps":[0-9.e+]+/); rps = substr($0, RSTART + 6, RLENGTH - 6)
		match($0, /"total":[0-9.e+]+/); total = substr($0, RSTART + 8, RLENGTH - 8)
		printf "%-22s %8.0f req/s  %6.2f µs CPU/req  %5.3f switches/req\n", name, rps, ticks / tck * 1e6 / total, cs / total
	}'
}

echo "echo, $CONNS conns, $SIZE B, $ROUNDS rounds of $DUR"
for _ in $(seq "$ROUNDS"); do
	run "net" "$OUT/nb" echo-server -impl std
	run "rionet" "$OUT/nb" echo-server -impl rio
	run "issuer defer" "$OUT/issuer" -mode defer
	run "issuer defer -block" "$OUT/issuer" -mode defer -block
	run "issuer coop -block" "$OUT/issuer" -mode coop -block
done
