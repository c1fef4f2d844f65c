package rionet

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

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
	noAcceptMS  atomic.Bool // the kernel refused multishot accept (before 5.19)
}

// forceEngineErr, set by tests, simulates a kernel without io_uring.
var forceEngineErr error

var (
	enginesMu sync.Mutex
	engines   = map[*rio.Ring]*engine{}

	defaultOnce sync.Once
	defaultEng  *engine
	defaultErr  error
)

// defaultEngine returns the package's own ring, created on first use and
// kept for the life of the process. Its completion queue is large because
// every connection with a Read outstanding holds one of its entries.
func defaultEngine() (*engine, error) {
	defaultOnce.Do(func() {
		r, reduced, err := newDefaultRing()
		if err != nil {
			defaultErr = err
			return
		}
		defaultEng, defaultErr = newEngine(r)
		if defaultErr != nil {
			r.Close()
		} else if reduced != nil {
			defaultEng.reduced = errors.Join(reduced, defaultEng.reduced)
		}
	})
	return defaultEng, defaultErr
}

// defaultRingSizes are the SQ and CQ sizes the default ring tries, largest
// first: where RLIMIT_MEMLOCK, against which the kernel counts the rings'
// memory, is too low for one, the next (a CQ smaller than the connections
// with Reads outstanding only makes receives wait in the ring's queue).
var defaultRingSizes = [][2]uint32{{1024, 65536}, {256, 4096}, {64, 256}, {8, 16}}

// newDefaultRing creates the default ring, in a reduced size if a resource
// limit demands it; reduced is then the limit error of the full size.
func newDefaultRing() (r *rio.Ring, reduced, err error) {
	var first error // why the ring is smaller than the default
	for _, size := range defaultRingSizes {
		// COOP_TASKRUN: the kernel completes receives on the thread that
		// armed them at its next entry into the kernel instead of
		// interrupting it; measured faster here (docs/net.md).
		r, err = rio.New(rio.WithEntries(size[0]), rio.WithCQEntries(size[1]), rio.WithCoopTaskrun())
		if errors.Is(err, rio.ErrNotSupported) {
			r, err = rio.New(rio.WithEntries(size[0]), rio.WithCQEntries(size[1]))
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
