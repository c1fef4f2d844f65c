package rionet

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"sync"
	"syscall"
	"time"

	"github.com/gorio/rio/internal/uring"
	"golang.org/x/sys/unix"
)

// LoopServer serves stream connections from a few event loops (by
// default one per P but one), each owning an io_uring instance of its own: the loop
// accepts with a multishot accept, receives with one multishot receive per
// connection into a ring of buffers it owns, calls the handler's functions
// for each event, and submits the writes the handler queued as sends, all
// of an iteration's submissions with one io_uring_enter. It is the
// callback API beside the net.Conn of Listen; docs/loop.md describes it
// and how it compares with other event-loop servers.
//
// Set the handler functions, then call Serve (or ListenAndServe); stop it
// with Shutdown or Close.
//
// # Callbacks
//
// OnOpen, OnData and OnClose run on the loop that owns the connection,
// one at a time per loop, never concurrently for one connection. While a
// callback runs, its loop handles nothing else: a callback must not block
// (sleep, wait for a lock held elsewhere, make a slow system call). A
// handler with slow work hands the connection to a goroutine of its own:
// it calls PauseRead, starts the goroutine, and returns; the goroutine
// may block as long as it likes, writes with LoopConn.Write (which waits
// there for room in the write queue), and calls ResumeRead when it wants
// the next OnData.
//
// # Ownership
//
// The data slice passed to OnData is borrowed: it aliases a receive buffer
// that the loop gives back to the kernel when OnData returns, so the
// handler must not keep it (or a sub-slice) after returning, nor use it
// from another goroutine. To keep the bytes without copying, OnData calls
// LoopConn.Retain, which hands ownership of the data's memory to the
// caller until it calls LoopBuffer.Release (from any goroutine). Write
// copies its argument into the connection's write queue before it
// returns, so the caller may reuse its slice at once.
//
// # Handler panics
//
// A panic in OnOpen or OnData is recovered on the loop: that connection is
// closed at once (its queued writes are dropped), OnClose is called with a
// *PanicError holding the value and the stack, and the loop goes on
// serving every other connection. A panic in OnClose is recovered and
// discarded. No other connection, and no buffer, is lost.
//
// # Kernel support
//
// The loops need Linux 6.0 (multishot receive and provided-buffer rings).
// They set their rings up with IORING_SETUP_SINGLE_ISSUER|DEFER_TASKRUN
// (Linux 6.1), so that completion work runs only when the loop's own
// thread enters the kernel, and fall back to COOP_TASKRUN (Linux 5.19) on
// older kernels. Where io_uring is unavailable or too old, Serve returns
// an error matching rio.ErrNotSupported (a *rio.FeatureError that names
// what is missing); there is no epoll fallback.
type LoopServer struct {
	// OnOpen, if set, is called on the loop when a connection has been
	// accepted, before any OnData for it.
	OnOpen func(c *LoopConn)

	// OnData is called on the loop with bytes received from c: data is the
	// bytes the previous OnData left unconsumed (if any) followed by the
	// new ones. It returns how many of them it consumed (from the front);
	// the rest is kept, at most MaxReadBuffer bytes, and passed again with
	// what arrives next. data is borrowed until OnData returns; see
	// LoopConn.Retain to keep it. OnData is required.
	OnData func(c *LoopConn, data []byte) (consumed int)

	// OnClose, if set, is called on the loop once the connection is
	// closed and its descriptor released, with nil if it was closed by
	// Close, io.EOF if the peer closed it, ErrServerClosed if the server
	// was shut down, a *PanicError if a handler panicked, ErrIdleTimeout,
	// or the error that broke it (a *net.OpError wrapping the
	// *os.SyscallError, such as ECONNRESET). Every connection that got an
	// OnOpen gets exactly one OnClose.
	OnClose func(c *LoopConn, err error)

	// Loops is the number of event loops. 0 means one per P but one,
	// GOMAXPROCS-1 (at least 1): each loop holds a P while it runs and
	// waits in the kernel between iterations, and the P left over runs
	// the rest of the program (handlers' goroutines, the garbage
	// collector) and keeps the scheduler from taking the loops' Ps back
	// while they wait (docs/loop.md has the measurements).
	Loops int

	// MaxWriteBuffer bounds the bytes a connection's write queue holds
	// (default 256 KiB); see LoopConn.Write for what happens when it is
	// full. Once a connection has more than half of it queued, the loop
	// stops reading from it until the queue drains below a quarter, so
	// that a peer that sends but does not read is held back by TCP flow
	// control rather than by the server's memory.
	MaxWriteBuffer int

	// MaxReadBuffer bounds the unconsumed bytes kept for a connection
	// between two OnData calls (default 64 KiB). A connection whose
	// handler leaves more unconsumed is closed with ErrReadBufferFull.
	MaxReadBuffer int

	// ReadBufferSize and ReadBuffers size each loop's ring of receive
	// buffers: ReadBuffers (a power of two, default 1024) buffers of
	// ReadBufferSize bytes (default 4096). One receive fills at most one
	// buffer. The memory is mapped outside the Go heap and becomes
	// resident only as it is used.
	ReadBufferSize, ReadBuffers int

	// IdleTimeout, if positive, closes a connection with ErrIdleTimeout
	// when nothing has been received from it for that long.
	IdleTimeout time.Duration

	// KeepAlive is the TCP keep-alive period of accepted connections, as
	// in net.ListenConfig: zero means 15 seconds, negative disables them.
	KeepAlive time.Duration

	// ReusePort makes ListenAndServe open one SO_REUSEPORT listening
	// socket per loop (TCP only), so that the kernel spreads new
	// connections over the loops; by default every loop accepts from one
	// shared socket and the loops spread the connections themselves.
	ReusePort bool

	// newKernel, set by tests, replaces io_uring_setup (a simulated
	// kernel).
	newKernel func(entries uint32, p *uring.Params) (uring.Kernel, error)

	mu       sync.Mutex
	state    int  // srvNew, srvServing, srvStopping, srvClosed
	abort    bool // Close, or Shutdown's context done: stop without flushing
	loops    []*loop
	lns      []net.Listener
	done     chan struct{} // closed when every loop has exited
	accepts  sync.WaitGroup
	lnClosed chan struct{}
	started  chan struct{} // closed once every loop has been set up (or failed)
}

const (
	srvNew = iota
	srvServing
	srvStopping
	srvClosed
)

// Errors of the loop server. They match with errors.Is.
var (
	// ErrServerClosed is returned by Serve once Shutdown or Close was
	// called, and passed to OnClose for the connections they close.
	ErrServerClosed = errors.New("rionet: LoopServer closed")

	// ErrWriteBufferFull is returned by a Write made on the loop (from a
	// callback) that does not fit in the connection's write queue; the
	// bytes that fit were queued and counted.
	ErrWriteBufferFull = errors.New("rionet: write queue full")

	// ErrReadBufferFull closes a connection whose handler left more than
	// MaxReadBuffer bytes unconsumed.
	ErrReadBufferFull = errors.New("rionet: unconsumed input over MaxReadBuffer")

	// ErrIdleTimeout closes a connection that received nothing for
	// IdleTimeout. It matches os.ErrDeadlineExceeded.
	ErrIdleTimeout error = idleTimeoutError{}
)

type idleTimeoutError struct{}

func (idleTimeoutError) Error() string        { return "rionet: idle timeout" }
func (idleTimeoutError) Timeout() bool        { return true }
func (idleTimeoutError) Temporary() bool      { return true }
func (idleTimeoutError) Is(target error) bool { return target == os.ErrDeadlineExceeded }

// PanicError is the error passed to OnClose for a connection whose OnOpen
// or OnData panicked.
type PanicError struct {
	Value any    // the value passed to panic
	Stack []byte // the panicking goroutine's stack
}

// Error reports the panic value.
func (e *PanicError) Error() string { return fmt.Sprintf("rionet: handler panic: %v", e.Value) }

// Unwrap returns the panic value if it is an error.
func (e *PanicError) Unwrap() error {
	err, _ := e.Value.(error)
	return err
}

func (s *LoopServer) withDefaults() error {
	if s.OnData == nil {
		return fmt.Errorf("rionet: LoopServer.OnData is nil: %w", syscall.EINVAL)
	}
	if s.Loops <= 0 {
		s.Loops = max(1, runtime.GOMAXPROCS(0)-1)
	}
	if s.MaxWriteBuffer <= 0 {
		s.MaxWriteBuffer = 256 << 10
	}
	if s.MaxReadBuffer <= 0 {
		s.MaxReadBuffer = 64 << 10
	}
	if s.ReadBufferSize <= 0 {
		s.ReadBufferSize = 4096
	}
	if s.ReadBuffers <= 0 {
		s.ReadBuffers = 1024
	}
	if s.ReadBuffers > 32768 || s.ReadBuffers&(s.ReadBuffers-1) != 0 {
		return fmt.Errorf("rionet: LoopServer.ReadBuffers %d is not a power of two up to 32768: %w", s.ReadBuffers, syscall.EINVAL)
	}
	return nil
}

// ListenAndServe listens on address (networks "tcp", "tcp4", "tcp6" and
// "unix", as net.Listen) and serves; see Serve. With ReusePort, it opens
// one SO_REUSEPORT socket per loop.
func (s *LoopServer) ListenAndServe(network, address string) error {
	if err := s.withDefaults(); err != nil {
		return err
	}
	n := 1
	var lc net.ListenConfig
	if s.ReusePort && network != "unix" {
		n = s.Loops
		lc.Control = func(_, _ string, rc syscall.RawConn) error {
			var serr error
			err := rc.Control(func(fd uintptr) {
				serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
			})
			if err != nil {
				return err
			}
			if serr != nil {
				return os.NewSyscallError("setsockopt", serr)
			}
			return nil
		}
	}
	lns := make([]net.Listener, 0, n)
	for i := 0; i < n; i++ {
		addr := address
		if i > 0 {
			addr = lns[0].Addr().String() // the port the first one got
		}
		ln, err := lc.Listen(context.Background(), network, addr)
		if err != nil {
			for _, l := range lns {
				l.Close()
			}
			return err
		}
		lns = append(lns, ln)
	}
	owned, err := s.serve(lns)
	if !owned {
		for _, ln := range lns {
			ln.Close()
		}
	}
	return err
}

// Serve accepts connections on ln and serves them until Shutdown or Close,
// then returns ErrServerClosed. It returns once every loop has stopped:
// every connection is closed, its OnClose has returned, and every ring is
// closed. Serve takes ln over: it accepts from ln's socket itself, and
// closes ln when it stops accepting. ln must be a TCP or Unix stream
// listener whose socket is reachable through syscall.Conn (those of
// package net and of this package are).
//
// Where io_uring is unavailable, Serve returns an error matching
// rio.ErrNotSupported, without closing ln.
func (s *LoopServer) Serve(ln net.Listener) error {
	if err := s.withDefaults(); err != nil {
		return err
	}
	_, err := s.serve([]net.Listener{ln})
	return err
}

// serve serves lns; owned reports whether it took them over (and closed
// them once no loop accepted): false when it returns before serving or
// when the loops could not start.
func (s *LoopServer) serve(lns []net.Listener) (owned bool, err error) {
	fds := make([]int, len(lns))
	for i, ln := range lns {
		fd, err := listenerFd(ln)
		if err != nil {
			return false, err
		}
		fds[i] = fd
	}
	s.mu.Lock()
	if s.state != srvNew {
		st := s.state
		s.mu.Unlock()
		if st == srvServing {
			return false, errors.New("rionet: LoopServer.Serve called twice")
		}
		return false, ErrServerClosed
	}
	s.state = srvServing
	s.lns = lns
	s.done = make(chan struct{})
	s.lnClosed = make(chan struct{})
	s.startedCh()
	s.mu.Unlock()

	// Start the loops; each sets up its ring on its own locked thread.
	// s.loops is complete before any starts: loops place connections on
	// each other.
	loops := make([]*loop, s.Loops)
	for i := range loops {
		loops[i] = newLoop(s, i, fds[i%len(fds)], len(fds) == 1 && len(loops) > 1)
	}
	s.mu.Lock()
	s.loops = loops
	s.mu.Unlock()
	errs := make(chan error, s.Loops)
	for _, l := range loops {
		s.accepts.Add(1)
		go l.run(errs)
	}
	var first error
	for range loops {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	s.mu.Lock()
	stopping := s.state != srvServing
	s.mu.Unlock()
	close(s.started)
	if first != nil {
		// Stop the loops that did start; they have no connections yet.
		for _, l := range loops {
			l.command(cmdAbort)
		}
	} else if stopping {
		// Shutdown or Close ran while the loops were starting.
		for _, l := range loops {
			l.command(s.stopCmd())
		}
	}
	go func() {
		s.accepts.Wait()
		if first == nil {
			for _, ln := range lns {
				ln.Close()
			}
		}
		close(s.lnClosed)
	}()
	for _, l := range loops {
		<-l.exited
	}
	<-s.lnClosed
	s.mu.Lock()
	s.state = srvClosed
	s.mu.Unlock()
	close(s.done)
	if first != nil {
		return false, first
	}
	return true, ErrServerClosed
}

func (s *LoopServer) stopCmd() uint32 {
	if s.abort {
		return cmdAbort
	}
	return cmdStop
}

// Shutdown stops the server gracefully: it stops accepting (and closes the
// listeners), closes every idle connection once its queued writes have
// been sent, and waits. A connection whose reading is paused (handed to a
// goroutine with PauseRead) is not idle: it is closed once it is resumed,
// or closed by its goroutine. Shutdown returns nil when every connection
// has been closed, every ring closed and every buffer taken with Retain
// released; OnClose gets ErrServerClosed for the connections it closed.
//
// If ctx is done first, Shutdown closes what is left as Close does, waits
// for the loops to stop, and returns ctx.Err(); buffers still retained
// then stay mapped until they are released.
func (s *LoopServer) Shutdown(ctx context.Context) error {
	if !s.begin(false) {
		return nil
	}
	select {
	case <-s.done:
	case <-ctx.Done():
		s.abortAll()
		<-s.done
		return ctx.Err()
	}
	for _, l := range s.loops {
		select {
		case <-l.released:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// Close stops the server at once: it stops accepting, closes every
// connection without sending what is still queued (OnClose gets
// ErrServerClosed), and returns once every loop has stopped and closed its
// ring. Buffers still retained stay mapped until they are released.
func (s *LoopServer) Close() error {
	if !s.begin(true) {
		return nil
	}
	<-s.done
	return nil
}

// begin moves the server to stopping and tells the loops; it reports
// whether the server was started (false: never served, nothing to wait
// for).
func (s *LoopServer) begin(abort bool) bool {
	s.mu.Lock()
	switch s.state {
	case srvNew:
		s.state = srvClosed
		s.mu.Unlock()
		return false
	case srvServing:
		s.state = srvStopping
	}
	if abort {
		s.abort = true
	}
	loops := s.loops
	s.mu.Unlock()
	for _, l := range loops {
		l.command(s.stopCmd())
	}
	return true
}

func (s *LoopServer) abortAll() {
	s.mu.Lock()
	s.abort = true
	loops := s.loops
	s.mu.Unlock()
	for _, l := range loops {
		l.command(cmdAbort)
	}
}

// startedCh returns the channel closed once the loops are set up; called
// with mu held.
func (s *LoopServer) startedCh() chan struct{} {
	if s.started == nil {
		s.started = make(chan struct{})
	}
	return s.started
}

// listenerFd returns the socket of ln.
func listenerFd(ln net.Listener) (int, error) {
	sc, ok := ln.(syscall.Conn)
	if !ok {
		return -1, fmt.Errorf("rionet: LoopServer.Serve: listener %T has no socket (syscall.Conn): %w", ln, syscall.EINVAL)
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return -1, err
	}
	fd := -1
	if err := rc.Control(func(s uintptr) { fd = int(s) }); err != nil {
		return -1, err
	}
	return fd, nil
}
