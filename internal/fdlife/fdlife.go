// Package fdlife keeps a file descriptor open while operations use it:
// the lifetime counting shared by package file's File and package
// rionet's sockets, in the manner of the fdMutex of Go's internal/poll
// without its read and write locks.
//
// Every operation that uses the descriptor holds a reference, taken with
// Acquire (which fails once closing has begun) and dropped with Release.
// Closing begins once (BeginClose), and the descriptor is destroyed once,
// by whoever drops the last reference: at once if nothing uses it, or
// when the last operation in flight finishes. So the descriptor number is
// never closed under an operation that still uses it, and never closed
// twice.
package fdlife

import "sync/atomic"

// Life is the lifetime of one descriptor. The zero Life is open and used
// by nobody. It must not be copied after first use.
type Life struct {
	state   atomic.Uint64 // refs<<1 | closing
	destroy func()        // set by BeginClose, run by the last Release
	done    chan struct{} // made by BeginClose, closed after destroy
}

const closing = 1

// Acquire takes a reference for an operation about to use the
// descriptor, or reports false if closing has begun (the operation must
// then fail as on a closed descriptor). Every successful Acquire is paired
// with a Release.
func (l *Life) Acquire() bool {
	for {
		s := l.state.Load()
		if s&closing != 0 {
			return false
		}
		if l.state.CompareAndSwap(s, s+2) {
			return true
		}
	}
}

// Release drops a reference. The Release that drops the last one of a
// closing Life runs the destroy function given to BeginClose, then closes
// Done's channel.
func (l *Life) Release() {
	if l.state.Add(^uint64(1)) == closing { // subtracted 2: closing, none left
		if l.destroy != nil {
			l.destroy()
		}
		close(l.done)
	}
}

// Closing reports whether closing has begun.
func (l *Life) Closing() bool { return l.state.Load()&closing != 0 }

// BeginClose begins closing: from now on Acquire fails. It reports false,
// and does nothing, if closing had begun before. Otherwise the caller
// holds a reference, which lets it wake the operations blocked on the
// descriptor before it drops it with Release; destroy (which may be nil)
// runs in the Release that drops the last reference, in whichever
// goroutine that is.
func (l *Life) BeginClose(destroy func()) bool {
	for {
		s := l.state.Load()
		if s&closing != 0 {
			return false
		}
		if l.state.CompareAndSwap(s, (s+2)|closing) {
			break
		}
	}
	// Read at the earliest by the last Release, which the caller's own
	// Release (an atomic operation after these writes) precedes.
	l.destroy = destroy
	l.done = make(chan struct{})
	return true
}

// Done returns a channel that is closed once the descriptor has been
// destroyed. Only the caller of a BeginClose that returned true may call
// it, from then on.
func (l *Life) Done() <-chan struct{} { return l.done }

// Close is BeginClose, Release and a wait on Done: it closes when nothing
// uses the descriptor any more, and returns after destroy has. It reports
// false if closing had begun before (it then does not wait).
func (l *Life) Close(destroy func()) bool {
	if !l.BeginClose(destroy) {
		return false
	}
	l.Release()
	<-l.done
	return true
}

// CloseIdle begins closing without waiting: destroy runs now if nothing
// uses the descriptor, or else when the last operation using it
// finishes. It wakes nothing, so an operation blocked on the descriptor
// goes on until it ends by itself. It is what a cleanup for an
// unreachable owner calls. It reports false if closing had begun before.
func (l *Life) CloseIdle(destroy func()) bool {
	if !l.BeginClose(destroy) {
		return false
	}
	l.Release()
	return true
}

// Refs returns the number of references held now (the operations in
// progress, and a closer waking them), for tests and diagnostics.
func (l *Life) Refs() int { return int(l.state.Load() >> 1) }
