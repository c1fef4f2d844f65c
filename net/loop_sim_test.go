package rionet_test

import (
	"bytes"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gorio/rio/internal/sim"
	"github.com/gorio/rio/internal/uring"
	rionet "github.com/gorio/rio/net"
	"github.com/gorio/rio/riotest"
)

func noKernel(uint32, *uring.Params) (uring.Kernel, error) {
	return nil, os.NewSyscallError("io_uring_setup", syscall.ENOSYS)
}

// loopFaults are the simulated kernel's faults for the loops: short sends
// and receives, ENOBUFS, EINTR and EAGAIN results, cancellations that find
// their operation running (EALREADY, then ECANCELED or EINTR), late and
// reordered completions, and enter failures, short submissions and CQ
// overflow.
func loopFaults() sim.Faults {
	return sim.Faults{
		MaxDelay: 8, ShortIO: 0.3, NoBufs: 0.1, OpEINTR: 0.05, OpEAGAIN: 0.05, CancelRace: 0.3,
		EnterEINTR: 0.05, EnterEAGAIN: 0.02, EnterEBUSY: 0.02, ShortSubmit: 0.2, Overflow: 0.1,
	}
}

// The loops over the simulated kernel with faults, over many seeds: every
// connection's echo is byte-exact, every connection is closed, and the
// simulated kernel sees no protocol violation (the loop's ring Close
// would report it as an invariant violation: operations in flight,
// completions not reaped, a user_data reused while in flight).
func TestLoopSimFaults(t *testing.T) {
	defer rionet.SetPoisonForTest(true)()
	var mu sync.Mutex
	var total sim.Stats
	riotest.ForSeeds(t, 6, func(t *testing.T, seed uint64) {
		var kernels []*sim.Kernel
		var aborting sync.Mutex
		aborts := map[string]bool{} // peers whose connection the handler aborts
		// Runs after serveLoop's checks (cleanups run last first).
		t.Cleanup(func() {
			mu.Lock()
			defer mu.Unlock()
			for _, k := range kernels {
				st := k.Stats()
				total.ShortIO += st.ShortIO
				total.NoBufs += st.NoBufs
				total.OpErrors += st.OpErrors
				total.CancelRaces += st.CancelRaces
				total.EnterErrors += st.EnterErrors
				total.ShortSubmit += st.ShortSubmit
				total.Overflows += st.Overflows
			}
		})
		s := &rionet.LoopServer{
			Loops:          2,
			ReadBuffers:    8, // few buffers: the ring runs dry for real too
			MaxWriteBuffer: 32 << 10,
			IdleTimeout:    time.Minute, // keeps the tick armed
			OnData: func(c *rionet.LoopConn, data []byte) int {
				if c.Value == nil {
					// nil if the peer is gone already (a reset).
					if ra := c.RemoteAddr(); ra != nil {
						aborting.Lock()
						c.Value = aborts[ra.String()]
						aborting.Unlock()
					}
				}
				if c.Value == true {
					if i := bytes.IndexByte(data, 'P'); i >= 0 {
						c.Write(data[:i])
						panic("abort with sends in flight")
					}
				}
				return echoHandler(c, data)
			},
		}
		rionet.SetLoopKernelForTest(s, func(entries uint32, p *uring.Params) (uring.Kernel, error) {
			mu.Lock()
			defer mu.Unlock()
			k, err := sim.New(sim.Config{Seed: seed*16 + uint64(len(kernels)), Faults: loopFaults()}, entries, p)
			if err == nil {
				kernels = append(kernels, k)
			}
			return k, err
		})
		lt := serveLoop(t, s)
		r := rand.New(rand.NewPCG(seed, 2))
		const n = 6
		var wg sync.WaitGroup
		for i := 0; i < n; i++ {
			c := lt.dial()
			msgs := randMsgs(r, 1+r.IntN(4), 3000)
			wg.Add(1)
			go func() {
				defer wg.Done()
				c.SetDeadline(time.Now().Add(60 * time.Second))
				assert.NoError(t, echoCheck(t, c, msgs), "seed %d conn %d", seed, i)
				c.Close()
			}()
		}
		// A connection closed by a handler panic while sends to it are in
		// flight: its peer gets a prefix of its echo, never bytes of a
		// chunk that was freed (and poisoned) under the send.
		for i := 0; i < 2; i++ {
			c := lt.dial()
			aborting.Lock()
			aborts[c.LocalAddr().String()] = true
			aborting.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				c.SetDeadline(time.Now().Add(60 * time.Second))
				go func() {
					c.Write(bytes.Repeat([]byte{'x'}, 30000))
					c.Write([]byte{'P'})
				}()
				b, _ := io.ReadAll(c)
				if j := bytes.IndexFunc(b, func(r rune) bool { return r != 'x' }); j >= 0 {
					assert.Failf(t, "an aborted connection's peer got a byte not sent", "seed %d: byte %#x at %d of %d", seed, b[j], j, len(b))
				}
			}()
		}
		// Peers that reset while the loop has sends in flight to them:
		// their queues are dropped, the chunk a send still reads is kept
		// until its completion (poisoned chunks would corrupt the echoes
		// above otherwise), and the loop goes on.
		for i := 0; i < 2; i++ {
			c := lt.dial()
			wg.Add(1)
			go func() {
				defer wg.Done()
				c.Write(make([]byte, 20000))
				c.(*net.TCPConn).SetLinger(0)
				c.Close()
			}()
		}
		wg.Wait()
		lt.waitClosed(n + 4)
		// Connections still busy when the test ends: Close cancels
		// their receives and sends and reaps them before closing the
		// rings (the simulated kernel reports a ring closed with
		// operations in flight or completions not reaped).
		for i := 0; i < 3; i++ {
			c := lt.dial()
			require.NoError(t, echoCheck(t, c, [][]byte{[]byte("busy")}))
			go func() {
				buf := make([]byte, 4096)
				for {
					if _, err := c.Write(buf); err != nil {
						return
					}
				}
			}()
		}
	})
	if t.Failed() {
		return
	}
	// The faults the test is about did happen.
	for name, v := range map[string]uint64{
		"short sends and receives": total.ShortIO, "ENOBUFS": total.NoBufs, "EINTR/EAGAIN results": total.OpErrors,
		"enter errors": total.EnterErrors, "short submissions": total.ShortSubmit, "overflows": total.Overflows,
	} {
		assert.NotZero(t, v, "no %s injected over all seeds", name)
	}
	t.Logf("faults injected: %+v", total)
}
