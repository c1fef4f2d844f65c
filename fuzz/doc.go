// Package fuzz holds rio's native Go fuzz targets. They drive the public
// API of package rio over the simulated kernel of internal/sim:
//
//   - FuzzSQEEncoding: every operation's SQE, decoded field by field,
//     equals what the kernel's ABI says its arguments become, and every
//     other field is zero (no field bleeds into another);
//   - FuzzCQEResult: a CQE's result becomes the operation's value or an
//     error matching its errno;
//   - FuzzRingIndexWrap: submission and completion around the uint32
//     wrap-around of the ring indices, for every ring size;
//   - FuzzProgram: programs of file operations, run with injected faults,
//     agree with the in-memory model.
//
// Run one for a while with, for example:
//
//	go test ./fuzz -run='^$' -fuzz='^FuzzSQEEncoding$' -fuzztime=5m
//
// The seed corpus is in testdata/fuzz; plain go test runs it.
package fuzz
