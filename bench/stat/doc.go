// Package stat checks that riobench's benchstat file is what
// golang.org/x/perf reads. It is a module of its own, so that rio's go.mod
// does not depend on x/perf; its only code is a test that parses
// cmd/riobench/testdata/bench.golden.txt (which riobench's TestBenchfmt
// keeps equal to what riobench writes) with x/perf's benchfmt, and
// compares its implementations with benchstat's statistics.
//
//	cd bench/stat && go test ./...
package stat
