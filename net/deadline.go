package rionet

import (
	"context"
	"errors"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// errWake is what a wakeCtx reports when its channel has been closed: a
// deadline expired or the connection closed. The waiter then looks at the
// deadline's state to tell which.
var errWake = errors.New("rionet: wake")

// wakeCtx is the context handed to the ring's WaitContext and NextContext.
// Its Done channel is closed when the deadline it belongs to expires or
// its connection closes; nothing else about it is used.
type wakeCtx struct{ ch chan struct{} }

func newWakeCtx() *wakeCtx { return &wakeCtx{ch: make(chan struct{})} }

func (w *wakeCtx) Deadline() (time.Time, bool) { return time.Time{}, false }
func (w *wakeCtx) Done() <-chan struct{}       { return w.ch }
func (w *wakeCtx) Value(any) any               { return nil }
func (w *wakeCtx) Err() error {
	select {
	case <-w.ch:
		return errWake
	default:
		return nil
	}
}

var _ context.Context = (*wakeCtx)(nil)

// deadlines is the deadline state of a netFD. It is allocated the first
// time a deadline is set or an operation waits on the ring with a wake
// channel (a Write on a full socket, a direct receive, an Accept): an idle
// connection that never sets a deadline does not pay for it.
type deadlines struct {
	rd, wd deadline
}

// deadline is the state of one direction's deadline (read or write, or a
// listener's accept). Operations blocked on a ring operation wait on the
// deadline's wakeCtx, made when the first of them asks for it, whose
// channel is closed when the deadline passes or the owner closes. A Read
// blocked on the multishot receive waits on the stream instead, which the
// read deadline wakes (fd.wakeReader). Moving the deadline later or
// clearing it does not wake anybody; moving it into the past wakes them,
// and they return a timeout.
type deadline struct {
	fd      *netFD
	read    bool // the read (or accept) deadline
	expired atomic.Bool

	mu    sync.Mutex
	when  time.Time
	timer *time.Timer
	wc    *wakeCtx // nil until a waiter asks for it
	fired bool     // the deadline passed or the owner closed: wc is closed
}

// deadlines returns fd's deadline state, allocating it on first use.
func (fd *netFD) deadlines() *deadlines {
	if d := fd.dl.Load(); d != nil {
		return d
	}
	d := &deadlines{}
	d.rd.fd, d.rd.read = fd, true
	d.wd.fd = fd
	if !fd.dl.CompareAndSwap(nil, d) {
		return fd.dl.Load()
	}
	return d
}

// setDeadline sets the read deadline, the write deadline or both. Clearing
// a deadline that was never set allocates nothing.
func (fd *netFD) setDeadline(t time.Time, read, write bool) {
	if t.IsZero() && fd.dl.Load() == nil {
		return
	}
	d := fd.deadlines()
	if read {
		d.rd.set(t)
	}
	if write {
		d.wd.set(t)
	}
}

// set moves the deadline to t; the zero time clears it.
func (d *deadline) set(t time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.fd.isClosing() {
		return
	}
	d.when = t
	if t.IsZero() {
		if d.timer != nil {
			d.timer.Stop()
		}
		d.rearmLocked()
		return
	}
	dur := time.Until(t)
	if dur <= 0 {
		if d.timer != nil {
			d.timer.Stop()
		}
		d.expired.Store(true)
		d.fireLocked()
		return
	}
	d.rearmLocked()
	if d.timer == nil {
		d.timer = time.AfterFunc(dur, d.onTimer)
	} else {
		d.timer.Reset(dur)
	}
}

// rearmLocked makes the deadline not expired; a closed wake channel is
// replaced by a fresh one when a waiter next asks for it.
func (d *deadline) rearmLocked() {
	d.expired.Store(false)
	if d.fired {
		d.fired = false
		d.wc = nil
	}
}

// fireLocked wakes every waiter: those on the wake channel, and a Read
// waiting on the receive stream.
func (d *deadline) fireLocked() {
	if !d.fired {
		d.fired = true
		if d.wc != nil {
			close(d.wc.ch)
		}
	}
	if d.read {
		d.fd.wakeReader()
	}
}

func (d *deadline) onTimer() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.fd.isClosing() || d.when.IsZero() || time.Now().Before(d.when) {
		return // moved or cleared after the timer was started
	}
	d.expired.Store(true)
	d.fireLocked()
}

// close wakes every waiter for good; the netFD is closing.
func (d *deadline) close() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.timer != nil {
		d.timer.Stop()
	}
	d.fireLocked()
}

// ctx returns the context to wait with. Callers check fd.waitErr after
// taking it, and wait again when woken without a reason.
func (d *deadline) ctx() *wakeCtx {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.wc == nil {
		d.wc = newWakeCtx()
		if d.fired {
			close(d.wc.ch)
		}
	}
	return d.wc
}

// expired reports whether the read (or accept) deadline, or the write
// deadline, has passed.
func (fd *netFD) expired(read bool) bool {
	d := fd.dl.Load()
	if d == nil {
		return false
	}
	if read {
		return d.rd.expired.Load()
	}
	return d.wd.expired.Load()
}

// waitErr tells why a wait was woken: the netFD closed, or the read (or
// accept) or write deadline passed. It returns nil for a spurious wake
// (the deadline moved).
func (fd *netFD) waitErr(read bool) error {
	if fd.isClosing() {
		return net.ErrClosed
	}
	if fd.expired(read) {
		return os.ErrDeadlineExceeded
	}
	return nil
}

// wakeReader wakes a Read waiting on the receive stream; it then looks at
// waitErr. The wake is not lost if the Read is just about to wait: Stream.Wake
// leaves a token that its next Wait takes.
func (fd *netFD) wakeReader() {
	if s := fd.stream.Load(); s != nil {
		s.Wake()
	}
	if fd.lis != nil {
		fd.lis.kick()
	}
}
