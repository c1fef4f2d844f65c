package rionet

import (
	"context"
	"errors"
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

// deadline is the state of one direction's deadline (read or write, or a
// listener's accept). Blocked operations wait on the current wakeCtx, whose
// channel is closed when the deadline passes or the owner closes. Moving
// the deadline later or clearing it does not wake anybody; moving it into
// the past wakes them, and they return a timeout.
type deadline struct {
	mu      sync.Mutex
	when    time.Time
	timer   *time.Timer
	wc      atomic.Pointer[wakeCtx]
	fired   bool        // wc.ch is closed; guarded by mu
	expired atomic.Bool // the deadline has passed
	closed  atomic.Bool // the owner is closed
}

func (d *deadline) init() { d.wc.Store(newWakeCtx()) }

// set moves the deadline to t; the zero time clears it.
func (d *deadline) set(t time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed.Load() {
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

// rearmLocked makes the deadline not expired, with a fresh channel if the
// old one was closed.
func (d *deadline) rearmLocked() {
	d.expired.Store(false)
	if d.fired {
		d.fired = false
		d.wc.Store(newWakeCtx())
	}
}

func (d *deadline) fireLocked() {
	if !d.fired {
		d.fired = true
		close(d.wc.Load().ch)
	}
}

func (d *deadline) onTimer() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed.Load() || d.when.IsZero() || time.Now().Before(d.when) {
		return // moved or cleared after the timer was started
	}
	d.expired.Store(true)
	d.fireLocked()
}

// close wakes every waiter for good.
func (d *deadline) close() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed.Load() {
		return
	}
	d.closed.Store(true)
	if d.timer != nil {
		d.timer.Stop()
	}
	d.fireLocked()
}

// ctx returns the context to wait with. Callers check closed and expired
// after taking it, and wait again when woken without either being set.
func (d *deadline) ctx() *wakeCtx { return d.wc.Load() }
