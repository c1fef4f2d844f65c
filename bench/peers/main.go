// Command peers runs riobench's NOP and random-read workloads with another
// Go io_uring library, github.com/godzie44/go-uring, for comparison rows.
// It is a module of its own so that rio's go.mod does not depend on it.
//
// riobench builds it (go build in this directory) and runs it with the same
// JSON spec it gives its own child processes:
//
//	peers '{"role":"nop","dur":500000000,"batch":32}'
//	peers '{"role":"direct","dur":1000000000,"file":"/tmp/data","depth":32}'
//
// and reads one line "RESULT <json>" from it. riobench pins it where a
// workload needs it (the NOPs) by starting it on the CPUs it should use.
// go-uring's uring package is a port of liburing: a Ring is used by one
// goroutine, which queues SQEs, submits them and reaps CQEs itself, so
// every workload here runs on one goroutine keeping depth operations in
// flight.
package main

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/godzie44/go-uring/uring"
)

type spec struct {
	Role  string        `json:"role"`
	Dur   time.Duration `json:"dur"`
	File  string        `json:"file,omitempty"`
	Depth int           `json:"depth,omitempty"`
	Batch int           `json:"batch,omitempty"`
}

type sample struct {
	Param string             `json:"param"`
	Value float64            `json:"value"`
	Unit  string             `json:"unit"`
	Extra map[string]float64 `json:"extra,omitempty"`
}

func main() {
	if len(os.Args) != 2 {
		fatalf("usage: peers '<spec json>'")
	}
	var s spec
	if err := json.Unmarshal([]byte(os.Args[1]), &s); err != nil {
		fatalf("bad spec: %v", err)
	}
	var (
		res []sample
		err error
	)
	switch s.Role {
	case "nop":
		res, err = nops(s)
	case "direct", "hot":
		res, err = randReads(s)
	default:
		err = fmt.Errorf("go-uring peer: no %q workload", s.Role)
	}
	if err != nil {
		fatalf("%s: %v", s.Role, err)
	}
	b, _ := json.Marshal(res)
	fmt.Printf("RESULT %s\n", b)
}

func fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "peers: "+format+"\n", args...)
	os.Exit(1)
}

func stopAfter(d time.Duration) *atomic.Bool {
	var stop atomic.Bool
	time.AfterFunc(d, func() { stop.Store(true) })
	return &stop
}

// nops: single NOP round trips (queue one, submit and wait for it, reap),
// and batches (queue batch NOPs, submit and wait for all, reap all), as
// bench/c/nopbench does with liburing.
func nops(s spec) ([]sample, error) {
	batch := max(s.Batch, 1)
	entries := uint32(64)
	for entries < uint32(batch) {
		entries <<= 1
	}
	ring, err := uring.New(entries)
	if err != nil {
		return nil, err
	}
	defer ring.Close()
	cqes := make([]*uring.CQEvent, batch)
	roundTrip := func(n int) error {
		for i := 0; i < n; i++ {
			if err := ring.QueueSQE(uring.Nop(), 0, uint64(i)); err != nil {
				return err
			}
		}
		if _, err := ring.SubmitAndWaitCQEvents(uint32(n)); err != nil {
			return err
		}
		got := ring.PeekCQEventBatch(cqes[:n])
		for _, c := range cqes[:got] {
			if err := c.Error(); err != nil {
				return err
			}
		}
		if got != n {
			return fmt.Errorf("reaped %d of %d", got, n)
		}
		ring.AdvanceCQ(uint32(got))
		return nil
	}
	measure := func(n int, d time.Duration) (float64, error) {
		stop := stopAfter(d)
		start := time.Now()
		ops := 0
		for !stop.Load() {
			for k := 0; k < 64; k++ {
				if err := roundTrip(n); err != nil {
					return 0, err
				}
				ops += n
			}
		}
		return float64(ops) / time.Since(start).Seconds(), nil
	}
	if _, err := measure(batch, min(s.Dur/20, 100*time.Millisecond)); err != nil {
		return nil, err
	}
	single, err := measure(1, s.Dur)
	if err != nil {
		return nil, err
	}
	batched, err := measure(batch, s.Dur)
	if err != nil {
		return nil, err
	}
	return []sample{
		{Param: "single", Value: single, Unit: "ops/s"},
		{Param: fmt.Sprintf("batch%d", batch), Value: batched, Unit: "ops/s"},
	}, nil
}

// randReads: 4 KiB reads at random aligned offsets, depth in flight from
// one goroutine: queue depth reads, then reap what has completed, queue as
// many new reads, and submit them with the next wait.
func randReads(s spec) ([]sample, error) {
	const bs = 4096
	flag := os.O_RDONLY
	if s.Role == "direct" {
		flag |= syscall.O_DIRECT
	}
	f, err := os.OpenFile(s.File, flag, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	blocks := fi.Size() / bs
	depth := max(s.Depth, 1)
	entries := uint32(1)
	for entries < uint32(depth) {
		entries <<= 1
	}
	ring, err := uring.New(entries, uring.WithCQSize(2*entries))
	if err != nil {
		return nil, err
	}
	defer ring.Close()
	bufs := make([][]byte, depth)
	for i := range bufs {
		bufs[i] = alignedBuffer(bs, 4096)
	}
	rng := rand.New(rand.NewPCG(1, 7))
	queue := func(slot int) error {
		return ring.QueueSQE(uring.Read(f.Fd(), bufs[slot], uint64(rng.Int64N(blocks)*bs)), 0, uint64(slot))
	}
	stop := stopAfter(s.Dur)
	start := time.Now()
	for i := 0; i < depth; i++ {
		if err := queue(i); err != nil {
			return nil, err
		}
	}
	inflight, n := depth, 0
	cqes := make([]*uring.CQEvent, depth)
	for inflight > 0 {
		if _, err := ring.SubmitAndWaitCQEvents(1); err != nil {
			if err == syscall.EINTR {
				continue
			}
			return nil, err
		}
		got := ring.PeekCQEventBatch(cqes)
		var slots []int
		for _, c := range cqes[:got] {
			if c.Res != bs {
				return nil, fmt.Errorf("read: %d, %v", c.Res, c.Error())
			}
			slots = append(slots, int(c.UserData))
		}
		ring.AdvanceCQ(uint32(got))
		n += got
		inflight -= got
		if !stop.Load() {
			for _, slot := range slots {
				if err := queue(slot); err != nil {
					return nil, err
				}
				inflight++
			}
		}
	}
	el := time.Since(start)
	runtime.KeepAlive(bufs)
	return []sample{{Value: float64(n) / el.Seconds(), Unit: "IOPS", Extra: map[string]float64{"threads": float64(threadCount())}}}, nil
}

func alignedBuffer(size, align int) []byte {
	b := make([]byte, size+align)
	off := 0
	if r := int(uintptr(unsafe.Pointer(&b[0])) % uintptr(align)); r != 0 {
		off = align - r
	}
	return b[off : off+size : off+size]
}

func threadCount() int {
	ents, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return -1
	}
	return len(ents)
}
