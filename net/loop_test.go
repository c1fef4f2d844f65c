package rionet_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/gorio/rio"
	rionet "github.com/gorio/rio/net"
)

// Tests of the event loops (LoopServer), on real sockets on loopback. Each
// test checks, when it ends, that Serve returned ErrServerClosed, that the
// loops recorded no invariant violation (a receive buffer in two places,
// write-queue memory still in use at exit, a completion for no
// connection), that every OnOpen got its OnClose, and that no goroutine or
// descriptor leaked.

// loopTest is a LoopServer under test with counters of its callbacks.
type loopTest struct {
	t      *testing.T
	s      *rionet.LoopServer
	addr   string
	errc   chan error
	opened atomic.Int64
	closed atomic.Int64

	mu   sync.Mutex
	errs []error // OnClose's errors
}

// serveLoop starts s (wrapping its OnOpen and OnClose to count them) on a
// loopback listener. When t ends it closes s unless the test stopped it,
// and checks what the package comment says.
func serveLoop(t *testing.T, s *rionet.LoopServer) *loopTest {
	t.Helper()
	checkLeaks(t)
	lt := &loopTest{t: t, s: s, errc: make(chan error, 1)}
	open, onClose := s.OnOpen, s.OnClose
	s.OnOpen = func(c *rionet.LoopConn) {
		lt.opened.Add(1)
		if open != nil {
			open(c)
		}
	}
	s.OnClose = func(c *rionet.LoopConn, err error) {
		lt.closed.Add(1)
		lt.mu.Lock()
		lt.errs = append(lt.errs, err)
		lt.mu.Unlock()
		if onClose != nil {
			onClose(c, err)
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	lt.addr = ln.Addr().String()
	started := rionet.LoopStartedForTest(s)
	go func() { lt.errc <- s.Serve(ln) }()
	select {
	case <-started:
	case err := <-lt.errc:
		ln.Close()
		requireURing(t, err)
		require.Failf(t, "Serve returned at once", "%v", err)
	}
	select {
	case err := <-lt.errc:
		ln.Close()
		requireURing(t, err)
		require.Failf(t, "Serve returned", "%v", err)
	default:
	}
	t.Cleanup(lt.finish)
	return lt
}

// finish closes the server (if the test did not stop it) and checks it.
func (lt *loopTest) finish() {
	t := lt.t
	t.Helper()
	lt.s.Close()
	select {
	case err := <-lt.errc:
		assert.Equal(t, rionet.ErrServerClosed, err, "Serve's error")
		lt.errc <- err // for a later wait
	case <-time.After(30 * time.Second):
		require.Fail(t, "Serve did not return after Close")
	}
	assert.NoError(t, rionet.LoopBugsForTest(lt.s), "loop invariants")
	assert.Equal(t, lt.opened.Load(), lt.closed.Load(), "connections closed (actual) of those opened (expected)")
}

// wait waits for Serve to return.
func (lt *loopTest) wait() error {
	err := <-lt.errc
	lt.errc <- err
	return err
}

func (lt *loopTest) dial() net.Conn {
	lt.t.Helper()
	c, err := net.Dial("tcp", lt.addr)
	require.NoError(lt.t, err)
	lt.t.Cleanup(func() { c.Close() })
	return c
}

// closeErrs returns OnClose's errors so far.
func (lt *loopTest) closeErrs() []error {
	lt.mu.Lock()
	defer lt.mu.Unlock()
	return append([]error(nil), lt.errs...)
}

// waitClosed waits until n connections have been closed.
func (lt *loopTest) waitClosed(n int64) {
	lt.t.Helper()
	for deadline := time.Now().Add(20 * time.Second); lt.closed.Load() < n; {
		require.False(lt.t, time.Now().After(deadline), "%d of %d connections closed", lt.closed.Load(), n)
		time.Sleep(time.Millisecond)
	}
}

func echoHandler(c *rionet.LoopConn, data []byte) int {
	c.Write(data)
	return len(data)
}

// echoCheck sends msgs over c, concurrently reading the echo, and fails t
// unless the echo is byte-exact.
func echoCheck(t *testing.T, c net.Conn, msgs [][]byte) error {
	var want bytes.Buffer
	for _, m := range msgs {
		want.Write(m)
	}
	errc := make(chan error, 1)
	go func() {
		for _, m := range msgs {
			if _, err := c.Write(m); err != nil {
				errc <- err
				return
			}
		}
		errc <- nil
	}()
	got := make([]byte, want.Len())
	if _, err := io.ReadFull(c, got); err != nil {
		return fmt.Errorf("reading the echo: %w", err)
	}
	if err := <-errc; err != nil {
		return err
	}
	if !bytes.Equal(got, want.Bytes()) {
		return fmt.Errorf("echo of %d bytes differs", want.Len())
	}
	return nil
}

func randMsgs(r *rand.Rand, n, maxSize int) [][]byte {
	msgs := make([][]byte, n)
	for i := range msgs {
		m := make([]byte, 1+r.IntN(maxSize))
		for j := range m {
			m[j] = byte(r.Uint32())
		}
		msgs[i] = m
	}
	return msgs
}

func TestLoopEcho1000Conns(t *testing.T) {
	defer rionet.SetPoisonForTest(true)()
	// Three loops: connections are spread over them.
	lt := serveLoop(t, &rionet.LoopServer{Loops: 3, OnData: echoHandler})
	const n = 1000
	// Messages per connection and their largest size; RIO_SOAK sends more.
	msgs, maxSize := 2, 6000
	if os.Getenv("RIO_SOAK") != "" {
		msgs, maxSize = 8, 100000
	}
	conns := make([]net.Conn, n)
	for i := range conns {
		conns[i] = lt.dial()
	}
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(i), 1))
			c.SetDeadline(time.Now().Add(60 * time.Second))
			if err := echoCheck(t, c, randMsgs(r, 1+r.IntN(msgs), maxSize)); err != nil {
				errs <- fmt.Errorf("conn %d: %w", i, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		assert.NoError(t, err)
	}
	for _, c := range conns {
		c.Close()
	}
	lt.waitClosed(n)
	for _, err := range lt.closeErrs() {
		if !assert.Equal(t, io.EOF, err, "OnClose error (the peer closed)") {
			break
		}
	}
}

// A peer that half-closes gets its echo, then EOF; a server that
// half-closes (CloseWrite) still receives.
func TestLoopHalfClose(t *testing.T) {
	var got atomic.Int64
	lt := serveLoop(t, &rionet.LoopServer{OnData: func(c *rionet.LoopConn, data []byte) int {
		if bytes.Equal(data, []byte("shut")) {
			c.Write([]byte("bye"))
			c.CloseWrite()
			return len(data)
		}
		got.Add(int64(len(data)))
		c.Write(data) // fails once the server has called CloseWrite
		return len(data)
	}})

	c := lt.dial()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	c.Write([]byte("hello"))
	c.(*net.TCPConn).CloseWrite()
	b, err := io.ReadAll(c)
	require.NoError(t, err, "echo after half-close")
	require.Equal(t, "hello", string(b), "echo after half-close")

	c2 := lt.dial()
	c2.SetDeadline(time.Now().Add(20 * time.Second))
	c2.Write([]byte("shut"))
	b, err = io.ReadAll(c2)
	require.NoError(t, err, "after the server's CloseWrite")
	require.Equal(t, "bye", string(b), "after the server's CloseWrite")
	// The server still reads (its handler writes nothing back now: the
	// Write fails).
	before := got.Load()
	_, err = c2.Write([]byte("more"))
	require.NoError(t, err)
	for deadline := time.Now().Add(10 * time.Second); got.Load() < before+4; {
		require.False(t, time.Now().After(deadline), "the server stopped reading after CloseWrite")
		time.Sleep(time.Millisecond)
	}
}

// Peers that reset the connection: OnClose gets ECONNRESET (or io.EOF
// when the reset came after the data), and the loop serves on.
func TestLoopPeerReset(t *testing.T) {
	lt := serveLoop(t, &rionet.LoopServer{OnData: echoHandler})
	for i := 0; i < 20; i++ {
		c := lt.dial()
		c.Write(bytes.Repeat([]byte("x"), 1000*i+1))
		c.(*net.TCPConn).SetLinger(0)
		c.Close()
	}
	lt.waitClosed(20)
	for _, err := range lt.closeErrs() {
		assert.True(t, err == io.EOF || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE),
			"OnClose error %v, want io.EOF, ECONNRESET or EPIPE", err)
		var oe *net.OpError
		if err != io.EOF {
			assert.ErrorAs(t, err, &oe, "OnClose error %T, want a *net.OpError", err)
		}
	}
	c := lt.dial()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	require.NoError(t, echoCheck(t, c, [][]byte{[]byte("still serving")}))
}

// A peer that sends without reading: the write queue stays within
// MaxWriteBuffer, the loop stops reading from it (TCP flow control holds
// the peer back), and the server's memory does not grow with what the
// peer sends.
func TestLoopPeerNeverReads(t *testing.T) {
	const max = 64 << 10
	var over atomic.Int64
	s := &rionet.LoopServer{MaxWriteBuffer: max, OnData: func(c *rionet.LoopConn, data []byte) int {
		c.Write(data)
		if n := c.OutboundBuffered(); n > max {
			over.Store(int64(n))
		}
		return len(data)
	}}
	lt := serveLoop(t, s)
	c := lt.dial()
	// Write until the peer's writes stall: everything the server has not
	// echoed sits in the client's socket buffers, the server's, and its
	// write queue.
	var sent int64
	buf := bytes.Repeat([]byte("y"), 64<<10)
	stalls := 0
	for sent < 256<<20 && stalls < 3 {
		c.SetWriteDeadline(time.Now().Add(200 * time.Millisecond))
		n, err := c.Write(buf)
		sent += int64(n)
		if err != nil {
			stalls++
		}
	}
	require.GreaterOrEqual(t, stalls, 3, "sent %d bytes to a server whose peer never reads without stalling", sent)
	n := over.Load()
	require.Zero(t, n, "write queue held %d bytes, over MaxWriteBuffer %d", n, max)
	chunks := rionet.LoopChunksInUseForTest(s)
	require.LessOrEqual(t, chunks*rionet.ChunkSizeForTest, max+rionet.ChunkSizeForTest,
		"%d write chunks in use for one connection with MaxWriteBuffer %d", chunks, max)
	c.Close()
	lt.waitClosed(1)
}

// Writes from other goroutines: many at once on one connection, each
// atomic; and a Write that must wait for room returns at its deadline.
func TestLoopWritesFromGoroutines(t *testing.T) {
	conns := make(chan *rionet.LoopConn, 2)
	lt := serveLoop(t, &rionet.LoopServer{
		MaxWriteBuffer: 64 << 10,
		OnOpen:         func(c *rionet.LoopConn) { conns <- c },
		OnData:         func(c *rionet.LoopConn, data []byte) int { return len(data) },
	})
	c := lt.dial()
	// A smaller receive buffer, so that the socket buffers do not hide the
	// write queue's bound below.
	c.(*net.TCPConn).SetReadBuffer(64 << 10)
	sc := <-conns
	const writers, records = 8, 200
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rec := make([]byte, 1000)
			for i := 0; i < records; i++ {
				for j := range rec {
					rec[j] = byte(w)
				}
				if _, err := sc.Write(rec); !assert.NoError(t, err) {
					return
				}
			}
		}()
	}
	got := make([]byte, writers*records*1000)
	c.SetDeadline(time.Now().Add(30 * time.Second))
	if read, err := io.ReadFull(c, got); err != nil {
		// Only on failure: LoopStateForTest reads the loop's state
		// without synchronizing with it.
		require.Failf(t, "reading the records failed", "after %d bytes: %v\n%s", read, err, rionet.LoopStateForTest(lt.s))
	}
	wg.Wait()
	for i := 0; i < len(got); i += 1000 {
		require.True(t, bytes.Equal(got[i:i+1000], bytes.Repeat(got[i:i+1], 1000)), "record at %d interleaved with another", i)
	}

	// The peer stops reading: a large Write waits, then fails at its
	// deadline having queued at most MaxWriteBuffer.
	sc.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
	n, err := sc.Write(make([]byte, 16<<20))
	require.ErrorIs(t, err, os.ErrDeadlineExceeded, "Write to a peer that does not read: %d bytes", n)
	require.LessOrEqual(t, sc.OutboundBuffered(), 64<<10, "bytes queued, over MaxWriteBuffer")
	// Close wakes a waiting Write with net.ErrClosed.
	sc.SetWriteDeadline(time.Time{})
	errc := make(chan error, 1)
	go func() {
		_, err := sc.Write(make([]byte, 16<<20))
		errc <- err
	}()
	time.Sleep(10 * time.Millisecond) // let it wait (not needed for the test to pass)
	sc.Close()
	require.ErrorIs(t, <-errc, net.ErrClosed, "Write waiting when the connection closed")
	// The server's Close waits (up to 5 s) for the queue to be sent; the
	// peer closing ends that.
	c.Close()
	lt.waitClosed(1)
}

// A Write from a callback never waits: it queues what fits and returns
// ErrWriteBufferFull.
func TestLoopWriteOnLoopFull(t *testing.T) {
	res := make(chan error, 1)
	lt := serveLoop(t, &rionet.LoopServer{MaxWriteBuffer: 32 << 10, OnData: func(c *rionet.LoopConn, data []byte) int {
		n, err := c.Write(make([]byte, 1<<20))
		if err == nil || n > 32<<10 {
			err = fmt.Errorf("Write of 1 MiB on the loop: %d, %v", n, err)
		} else if !errors.Is(err, rionet.ErrWriteBufferFull) {
			err = fmt.Errorf("Write of 1 MiB on the loop: %v, want ErrWriteBufferFull", err)
		} else {
			err = nil
		}
		res <- err
		c.Close()
		return len(data)
	}})
	c := lt.dial()
	c.Write([]byte("go"))
	require.NoError(t, <-res)
	io.Copy(io.Discard, c)
	lt.waitClosed(1)
}

// A handler panic closes its connection with a *PanicError; the loop and
// the other connections go on. Panics in OnOpen and OnClose too.
func TestLoopHandlerPanics(t *testing.T) {
	var opens int
	s := &rionet.LoopServer{
		Loops: 1, // one loop: the panics and the survivor share it
		OnOpen: func(c *rionet.LoopConn) {
			opens++ // callbacks of one loop never run concurrently
			if opens%5 == 0 {
				panic("open")
			}
		},
		OnData: func(c *rionet.LoopConn, data []byte) int {
			if bytes.HasPrefix(data, []byte("panic")) {
				if opens%2 == 0 {
					c.Value = "panic in close"
				}
				panic(errors.New("data"))
			}
			return echoHandler(c, data)
		},
		OnClose: func(c *rionet.LoopConn, err error) {
			if c.Value == "panic in close" {
				panic("close")
			}
		},
	}
	lt := serveLoop(t, s)
	survivor := lt.dial()
	survivor.SetDeadline(time.Now().Add(30 * time.Second))
	for i := 0; i < 30; i++ {
		c := lt.dial()
		c.SetDeadline(time.Now().Add(30 * time.Second))
		c.Write([]byte("panic now"))
		if _, err := io.ReadAll(c); !errors.Is(err, syscall.ECONNRESET) {
			require.NoError(t, err)
		}
		require.NoError(t, echoCheck(t, survivor, [][]byte{[]byte(fmt.Sprint("still here ", i))}), "after panic %d", i)
	}
	lt.waitClosed(30)
	panics := 0
	for _, err := range lt.closeErrs() {
		var pe *rionet.PanicError
		if errors.As(err, &pe) {
			panics++
			assert.NotEmpty(t, pe.Stack, "PanicError without a stack")
		}
	}
	require.Equal(t, 30, panics, "*PanicError closes")
}

// A slow handler hands the connection to a goroutine, which blocks; the
// loop (there is one) serves other connections meanwhile.
func TestLoopSlowHandler(t *testing.T) {
	release := make(chan struct{})
	lt := serveLoop(t, &rionet.LoopServer{Loops: 1, OnData: func(c *rionet.LoopConn, data []byte) int {
		if !bytes.Equal(data, []byte("slow")) {
			return echoHandler(c, data)
		}
		b := c.Retain()
		c.PauseRead()
		go func() {
			<-release // blocks as long as the test wants
			c.Write(b.Bytes())
			b.Release()
			c.ResumeRead()
		}()
		return len(data)
	}})
	slow := lt.dial()
	slow.SetDeadline(time.Now().Add(30 * time.Second))
	slow.Write([]byte("slow"))
	slow.Write([]byte(" and more")) // parked while paused
	for i := 0; i < 10; i++ {
		c := lt.dial()
		c.SetDeadline(time.Now().Add(30 * time.Second))
		require.NoError(t, echoCheck(t, c, [][]byte{[]byte("quick")}))
		c.Close()
	}
	close(release)
	got := make([]byte, len("slow and more"))
	_, err := io.ReadFull(slow, got)
	require.NoError(t, err, "slow connection: %q", got)
	require.Equal(t, "slow and more", string(got), "slow connection")
}

// Retained buffers survive later traffic, and Shutdown waits for them.
func TestLoopRetain(t *testing.T) {
	held := make(chan *rionet.LoopBuffer, 100)
	s := &rionet.LoopServer{ReadBuffers: 16, OnData: func(c *rionet.LoopConn, data []byte) int {
		if b := c.Retain(); b != nil {
			held <- b
		}
		c.Write([]byte{'.'})
		return 0 // ignored after Retain
	}}
	lt := serveLoop(t, s)
	c := lt.dial()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	var want []byte
	for i := 0; i < 8; i++ {
		m := []byte(fmt.Sprintf("message %d;", i))
		want = append(want, m...)
		c.Write(m)
		io.ReadFull(c, make([]byte, 1)) // one OnData per message
	}
	var got []byte
	var bufs []*rionet.LoopBuffer
	for len(got) < len(want) {
		b := <-held
		got = append(got, b.Bytes()...)
		bufs = append(bufs, b)
	}
	require.Equal(t, string(want), string(got), "retained")
	c.Close()
	lt.waitClosed(1)
	done := make(chan error, 1)
	go func() { done <- s.Shutdown(context.Background()) }()
	require.Equal(t, rionet.ErrServerClosed, lt.wait(), "Serve")
	select {
	case err := <-done:
		require.Failf(t, "Shutdown returned with buffers still retained", "%v", err)
	default:
	}
	for _, b := range bufs {
		b.Release()
		b.Release() // twice: a no-op
	}
	require.NoError(t, <-done, "Shutdown")
}

// Graceful stop under load: Shutdown returns, every connection is closed
// with ErrServerClosed after its queued bytes were sent, a connection
// handed to a goroutine is closed once resumed, and nothing leaks.
func TestLoopShutdownUnderLoad(t *testing.T) {
	defer rionet.SetPoisonForTest(true)()
	paused := make(chan *rionet.LoopConn, 1)
	s := &rionet.LoopServer{OnData: func(c *rionet.LoopConn, data []byte) int {
		if bytes.Equal(data, []byte("pause")) {
			c.PauseRead()
			paused <- c
			return len(data)
		}
		return echoHandler(c, data)
	}}
	lt := serveLoop(t, s)
	p := lt.dial()
	p.Write([]byte("pause"))
	pc := <-paused

	const n = 50
	var wg sync.WaitGroup
	var echoed atomic.Int64
	for i := 0; i < n; i++ {
		c := lt.dial()
		wg.Add(1)
		go func() {
			defer wg.Done()
			msg := bytes.Repeat([]byte{byte(i)}, 1+i*37)
			got := make([]byte, len(msg))
			c.SetDeadline(time.Now().Add(30 * time.Second))
			for {
				if _, err := c.Write(msg); err != nil {
					return
				}
				if _, err := io.ReadFull(c, got); err != nil {
					return // closed by Shutdown
				}
				if !assert.True(t, bytes.Equal(got, msg), "conn %d: echo differs", i) {
					return
				}
				echoed.Add(1)
			}
		}()
	}
	for echoed.Load() < 5*n {
		time.Sleep(time.Millisecond)
	}
	done := make(chan error, 1)
	go func() { done <- s.Shutdown(context.Background()) }()
	wg.Wait() // every loaded connection was closed by Shutdown
	select {
	case err := <-done:
		require.Failf(t, "Shutdown returned while a connection is handed to a goroutine", "%v", err)
	default:
	}
	pc.Write([]byte("done"))
	pc.ResumeRead()
	require.NoError(t, <-done, "Shutdown")
	require.Equal(t, rionet.ErrServerClosed, lt.wait(), "Serve")
	b, _ := io.ReadAll(p)
	require.Equal(t, "done", string(b), "what the paused connection got before closing: its queued reply")
	for _, err := range lt.closeErrs() {
		assert.True(t, err == rionet.ErrServerClosed || err == io.EOF, "OnClose error %v, want ErrServerClosed", err)
	}
}

// Shutdown whose context ends first closes what is left and returns the
// context's error.
func TestLoopShutdownContext(t *testing.T) {
	s := &rionet.LoopServer{OnData: func(c *rionet.LoopConn, data []byte) int {
		c.PauseRead() // never resumed
		return len(data)
	}}
	lt := serveLoop(t, s)
	c := lt.dial()
	c.Write([]byte("x"))
	for lt.opened.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	require.ErrorIs(t, s.Shutdown(ctx), context.DeadlineExceeded, "Shutdown")
	require.Equal(t, rionet.ErrServerClosed, lt.wait(), "Serve")
}

func TestLoopIdleTimeout(t *testing.T) {
	lt := serveLoop(t, &rionet.LoopServer{IdleTimeout: 20 * time.Millisecond, OnData: echoHandler})
	c := lt.dial()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	require.NoError(t, echoCheck(t, c, [][]byte{[]byte("hi")}))
	_, err := c.Read(make([]byte, 1))
	require.Equal(t, io.EOF, err, "Read on an idle connection, once the server closes it")
	lt.waitClosed(1)
	errs := lt.closeErrs()
	require.ErrorIs(t, errs[0], rionet.ErrIdleTimeout, "OnClose error")
	require.ErrorIs(t, errs[0], os.ErrDeadlineExceeded, "OnClose error")
}

// OnData's return value keeps unconsumed bytes for the next call.
func TestLoopConsumed(t *testing.T) {
	lt := serveLoop(t, &rionet.LoopServer{OnData: func(c *rionet.LoopConn, data []byte) int {
		// Echo whole lines only.
		i := bytes.LastIndexByte(data, '\n')
		if i < 0 {
			return 0
		}
		c.Write(data[:i+1])
		return i + 1
	}})
	c := lt.dial()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	for _, part := range []string{"ab", "c\nde", "f", "\n"} {
		c.Write([]byte(part))
		time.Sleep(5 * time.Millisecond) // separate receives (not needed to pass)
	}
	got := make([]byte, 8)
	_, err := io.ReadFull(c, got)
	require.NoError(t, err, "got %q", got)
	require.Equal(t, "abc\ndef\n", string(got))
}

// Too much unconsumed input closes the connection with ErrReadBufferFull.
func TestLoopReadBufferFull(t *testing.T) {
	lt := serveLoop(t, &rionet.LoopServer{MaxReadBuffer: 8 << 10, OnData: func(*rionet.LoopConn, []byte) int { return 0 }})
	c := lt.dial()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	c.Write(make([]byte, 64<<10))
	io.Copy(io.Discard, c)
	lt.waitClosed(1)
	require.ErrorIs(t, lt.closeErrs()[0], rionet.ErrReadBufferFull, "OnClose error")
}

// Without io_uring, Serve returns an error matching rio.ErrNotSupported.
func TestLoopNotSupported(t *testing.T) {
	s := &rionet.LoopServer{OnData: echoHandler}
	rionet.SetLoopKernelForTest(s, noKernel)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	require.ErrorIs(t, s.Serve(ln), rio.ErrNotSupported, "Serve without io_uring")
}

// A LoopServer without OnData is a caller's mistake: Serve says so with an
// error matching EINVAL, and leaves ln open.
func TestLoopNoOnData(t *testing.T) {
	s := &rionet.LoopServer{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	require.ErrorIs(t, s.Serve(ln), syscall.EINVAL, "Serve without OnData")
	c, err := net.Dial("tcp", ln.Addr().String())
	require.NoError(t, err, "ln closed by a Serve that did not serve")
	c.Close()
}

// The loop allocates nothing per request: an echo over one connection,
// driven with raw system calls so that the client allocates nothing
// either, leaves the process's count of heap allocations where it was.
func TestLoopNoAllocPerRequest(t *testing.T) {
	if raceBuild {
		t.Skip("the race detector allocates on its own")
	}
	lt := serveLoop(t, &rionet.LoopServer{Loops: 1, OnData: echoHandler})
	c := lt.dial()
	rc, err := c.(*net.TCPConn).SyscallConn()
	require.NoError(t, err)
	var fd int
	rc.Control(func(s uintptr) { fd = int(s) })
	require.NoError(t, unix.SetNonblock(fd, false))
	msg, got := []byte("0123456789abcdef"), make([]byte, 16)
	roundTrip := func() {
		_, err := unix.Write(fd, msg)
		require.NoError(t, err)
		for n := 0; n < len(got); {
			m, err := unix.Read(fd, got[n:])
			// An if, not require.NoError(..., m): the arguments would be
			// boxed, an allocation on every round trip counted below.
			if err != nil || m == 0 {
				require.Failf(t, "read failed", "%d, %v", m, err)
			}
			n += m
		}
	}
	for i := 0; i < 200; i++ {
		roundTrip()
	}
	const n = 5000
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for i := 0; i < n; i++ {
		roundTrip()
	}
	runtime.ReadMemStats(&after)
	allocs := after.Mallocs - before.Mallocs
	require.LessOrEqual(t, allocs, uint64(n/50), "heap allocations over %d requests", n)
	unix.SetNonblock(fd, true)
}

// Connections accepted from one shared listener are spread over the
// loops (the kernel tends to give them all to one loop's accept).
func TestLoopSpreadsConnections(t *testing.T) {
	var mu sync.Mutex
	per := map[int]int{}
	lt := serveLoop(t, &rionet.LoopServer{Loops: 2, OnData: echoHandler, OnOpen: func(c *rionet.LoopConn) {
		mu.Lock()
		per[c.Loop()]++
		mu.Unlock()
	}})
	for i := 0; i < 64; i++ {
		c := lt.dial()
		require.NoError(t, echoCheck(t, c, [][]byte{[]byte("x")})) // accepted and served
	}
	mu.Lock()
	defer mu.Unlock()
	require.False(t, per[0]+per[1] != 64 || per[0] < 30 || per[1] < 30, "connections per loop: %v", per)
}

// ListenAndServe, also with one SO_REUSEPORT socket per loop, and on a
// Unix socket.
func TestLoopListenAndServe(t *testing.T) {
	for _, tc := range []struct {
		network, addr string
		reuse         bool
	}{
		{"tcp", "127.0.0.1:0", false},
		{"tcp", "127.0.0.1:0", true},
		{"unix", "", false},
	} {
		t.Run(fmt.Sprintf("%s reuseport=%v", tc.network, tc.reuse), func(t *testing.T) {
			checkLeaks(t)
			addr := tc.addr
			if tc.network == "unix" {
				addr = t.TempDir() + "/s"
			} else {
				// ListenAndServe takes an address; find a free port.
				ln, err := net.Listen("tcp", addr)
				require.NoError(t, err)
				addr = ln.Addr().String()
				ln.Close()
			}
			s := &rionet.LoopServer{Loops: 2, ReusePort: tc.reuse, OnData: echoHandler}
			errc := make(chan error, 1)
			started := rionet.LoopStartedForTest(s)
			go func() { errc <- s.ListenAndServe(tc.network, addr) }()
			select {
			case <-started:
			case err := <-errc:
				requireURing(t, err)
				require.NoError(t, err)
			}
			for i := 0; i < 8; i++ {
				var c net.Conn
				var err error
				for try := 0; try < 100; try++ { // the listeners are up once started
					if c, err = net.Dial(tc.network, addr); err == nil {
						break
					}
					time.Sleep(time.Millisecond)
				}
				require.NoError(t, err)
				c.SetDeadline(time.Now().Add(20 * time.Second))
				require.NoError(t, echoCheck(t, c, [][]byte{[]byte("over ListenAndServe")}))
				c.Close()
			}
			s.Close()
			require.Equal(t, rionet.ErrServerClosed, <-errc, "ListenAndServe")
			require.NoError(t, rionet.LoopBugsForTest(s))
		})
	}
}

// ListenAndServe on a server already closed returns ErrServerClosed and
// closes the socket it opened (it leaked before).
func TestLoopListenAndServeClosed(t *testing.T) {
	checkLeaks(t)
	s := &rionet.LoopServer{Loops: 2, ReusePort: true, OnData: echoHandler}
	s.Close()
	require.Equal(t, rionet.ErrServerClosed, s.ListenAndServe("tcp", "127.0.0.1:0"), "ListenAndServe after Close")
}
