package rionet

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorio/rio"
)

// BufferGroup is the provided-buffer group ID that this package registers
// on every ring it uses. A caller who hands this package a Ring of its own
// (ListenConfig.Ring, Dialer.Ring) must not register another buffer ring
// under this ID on it.
const BufferGroup = 0x7e10

// Default sizes of the shared receive buffers: bufCount buffers of bufSize
// bytes per ring, and recvLimit bytes that one connection's multishot
// receive may take from them before it must be re-armed by a Read.
const (
	bufSize   = 4096
	bufCount  = 2048
	recvLimit = 64 << 10
	waitSpin  = 20 * time.Microsecond
)

// engine is what this package keeps per Ring: the buffer ring that
// multishot receives fill, and what the kernel was found to lack.
type engine struct {
	ring *rio.Ring
	br   *rio.BufferRing

	// reduced says what the engine gave up at setup, and why (see
	// Reduced); nil if nothing. With br nil, every Read receives
	// directly (noMultishot is set).
	reduced error

	noLimit     atomic.Bool // the kernel refused RecvMultishotLimit (before 6.17)
	noMultishot atomic.Bool // the kernel refused multishot recv (before 6.0)

	// For the package's own rings (pooled): how many netFDs use this
	// one, guarded by poolMu.
	pooled bool
	users  int
}

// forceEngineErr, set by tests, simulates a kernel without io_uring.
var forceEngineErr error

var (
	enginesMu sync.Mutex
	engines   = map[*rio.Ring]*engine{}

	defaultOnce sync.Once
	defaultEng  *engine
	defaultErr  error

	// The package's own rings: the default one first, then those made
	// when every ring before had connsPerRing users.
	poolMu sync.Mutex
	pool   []*engine
)

// connsPerRing is how many listeners and connections one of the package's
// own rings serves before new ones go to another ring. Each connection
// with a Read outstanding holds one of a ring's 65,472 operation slots
// (its multishot receive), and a Write that waits for the socket holds
// another: half of them leaves room for those. A variable for tests.
var connsPerRing = 32768

// defaultEngine returns the package's own ring, created on first use and
// kept for the life of the process. Its completion queue is large because
// every connection with a Read outstanding holds one of its entries.
func defaultEngine() (*engine, error) {
	defaultOnce.Do(func() {
		defaultEng, defaultErr = newDefaultEngine()
		if defaultErr == nil {
			defaultEng.pooled = true
			pool = []*engine{defaultEng}
		}
	})
	return defaultEng, defaultErr
}

// newDefaultEngine makes a ring of the package's own and its engine, in
// a reduced size if a resource limit demands it (see newDefaultRing).
func newDefaultEngine() (*engine, error) {
	r, reduced, err := newDefaultRing()
	if err != nil {
		return nil, err
	}
	e, err := newEngine(r)
	if err != nil {
		r.Close()
		return nil, err
	}
	if reduced != nil {
		e.reduced = errors.Join(reduced, e.reduced)
	}
	return e, nil
}

// defaultRingSizes are the SQ and CQ sizes the package's rings try,
// largest first: where RLIMIT_MEMLOCK, against which the kernel counts
// the rings' memory, is too low for one, the next (a CQ smaller than the
// connections with Reads outstanding only makes receives wait in the
// ring's queue).
var defaultRingSizes = [][2]uint32{{1024, 65536}, {256, 4096}, {64, 256}, {8, 16}}

// newDefaultRing creates one of the package's rings, in a reduced size if
// a resource limit demands it; reduced then says so and wraps the limit
// error of the full size.
func newDefaultRing() (r *rio.Ring, reduced, err error) {
	var first error // why the ring is smaller than the default
	for _, size := range defaultRingSizes {
		// COOP_TASKRUN: the kernel completes receives on the thread that
		// armed them at its next entry into the kernel instead of
		// interrupting it; measured faster here (docs/net.md). A Read
		// that would park with nobody else waiting spins for a moment
		// first (rio.WithWaitSpin), as Go's scheduler spins before it
		// parks a thread: one connection's round trip then wakes no
		// thread of the server.
		opts := []rio.Option{rio.WithEntries(size[0]), rio.WithCQEntries(size[1]), rio.WithWaitSpin(waitSpin)}
		r, err = rio.New(append(opts, rio.WithCoopTaskrun())...)
		if errors.Is(err, rio.ErrNotSupported) {
			r, err = rio.New(opts...)
		}
		if err == nil && first != nil {
			full := defaultRingSizes[0]
			reduced = fmt.Errorf("rionet: a ring of %d entries (CQ %d) instead of %d (CQ %d): %w", size[0], size[1], full[0], full[1], first)
		}
		if err == nil || !errors.Is(err, rio.ErrResourceLimit) {
			return r, reduced, err
		}
		if first == nil {
			first = err
		}
	}
	return nil, nil, err
}

// take returns the engine that a new netFD made on e is to use, counting
// the netFD as one of its users: e itself, unless e is one of the
// package's own rings. Those spill over: a netFD goes to the first of them
// with fewer than connsPerRing users, and to a new ring when there is
// none, so that the number of connections is not bounded by one ring's
// slots. Each take is undone by a put.
func (e *engine) take() *engine {
	if !e.pooled {
		return e
	}
	poolMu.Lock()
	defer poolMu.Unlock()
	least := pool[0]
	for _, p := range pool {
		if p.users < connsPerRing {
			p.users++
			return p
		}
		if p.users < least.users {
			least = p
		}
	}
	if p, err := newDefaultEngine(); err == nil {
		p.pooled, p.users = true, 1
		pool = append(pool, p)
		return p
	}
	// No new ring (out of memory or descriptors): share the least used
	// one; operations past its slots wait for one to free.
	least.users++
	return least
}

// put undoes a take. A ring of the package's own other than the default
// one is closed when its last user goes.
func (e *engine) put() {
	if !e.pooled {
		return
	}
	poolMu.Lock()
	e.users--
	last := e.users == 0 && e != pool[0]
	if last {
		pool = slices.DeleteFunc(pool, func(p *engine) bool { return p == e })
	}
	poolMu.Unlock()
	if last {
		releaseDgram(e)
		if e.br != nil {
			e.br.Close()
		}
		e.ring.Close()
	}
}

// engineFor returns the engine of r, creating it on first use. r == nil
// means the package's default ring.
func engineFor(r *rio.Ring) (*engine, error) {
	if forceEngineErr != nil {
		return nil, forceEngineErr
	}
	if r == nil {
		return defaultEngine()
	}
	enginesMu.Lock()
	defer enginesMu.Unlock()
	if e := engines[r]; e != nil {
		return e, nil
	}
	e, err := newEngine(r)
	if err != nil {
		return nil, err
	}
	engines[r] = e
	return e, nil
}

func newEngine(r *rio.Ring) (*engine, error) {
	for _, op := range []string{"RECV", "SEND", "ACCEPT", "CONNECT", "ASYNC_CANCEL"} {
		if err := r.Supported(op); err != nil {
			return nil, err
		}
	}
	e := &engine{ring: r}
	e.br, e.reduced = newRecvBuffers(r)
	if e.br == nil {
		e.noMultishot.Store(true)
	}
	return e, nil
}

// newRecvBuffers registers the receive buffers on r: bufCount of them, or
// fewer where RLIMIT_MEMLOCK does not allow as many, or none where the
// kernel cannot (before Linux 5.19), the limit allows not even a few, or
// the group is taken (EEXIST: a buffer ring of the caller's under
// BufferGroup). Without them every Read receives directly into its
// buffer, as on a kernel without multishot receive. reduced says why the
// buffers are fewer or none.
func newRecvBuffers(r *rio.Ring) (*rio.BufferRing, error) {
	var first error // why the buffers are fewer than bufCount
	for n := bufCount; ; n /= 4 {
		br, err := r.NewBufferRing(BufferGroup, n, bufSize)
		if err == nil {
			if first != nil {
				return br, fmt.Errorf("rionet: %d receive buffers instead of %d: %w", n, bufCount, first)
			}
			return br, nil
		}
		if first == nil {
			first = err
		}
		if !errors.Is(err, rio.ErrResourceLimit) || n <= 32 {
			return nil, fmt.Errorf("rionet: no receive buffers, every Read receives directly: %w", err)
		}
	}
}

// Release drops what this package registered on r (its receive buffer
// ring). Call it before closing a Ring that was passed in a ListenConfig
// or Dialer, once every connection and listener on it has been closed.
// It is a no-op for rings this package never used. While a connection on
// r still receives, it fails with an error matching syscall.EBUSY and
// changes nothing: r stays usable by this package, and Release can be
// called again once the connections are closed.
func Release(r *rio.Ring) error {
	enginesMu.Lock()
	defer enginesMu.Unlock()
	e := engines[r]
	if e == nil {
		return nil
	}
	if e.br != nil {
		if err := e.br.Close(); err != nil {
			return err // EBUSY: a connection still receives; nothing changed
		}
	}
	delete(engines, r)
	return releaseDgram(e)
}
