package rionet_test

import (
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	rionet "github.com/gorio/rio/net"
)

// TestParkedReadStack checks that goroutines blocked in Read on idle
// connections stay within the minimum goroutine stack (2 KiB), as they do
// in package net: the first Read submits the receive and parks without
// growing the stack to 4 KiB, which the GC would never shrink back (it
// shrinks a stack only when less than a quarter of it is in use, counting
// the guard area). It measures runtime.MemStats.StackInuse, so it is a
// statement about most readers, not each: an allocation that takes the
// runtime's slow path (a fresh span, a GC assist) can grow a goroutine's
// stack anywhere, and the first Read allocates the receive stream and
// parks. To measure in a known state, it runs in a process of its own,
// with the GC off while it measures.
func TestParkedReadStack(t *testing.T) {
	if raceBuild {
		t.Skip("the race detector makes stacks larger")
	}
	if os.Getenv("RIONET_STACK_CHILD") != "1" {
		cmd := exec.Command(os.Args[0], "-test.run=^TestParkedReadStack$", "-test.count=1", "-test.v")
		cmd.Env = append(os.Environ(), "RIONET_STACK_CHILD=1")
		out, err := cmd.CombinedOutput()
		if strings.Contains(string(out), "--- SKIP") {
			t.Skipf("child skipped:\n%s", out)
		}
		require.NoError(t, err, "child:\n%s", out)
		t.Logf("child:\n%s", out)
		return
	}
	ln := listen(t, "tcp")
	const n = 500
	servers := make([]*rionet.Conn, n)
	for i := range servers {
		_, servers[i] = pair(t, ln)
	}
	bufs := make([][]byte, n)
	for i := range bufs {
		bufs[i] = make([]byte, 4096)
	}

	runtime.GC() // and finish sweeping
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	var wg sync.WaitGroup
	for i, c := range servers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			readInHandler(c, bufs[i])
		}()
	}
	// Wait until every reader has parked in Read.
	stacks := make([]byte, 4<<20)
	for deadline := time.Now().Add(20 * time.Second); parkedReaders(stacks) < n; {
		if time.Now().After(deadline) {
			require.Failf(t, "readers did not park", "only %d of %d readers parked in Read", parkedReaders(stacks), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	runtime.ReadMemStats(&after)
	perReader := (int64(after.StackInuse) - int64(before.StackInuse)) / n

	for _, c := range servers {
		c.Close()
	}
	wg.Wait()
	t.Logf("stack in use per parked reader: %d bytes", perReader)
	// 2 KiB each when no reader grew its stack, 4 KiB when every one did.
	assert.LessOrEqual(t, perReader, int64(3<<10), "stack bytes each goroutine parked in Read uses; want about 2048")
}

// readInHandler reads from c with a frame the size of a small handler's
// above Read, as a server's per-connection goroutine has.
//
//go:noinline
func readInHandler(c *rionet.Conn, buf []byte) {
	var state [96]byte
	n, _ := c.Read(buf)
	state[n%len(state)]++
	sinkByte = state[n%len(state)]
}

var sinkByte byte

// parkedReaders counts the goroutines blocked in (*Conn).Read, using buf
// for runtime.Stack.
func parkedReaders(buf []byte) int {
	all := string(buf[:runtime.Stack(buf, true)])
	k := 0
	for _, g := range strings.Split(all, "\n\n") {
		if strings.Contains(g, "[semacquire") && strings.Contains(g, "rio/net.(*Conn).Read(") && strings.Contains(g, "readInHandler") {
			k++
		}
	}
	return k
}
