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
		// COOP_TASKRUN: the kernel completes receives on the thread that
		// armed them at its next entry into the kernel instead of
		// interrupting it; measured faster here (docs/net.md).
		r, err := rio.New(rio.WithEntries(1024), rio.WithCQEntries(65536), rio.WithCoopTaskrun())
		if errors.Is(err, rio.ErrNotSupported) {
			r, err = rio.New(rio.WithEntries(1024), rio.WithCQEntries(65536))
		}
		if err != nil {
			defaultErr = err
			return
		}
		defaultEng, defaultErr = newEngine(r)
		if defaultErr != nil {
			r.Close()
		}
	})
	return defaultEng, defaultErr
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
	br, err := r.NewBufferRing(BufferGroup, bufCount, bufSize)
	if err != nil {
		if errors.Is(err, rio.ErrNotSupported) {
			return nil, err
		}
		return nil, fmt.Errorf("rionet: registering receive buffers: %w", err)
	}
	return &engine{ring: r, br: br}, nil
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
	if err := e.br.Close(); err != nil {
		return err // EBUSY: a connection still receives; nothing changed
	}
	delete(engines, r)
	return releaseDgram(e)
}
