// Package soak runs a mixed workload on the real kernel for a while and
// checks, every few seconds, that no byte was lost or changed and that
// descriptors, goroutines and memory do not grow. See docs/testing.md.
package soak

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gorio/rio"
	"github.com/gorio/rio/file"
	"github.com/gorio/rio/internal/testutil"
	rionet "github.com/gorio/rio/net"
)

// duration is how long TestSoak runs: RIO_SOAK_REAL (a Go duration, such
// as 10m; CI runs 1m), else a few seconds.
func duration(t *testing.T) time.Duration {
	v := os.Getenv("RIO_SOAK_REAL")
	if v == "" {
		return 3 * time.Second
	}
	d, err := time.ParseDuration(v)
	require.NoError(t, err, "RIO_SOAK_REAL=%q", v)
	return d
}

// counters are what the workers did, for the log.
type counters struct {
	echoBytes, fileBytes, closes, cancels, deadlines, checks atomic.Int64
}

// soak is one run: the workers report failures on errs.
type soak struct {
	t    *testing.T
	ctx  context.Context
	errs chan error
	n    counters
	ln   net.Listener
	ring *rio.Ring
	dir  string
}

func (s *soak) fail(format string, args ...any) {
	select {
	case s.errs <- fmt.Errorf(format, args...):
	default:
	}
}

func (s *soak) running() bool { return s.ctx.Err() == nil }

// TestSoak runs echo traffic, file IO, Close storms, cancellation storms
// and deadline storms together for duration(t), checking every few
// seconds that every byte arrived intact, and that descriptors,
// goroutines and RSS stay within a bound of what they were after the
// first interval; at the end, that they are back where they started.
func TestSoak(t *testing.T) {
	warmUp(t)
	testutil.CheckLeaks(t)
	d := duration(t)
	ring, err := rio.New(rio.WithEntries(64))
	testutil.RequireRing(t, err)
	defer ring.Close()
	lc := rionet.ListenConfig{NoFallback: true}
	ln, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	testutil.RequireRing(t, err)
	defer ln.Close()

	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	s := &soak{t: t, ctx: ctx, errs: make(chan error, 16), ln: ln, ring: ring, dir: t.TempDir()}
	var wg sync.WaitGroup
	start := func(n int, f func(id int)) {
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func() { defer wg.Done(); f(i) }()
		}
	}
	server := make(chan struct{})
	go func() { defer close(server); s.echoServer() }()
	start(4, s.echoClient)
	start(2, s.fileIO)
	start(2, s.closeStorm)
	start(2, s.cancelStorm)
	start(2, s.deadlineStorm)

	interval := min(5*time.Second, max(d/10, 500*time.Millisecond))
	tick := time.NewTicker(interval)
	defer tick.Stop()
	var warm *sample
	began := time.Now()
loop:
	for {
		select {
		case err := <-s.errs:
			cancel()
			assert.NoError(t, err, "a worker failed")
			break loop
		case <-ctx.Done():
			break loop
		case <-tick.C:
			now := take(t)
			t.Logf("%6.1fs %v echo=%dB file=%dB closes=%d cancels=%d deadlines=%d",
				time.Since(began).Seconds(), now, s.n.echoBytes.Load(), s.n.fileBytes.Load(),
				s.n.closes.Load(), s.n.cancels.Load(), s.n.deadlines.Load())
			if warm == nil {
				warm = &now
				continue
			}
			if err := now.within(*warm); !assert.NoError(t, err, "after %v", time.Since(began).Round(time.Second)) {
				cancel()
				break loop
			}
			s.n.checks.Add(1)
		}
	}
	// The workers first, then the listener: closing it closes the
	// connections it accepted that the server has not taken yet, which a
	// client that has just dialed would see reset.
	wg.Wait()
	ln.Close() // ends the server's Accept
	<-server
	select {
	case err := <-s.errs:
		assert.NoError(t, err, "a worker failed")
	default:
	}
	assert.False(t, s.n.echoBytes.Load() == 0 || s.n.fileBytes.Load() == 0 || s.n.closes.Load() == 0 || s.n.cancels.Load() == 0 || s.n.deadlines.Load() == 0,
		"a worker did nothing: %+v", &s.n)
	t.Logf("%d checks passed", s.n.checks.Load())
}

// warmUp creates the packages' shared rings, which live as long as the
// process: rionet's default ring, file's DefaultRing and its first ring for
// streams (made by a pipe's first read). They are no leak.
func warmUp(t *testing.T) {
	_, err := rionet.DefaultRing()
	testutil.RequireRing(t, err)
	_, err = file.DefaultRing()
	testutil.RequireRing(t, err)
	pr, pw, err := os.Pipe()
	require.NoError(t, err)
	defer pw.Close()
	f, err := pipeFile(pr)
	require.NoError(t, err)
	defer f.Close()
	_, err = pw.Write([]byte{1})
	require.NoError(t, err)
	_, err = f.Read(make([]byte, 1))
	require.NoError(t, err)
}

// sample is what a check measures.
type sample struct {
	fds, goroutines int
	rss             int64
}

func (s sample) String() string {
	return fmt.Sprintf("fds=%d goroutines=%d rss=%dMiB", s.fds, s.goroutines, s.rss>>20)
}

func take(t *testing.T) sample {
	b, err := os.ReadFile("/proc/self/statm")
	require.NoError(t, err)
	f := strings.Fields(string(b))
	pages, _ := strconv.ParseInt(f[1], 10, 64)
	return sample{len(testutil.Fds(t)), runtime.NumGoroutine(), pages * int64(os.Getpagesize())}
}

// within reports whether s stays within a bound of warm: the workers hold
// a fixed number of descriptors and goroutines, give or take those of a
// moment, so steady growth past the slack is a leak.
func (s sample) within(warm sample) error {
	switch {
	case s.fds > warm.fds+64:
		return fmt.Errorf("fds grew from %d to %d", warm.fds, s.fds)
	case s.goroutines > warm.goroutines+64:
		return fmt.Errorf("goroutines grew from %d to %d", warm.goroutines, s.goroutines)
	case s.rss > warm.rss+256<<20:
		return fmt.Errorf("RSS grew from %d MiB to %d MiB", warm.rss>>20, s.rss>>20)
	}
	return nil
}

// echoServer echoes every connection until the listener closes.
func (s *soak) echoServer() {
	for {
		c, err := s.ln.Accept()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				s.fail("accept: %v", err)
			}
			return
		}
		go func() {
			defer c.Close()
			io.Copy(c, c)
		}()
	}
}

// payload fills b with bytes that depend on seed and position, so that a
// lost, duplicated or reordered byte shows.
func payload(b []byte, seed uint64) {
	r := rand.New(rand.NewPCG(seed, 0x50a4))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
}

// echoClient sends messages of random sizes over connections of random
// lifetimes and checks that each comes back whole.
func (s *soak) echoClient(id int) {
	rng := rand.New(rand.NewPCG(uint64(id), 1))
	d := rionet.Dialer{NoFallback: true}
	for s.running() {
		c, err := d.DialContext(s.ctx, "tcp", s.ln.Addr().String())
		if err != nil {
			if s.running() {
				s.fail("dial: %v", err)
			}
			return
		}
		for range 1 + rng.IntN(50) {
			msg := make([]byte, 1+rng.IntN(256<<10))
			payload(msg, rng.Uint64())
			werr := make(chan error, 1)
			go func() { _, err := c.Write(msg); werr <- err }()
			got := make([]byte, len(msg))
			c.SetReadDeadline(time.Now().Add(30 * time.Second)) // a hang bound
			_, err := io.ReadFull(c, got)
			if err == nil {
				err = <-werr
			}
			if err != nil {
				s.fail("echo of %d bytes: %v", len(msg), err)
				c.Close()
				return
			}
			if !bytes.Equal(got, msg) {
				s.fail("echo of %d bytes came back changed", len(msg))
			}
			s.n.echoBytes.Add(int64(len(msg)))
		}
		c.Close()
	}
}

// fileIO writes blocks of a file of its own with WriteAt and WriteAtAsync,
// reads them back with ReadAt and ReadAtAsync, and compares.
func (s *soak) fileIO(id int) {
	rng := rand.New(rand.NewPCG(uint64(id), 2))
	name := filepath.Join(s.dir, fmt.Sprintf("file%d", id))
	const blocks, bs = 64, 16 << 10
	seeds := make([]uint64, blocks) // the seed of each block's content
	prev := make([]uint64, blocks)  // and of the content before it
	for s.running() {
		f, err := file.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o644)
		if err != nil {
			s.fail("open: %v", err)
			return
		}
		for range 100 {
			var ops []*file.Op
			// Distinct blocks: two writes of one block in flight at once
			// may land in either order.
			for _, i := range rng.Perm(blocks)[:8] {
				prev[i], seeds[i] = seeds[i], rng.Uint64()|1
				b := make([]byte, bs)
				payload(b, seeds[i])
				if rng.IntN(2) == 0 {
					if _, err := f.WriteAt(b, int64(i*bs)); err != nil {
						s.fail("write: %v", err)
					}
					continue
				}
				op, err := f.WriteAtAsync(b, int64(i*bs))
				if err != nil {
					s.fail("write async: %v", err)
					continue
				}
				ops = append(ops, op)
			}
			for _, op := range ops {
				if _, err := op.Wait(); err != nil {
					s.fail("write async: %v", err)
				}
			}
			want := make([]byte, bs)
			for i, seed := range seeds {
				if seed == 0 {
					continue
				}
				got := make([]byte, bs)
				var err error
				if i%2 == 0 {
					_, err = f.ReadAt(got, int64(i*bs))
				} else {
					var op *file.Op
					if op, err = f.ReadAtAsync(got, int64(i*bs)); err == nil {
						_, err = op.Wait()
					}
				}
				payload(want, seed)
				if err != nil {
					s.fail("read block %d: %v", i, err)
				} else if !bytes.Equal(got, want) {
					s.fail("block %d of %s read back changed: %s", i, name, diagnose(got, prev[i]))
				}
				s.n.fileBytes.Add(2 * bs)
			}
		}
		if err := f.Close(); err != nil {
			s.fail("close: %v", err)
		}
	}
}

// diagnose says what a block that read back changed holds instead.
func diagnose(got []byte, prev uint64) string {
	old := make([]byte, len(got))
	payload(old, prev)
	same := 0
	for i := range got {
		if got[i] == old[i] {
			same++
		}
	}
	zeros := len(got) - len(bytes.TrimLeft(got, "\x00"))
	return fmt.Sprintf("%d of %d bytes are the block's previous content, the first %d are zero", same, len(got), zeros)
}

// closeStorm closes Conns and pipe Files while Reads are blocked on them,
// and while Writes are running: each blocked call returns, with
// net.ErrClosed or fs.ErrClosed (or what it got first), and nothing hangs.
func (s *soak) closeStorm(id int) {
	rng := rand.New(rand.NewPCG(uint64(id), 3))
	d := rionet.Dialer{NoFallback: true}
	for s.running() {
		c, err := d.Dial("tcp", s.ln.Addr().String())
		if err != nil {
			if s.running() {
				s.fail("dial: %v", err)
			}
			return
		}
		pr, pw, err := os.Pipe()
		if err != nil {
			s.fail("pipe: %v", err)
			return
		}
		rf, err := pipeFile(pr)
		if err != nil {
			s.fail("pipe file: %v", err)
			return
		}
		var wg sync.WaitGroup
		wg.Add(3)
		go func() { // blocked until Close: the echo server sends nothing unasked
			defer wg.Done()
			_, err := c.Read(make([]byte, 64))
			if err != nil && !errors.Is(err, net.ErrClosed) {
				s.fail("read of a closed Conn: %v", err)
			}
		}()
		go func() {
			defer wg.Done()
			_, err := rf.Read(make([]byte, 64))
			if err != nil && !errors.Is(err, os.ErrClosed) {
				s.fail("read of a closed pipe File: %v", err)
			}
		}()
		go func() {
			defer wg.Done()
			b := make([]byte, 4096)
			for {
				if _, err := c.Write(b); err != nil {
					if !errors.Is(err, net.ErrClosed) {
						s.fail("write to a closing Conn: %v", err)
					}
					return
				}
			}
		}()
		time.Sleep(time.Duration(rng.IntN(2000)) * time.Microsecond)
		if err := c.Close(); err != nil {
			s.fail("close conn: %v", err)
		}
		if err := rf.Close(); err != nil {
			s.fail("close pipe file: %v", err)
		}
		wg.Wait()
		pw.Close()
		s.n.closes.Add(2)
	}
}

// pipeFile takes over pr as a File of package file.
func pipeFile(pr *os.File) (*file.File, error) {
	fd, err := syscall.Dup(int(pr.Fd()))
	pr.Close()
	if err != nil {
		return nil, err
	}
	syscall.CloseOnExec(fd)
	return file.NewFile(uintptr(fd), "pipe"), nil
}

// seq is a byte stream whose byte i is i%mod, written with fill and
// checked with check, so that a byte lost, doubled or reordered shows.
type seq struct{ mod, n uint64 }

func (q *seq) fill(b []byte) {
	for i := range b {
		b[i] = byte((q.n + uint64(i)) % q.mod)
	}
	q.n += uint64(len(b))
}

func (q *seq) check(b []byte) error {
	for _, c := range b {
		if c != byte(q.n%q.mod) {
			return fmt.Errorf("stream byte %d is %d, want %d", q.n, c, q.n%q.mod)
		}
		q.n++
	}
	return nil
}

// cancelStorm gives up on reads of a pipe and on timeouts through
// contexts that end at random moments, and checks that every byte written
// to the pipe is read exactly once: by a read that completed before its
// cancellation took effect, or by a later one.
func (s *soak) cancelStorm(id int) {
	rng := rand.New(rand.NewPCG(uint64(id), 4))
	var p [2]int
	if err := syscall.Pipe2(p[:], syscall.O_CLOEXEC); err != nil {
		s.fail("pipe: %v", err)
		return
	}
	defer syscall.Close(p[0])
	defer syscall.Close(p[1])
	sent, got := seq{mod: 251}, seq{mod: 251}
	for s.running() {
		if rng.IntN(2) == 0 {
			b := make([]byte, 1+rng.IntN(64))
			sent.fill(b)
			if n, err := syscall.Write(p[1], b); err != nil || n != len(b) {
				s.fail("pipe write: %d, %v", n, err)
				return
			}
		}
		ctx, cancel := context.WithTimeout(s.ctx, time.Duration(rng.IntN(300))*time.Microsecond)
		b := make([]byte, 32)
		c := s.ring.Read(p[0], b)
		n, err := c.WaitContext(ctx)
		if err == ctx.Err() && err != nil {
			s.n.cancels.Add(1)
			n, err = c.Wait() // the truth: data, or ECANCELED
		}
		cancel()
		if err != nil && !errors.Is(err, syscall.ECANCELED) {
			s.fail("read of the pipe: %v", err)
			return
		}
		if err := got.check(b[:n]); err != nil {
			s.fail("pipe: %v", err)
			return
		}
		tctx, tcancel := context.WithTimeout(s.ctx, time.Duration(rng.IntN(200))*time.Microsecond)
		if _, err := s.ring.Timeout(time.Hour).WaitContext(tctx); err == nil {
			s.fail("an hour-long timeout completed")
		} else {
			s.n.cancels.Add(1)
		}
		tcancel()
	}
	// Drain: what is left in the pipe arrives in order.
	for got.n < sent.n {
		b := make([]byte, 64)
		n, err := s.ring.Read(p[0], b).Wait()
		if err == nil {
			err = got.check(b[:n])
		}
		if err != nil {
			s.fail("pipe drain: %v", err)
			return
		}
	}
}

// deadlineStorm reads a stream with read deadlines that fire at random
// moments, some while data arrives, and checks that the bytes that did
// arrive are the stream, in order, none lost or doubled.
func (s *soak) deadlineStorm(id int) {
	rng := rand.New(rand.NewPCG(uint64(id), 5))
	d := rionet.Dialer{NoFallback: true}
	c, err := d.Dial("tcp", s.ln.Addr().String())
	if err != nil {
		s.fail("dial: %v", err)
		return
	}
	defer c.Close()
	sent, got := seq{mod: 253}, seq{mod: 253}
	for s.running() {
		if rng.IntN(3) != 0 && sent.n-got.n < 256<<10 {
			b := make([]byte, 1+rng.IntN(8<<10))
			sent.fill(b)
			c.SetWriteDeadline(time.Now().Add(30 * time.Second)) // a hang bound
			if _, err := c.Write(b); err != nil {
				s.fail("write: %v", err)
				return
			}
		}
		c.SetReadDeadline(time.Now().Add(time.Duration(rng.IntN(500)) * time.Microsecond))
		b := make([]byte, 1+rng.IntN(16<<10))
		n, err := c.Read(b)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			s.n.deadlines.Add(1)
		} else if err != nil {
			s.fail("read: %v", err)
			return
		}
		if err := got.check(b[:n]); err != nil {
			s.fail("deadline storm: %v", err)
			return
		}
	}
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	for got.n < sent.n {
		b := make([]byte, 16<<10)
		n, err := c.Read(b)
		if err == nil {
			err = got.check(b[:n])
		}
		if err != nil {
			s.fail("deadline storm drain: %v", err)
			return
		}
	}
}
