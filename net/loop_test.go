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
	if err != nil {
		t.Fatal(err)
	}
	lt.addr = ln.Addr().String()
	started := rionet.LoopStartedForTest(s)
	go func() { lt.errc <- s.Serve(ln) }()
	select {
	case <-started:
	case err := <-lt.errc:
		ln.Close()
		requireURing(t, err)
		t.Fatalf("Serve returned %v at once", err)
	}
	select {
	case err := <-lt.errc:
		ln.Close()
		requireURing(t, err)
		t.Fatalf("Serve: %v", err)
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
		if err != rionet.ErrServerClosed {
			t.Errorf("Serve returned %v, want ErrServerClosed", err)
		}
		lt.errc <- err // for a later wait
	case <-time.After(30 * time.Second):
		t.Fatal("Serve did not return after Close")
	}
	if err := rionet.LoopBugsForTest(lt.s); err != nil {
		t.Errorf("loop invariants: %v", err)
	}
	if o, c := lt.opened.Load(), lt.closed.Load(); o != c {
		t.Errorf("%d connections opened, %d closed", o, c)
	}
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
	if err != nil {
		lt.t.Fatal(err)
	}
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
		if time.Now().After(deadline) {
			lt.t.Fatalf("%d of %d connections closed", lt.closed.Load(), n)
		}
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
		t.Error(err)
	}
	for _, c := range conns {
		c.Close()
	}
	lt.waitClosed(n)
	for _, err := range lt.closeErrs() {
		if err != io.EOF {
			t.Errorf("OnClose error %v, want io.EOF (the peer closed)", err)
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
	if err != nil || string(b) != "hello" {
		t.Fatalf("echo after half-close: %q, %v", b, err)
	}

	c2 := lt.dial()
	c2.SetDeadline(time.Now().Add(20 * time.Second))
	c2.Write([]byte("shut"))
	b, err = io.ReadAll(c2)
	if err != nil || string(b) != "bye" {
		t.Fatalf("after the server's CloseWrite: %q, %v", b, err)
	}
	// The server still reads (its handler writes nothing back now: the
	// Write fails).
	before := got.Load()
	if _, err := c2.Write([]byte("more")); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); got.Load() < before+4; {
		if time.Now().After(deadline) {
			t.Fatal("the server stopped reading after CloseWrite")
		}
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
		if err != io.EOF && !errors.Is(err, syscall.ECONNRESET) && !errors.Is(err, syscall.EPIPE) {
			t.Errorf("OnClose error %v, want io.EOF, ECONNRESET or EPIPE", err)
		}
		var oe *net.OpError
		if err != io.EOF && !errors.As(err, &oe) {
			t.Errorf("OnClose error %T, want a *net.OpError", err)
		}
	}
	c := lt.dial()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	if err := echoCheck(t, c, [][]byte{[]byte("still serving")}); err != nil {
		t.Fatal(err)
	}
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
	if stalls < 3 {
		t.Fatalf("sent %d bytes to a server whose peer never reads without stalling", sent)
	}
	if n := over.Load(); n != 0 {
		t.Fatalf("write queue held %d bytes, over MaxWriteBuffer %d", n, max)
	}
	if n := rionet.LoopChunksInUseForTest(s); n*rionet.ChunkSizeForTest > max+rionet.ChunkSizeForTest {
		t.Fatalf("%d write chunks in use for one connection with MaxWriteBuffer %d", n, max)
	}
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
				if _, err := sc.Write(rec); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	got := make([]byte, writers*records*1000)
	c.SetDeadline(time.Now().Add(30 * time.Second))
	if n, err := io.ReadFull(c, got); err != nil {
		t.Fatalf("after %d bytes: %v\n%s", n, err, rionet.LoopStateForTest(lt.s))
	}
	wg.Wait()
	for i := 0; i < len(got); i += 1000 {
		if !bytes.Equal(got[i:i+1000], bytes.Repeat(got[i:i+1], 1000)) {
			t.Fatalf("record at %d interleaved with another", i)
		}
	}

	// The peer stops reading: a large Write waits, then fails at its
	// deadline having queued at most MaxWriteBuffer.
	sc.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
	n, err := sc.Write(make([]byte, 16<<20))
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Write to a peer that does not read: %d, %v; want os.ErrDeadlineExceeded", n, err)
	}
	if sc.OutboundBuffered() > 64<<10 {
		t.Fatalf("%d bytes queued, over MaxWriteBuffer", sc.OutboundBuffered())
	}
	// Close wakes a waiting Write with net.ErrClosed.
	sc.SetWriteDeadline(time.Time{})
	errc := make(chan error, 1)
	go func() {
		_, err := sc.Write(make([]byte, 16<<20))
		errc <- err
	}()
	time.Sleep(10 * time.Millisecond) // let it wait (not needed for the test to pass)
	sc.Close()
	if err := <-errc; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Write waiting when the connection closed: %v, want net.ErrClosed", err)
	}
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
	if err := <-res; err != nil {
		t.Fatal(err)
	}
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
		if _, err := io.ReadAll(c); err != nil && !errors.Is(err, syscall.ECONNRESET) {
			t.Fatal(err)
		}
		if err := echoCheck(t, survivor, [][]byte{[]byte(fmt.Sprint("still here ", i))}); err != nil {
			t.Fatalf("after panic %d: %v", i, err)
		}
	}
	lt.waitClosed(30)
	panics := 0
	for _, err := range lt.closeErrs() {
		var pe *rionet.PanicError
		if errors.As(err, &pe) {
			panics++
			if len(pe.Stack) == 0 {
				t.Error("PanicError without a stack")
			}
		}
	}
	if panics != 30 {
		t.Fatalf("%d *PanicError closes, want 30", panics)
	}
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
		if err := echoCheck(t, c, [][]byte{[]byte("quick")}); err != nil {
			t.Fatal(err)
		}
		c.Close()
	}
	close(release)
	got := make([]byte, len("slow and more"))
	if _, err := io.ReadFull(slow, got); err != nil || string(got) != "slow and more" {
		t.Fatalf("slow connection: %q, %v", got, err)
	}
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
	if !bytes.Equal(got, want) {
		t.Fatalf("retained %q, want %q", got, want)
	}
	c.Close()
	lt.waitClosed(1)
	done := make(chan error, 1)
	go func() { done <- s.Shutdown(context.Background()) }()
	if err := lt.wait(); err != rionet.ErrServerClosed {
		t.Fatalf("Serve: %v", err)
	}
	select {
	case err := <-done:
		t.Fatalf("Shutdown returned %v with buffers still retained", err)
	default:
	}
	for _, b := range bufs {
		b.Release()
		b.Release() // twice: a no-op
	}
	if err := <-done; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
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
				if !bytes.Equal(got, msg) {
					t.Errorf("conn %d: echo differs", i)
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
		t.Fatalf("Shutdown returned %v while a connection is handed to a goroutine", err)
	default:
	}
	pc.Write([]byte("done"))
	pc.ResumeRead()
	if err := <-done; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if err := lt.wait(); err != rionet.ErrServerClosed {
		t.Fatalf("Serve: %v", err)
	}
	b, _ := io.ReadAll(p)
	if string(b) != "done" {
		t.Fatalf("the paused connection got %q before closing, want its queued reply", b)
	}
	for _, err := range lt.closeErrs() {
		if err != rionet.ErrServerClosed && err != io.EOF {
			t.Errorf("OnClose error %v, want ErrServerClosed", err)
		}
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
	if err := s.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown: %v, want context.DeadlineExceeded", err)
	}
	if err := lt.wait(); err != rionet.ErrServerClosed {
		t.Fatalf("Serve: %v", err)
	}
}

func TestLoopIdleTimeout(t *testing.T) {
	lt := serveLoop(t, &rionet.LoopServer{IdleTimeout: 20 * time.Millisecond, OnData: echoHandler})
	c := lt.dial()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	if err := echoCheck(t, c, [][]byte{[]byte("hi")}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("Read on an idle connection: %v, want io.EOF once the server closes it", err)
	}
	lt.waitClosed(1)
	if errs := lt.closeErrs(); !errors.Is(errs[0], rionet.ErrIdleTimeout) || !errors.Is(errs[0], os.ErrDeadlineExceeded) {
		t.Fatalf("OnClose error %v, want ErrIdleTimeout", errs[0])
	}
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
	if _, err := io.ReadFull(c, got); err != nil || string(got) != "abc\ndef\n" {
		t.Fatalf("got %q, %v", got, err)
	}
}

// Too much unconsumed input closes the connection with ErrReadBufferFull.
func TestLoopReadBufferFull(t *testing.T) {
	lt := serveLoop(t, &rionet.LoopServer{MaxReadBuffer: 8 << 10, OnData: func(*rionet.LoopConn, []byte) int { return 0 }})
	c := lt.dial()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	c.Write(make([]byte, 64<<10))
	io.Copy(io.Discard, c)
	lt.waitClosed(1)
	if errs := lt.closeErrs(); !errors.Is(errs[0], rionet.ErrReadBufferFull) {
		t.Fatalf("OnClose error %v, want ErrReadBufferFull", errs[0])
	}
}

// Without io_uring, Serve returns an error matching rio.ErrNotSupported.
func TestLoopNotSupported(t *testing.T) {
	s := &rionet.LoopServer{OnData: echoHandler}
	rionet.SetLoopKernelForTest(s, noKernel)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if err := s.Serve(ln); !errors.Is(err, rio.ErrNotSupported) {
		t.Fatalf("Serve without io_uring: %v, want rio.ErrNotSupported", err)
	}
}

// A LoopServer without OnData is a caller's mistake: Serve says so with an
// error matching EINVAL, and leaves ln open.
func TestLoopNoOnData(t *testing.T) {
	s := &rionet.LoopServer{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if err := s.Serve(ln); !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("Serve without OnData: %v, want an error matching EINVAL", err)
	}
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatalf("ln closed by a Serve that did not serve: %v", err)
	}
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
	if err != nil {
		t.Fatal(err)
	}
	var fd int
	rc.Control(func(s uintptr) { fd = int(s) })
	if err := unix.SetNonblock(fd, false); err != nil {
		t.Fatal(err)
	}
	msg, got := []byte("0123456789abcdef"), make([]byte, 16)
	roundTrip := func() {
		if _, err := unix.Write(fd, msg); err != nil {
			t.Fatal(err)
		}
		for n := 0; n < len(got); {
			m, err := unix.Read(fd, got[n:])
			if err != nil || m == 0 {
				t.Fatalf("read: %d, %v", m, err)
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
	if allocs := after.Mallocs - before.Mallocs; allocs > n/50 {
		t.Fatalf("%d heap allocations over %d requests", allocs, n)
	}
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
		if err := echoCheck(t, c, [][]byte{[]byte("x")}); err != nil { // accepted and served
			t.Fatal(err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if per[0]+per[1] != 64 || per[0] < 30 || per[1] < 30 {
		t.Fatalf("connections per loop: %v", per)
	}
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
				if err != nil {
					t.Fatal(err)
				}
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
				t.Fatal(err)
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
				if err != nil {
					t.Fatal(err)
				}
				c.SetDeadline(time.Now().Add(20 * time.Second))
				if err := echoCheck(t, c, [][]byte{[]byte("over ListenAndServe")}); err != nil {
					t.Fatal(err)
				}
				c.Close()
			}
			s.Close()
			if err := <-errc; err != rionet.ErrServerClosed {
				t.Fatalf("ListenAndServe: %v", err)
			}
			if err := rionet.LoopBugsForTest(s); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// ListenAndServe on a server already closed returns ErrServerClosed and
// closes the socket it opened (it leaked before).
func TestLoopListenAndServeClosed(t *testing.T) {
	checkLeaks(t)
	s := &rionet.LoopServer{Loops: 2, ReusePort: true, OnData: echoHandler}
	s.Close()
	if err := s.ListenAndServe("tcp", "127.0.0.1:0"); err != rionet.ErrServerClosed {
		t.Fatalf("ListenAndServe after Close: %v", err)
	}
}
