package file

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"iter"
	"sync"
	"syscall"

	"github.com/gorio/rio"
	"golang.org/x/sys/unix"
)

// Op is an asynchronous read or write on a File, started by ReadAtAsync,
// WriteAtAsync or Batch.Submit. Its buffer belongs to the kernel from the
// start until Wait (or a WaitContext that did not give up) has returned;
// the caller must not touch it before.
//
// Wait has the shape of ReadAt and WriteAt: the count of bytes
// transferred, which is short only with an error; a bare io.EOF when a read
// reaches the end of the file; otherwise an *fs.PathError with the File's
// name. When the kernel completes the operation short, or with EINTR,
// Wait transfers the rest, as ReadAt and WriteAt do, with more system calls;
// so Done, a Collector and Wait may see the operation finished before Wait
// has finished it.
//
// An Op may be waited on any number of times, from any number of
// goroutines; every call returns the same result.
type Op struct {
	f     *File
	c     *rio.Completion[int] // the first operation; nil until submitted
	b     []byte
	off   int64
	write bool
	// err0 is set if the Op failed before it reached the kernel (its File
	// was closed before Batch.Submit); nop, completed, then stands for it
	// in a Collector.
	err0 error
	nop  *rio.Completion[struct{}]

	once sync.Once
	n    int
	err  error
}

var errNilOp = fmt.Errorf("file: nil Op added to a Collector: %w", syscall.EINVAL)

// errNotSubmitted is the error of an Op of a Batch not yet submitted.
var errNotSubmitted = errors.New("file: operation of a Batch that was not submitted")

// ReadAtAsync starts a read of len(b) bytes at offset off and returns its
// Op at once; Wait on the Op returns what ReadAt would have. b belongs to
// the kernel until Wait has returned. The file position is not used. On a
// pipe or FIFO, where the kernel ignores the offset, the read is one read
// at the current position, which may be short, as Read is.
//
// An operation that cannot start (the File is closed, off is negative,
// O_DIRECT alignment is wrong, the File fell back to the os package) is
// reported by the error, an *fs.PathError, and the Op is nil.
//
// Close waits for the operations started this way (on a pipe, FIFO or
// socket it cancels them first; they then fail with fs.ErrClosed).
func (f *File) ReadAtAsync(b []byte, off int64) (*Op, error) {
	return f.startAsync(false, b, off)
}

// WriteAtAsync starts a write of b at offset off and returns its Op at
// once; Wait on the Op returns what WriteAt would have. b belongs to the
// kernel until Wait has returned. Otherwise it is like ReadAtAsync; it
// fails on a file opened with O_APPEND, as WriteAt does.
func (f *File) WriteAtAsync(b []byte, off int64) (*Op, error) {
	return f.startAsync(true, b, off)
}

// newOp checks that an asynchronous operation can start, and returns it
// unsubmitted.
func (f *File) newOp(write bool, b []byte, off int64) (*Op, error) {
	op, atOp := "read", "readat"
	if write {
		op, atOp = "write", "writeat"
	}
	if f == nil {
		return nil, fs.ErrInvalid
	}
	if f.osf != nil {
		return nil, &fs.PathError{Op: op, Path: f.name, Err: ErrNoRing}
	}
	if write && f.append {
		return nil, errWriteAtInAppendMode
	}
	if off < 0 {
		return nil, &fs.PathError{Op: atOp, Path: f.name, Err: errNegativeOffset}
	}
	if f.closing() {
		return nil, f.closedErr(op)
	}
	if f.direct {
		if err := f.checkDirect(b, off, true, write); err != nil {
			return nil, &fs.PathError{Op: op, Path: f.name, Err: err}
		}
	}
	return &Op{f: f, b: b, off: off, write: write}, nil
}

func (f *File) startAsync(write bool, b []byte, off int64) (*Op, error) {
	o, err := f.newOp(write, b, off)
	if err != nil {
		return nil, err
	}
	if !f.acquire() {
		return nil, f.closedErr(o.opName())
	}
	defer f.release()
	c, err := submit(f, func(r *rio.Ring) *rio.Completion[int] {
		if write {
			return r.WriteAt(f.fd, b, off)
		}
		return r.ReadAt(f.fd, b, off)
	})
	if err != nil {
		return nil, f.wrapErr(o.opName(), err)
	}
	o.c = c
	f.track(o.c)
	return o, nil
}

// track remembers an asynchronous operation for Close. Called between
// acquire and release, so Close cannot miss it.
func (f *File) track(c *rio.Completion[int]) {
	cl := f.cl
	cl.asyncMu.Lock()
	if len(cl.async) >= cl.asyncNext {
		keep := cl.async[:0]
		for _, p := range cl.async {
			if !p.Done() {
				keep = append(keep, p)
			}
		}
		clear(cl.async[len(keep):])
		cl.async = keep
		cl.asyncNext = max(64, 2*len(keep))
	}
	cl.async = append(cl.async, c)
	cl.asyncMu.Unlock()
}

func (o *Op) opName() string {
	if o.write {
		return "write"
	}
	return "read"
}

// Wait blocks until the operation is complete and returns its result, as
// described for Op.
func (o *Op) Wait() (int, error) { return o.wait(nil) }

// WaitContext is Wait, with cancellation: if ctx is done first, it asks the
// kernel to cancel the operation and returns ctx.Err() at once. The buffer
// then stays the kernel's until a later Wait returns, which reports what
// the operation did (it may have completed before the cancellation reached
// it; a cancelled one fails with ECANCELED).
func (o *Op) WaitContext(ctx context.Context) (int, error) { return o.wait(ctx) }

func (o *Op) wait(ctx context.Context) (int, error) {
	if o.err0 != nil {
		return 0, o.err0
	}
	if o.c == nil {
		return 0, &fs.PathError{Op: o.opName(), Path: o.f.name, Err: errNotSubmitted}
	}
	if ctx != nil {
		// The core returns ctx.Err() itself when it gives up (an
		// operation's own errors are *os.SyscallErrors), even if the
		// cancelled operation completes just after.
		if _, err := o.c.WaitContext(ctx); err != nil && err == ctx.Err() {
			return 0, err
		}
	}
	o.once.Do(o.finish)
	return o.n, o.err
}

// finish turns the first operation's result into ReadAt's or WriteAt's
// (Read's or Write's on a stream), transferring the rest if it came back
// short or interrupted.
func (o *Op) finish() {
	f := o.f
	m, err := o.c.Wait()
	if err != nil {
		events := uint32(unix.POLLIN)
		if o.write {
			events = unix.POLLOUT
		}
		if !f.again(err, events) {
			o.err = f.wrapErr(o.opName(), err)
			return
		}
		m = 0 // EINTR or EAGAIN: do it all again
	} else if m == len(o.b) {
		o.n = m
		return
	}
	rest := o.b[m:]
	var k int
	switch {
	case f.stream && o.write:
		k, err = f.Write(rest)
	case f.stream && err == nil:
		// A read at the current position may be short, as Read's.
		if m == 0 {
			o.err = io.EOF
		}
		o.n = m
		return
	case f.stream:
		k, err = f.Read(rest)
	case o.write:
		k, err = f.WriteAt(rest, o.off+int64(m))
	case m == 0 && err == nil:
		k, err = 0, io.EOF
	case f.direct && m > 0 && f.checkDirect(rest, o.off+int64(m), true, false) != nil:
		// O_DIRECT stopped at an unaligned end of file.
		k, err = 0, io.EOF
	default:
		k, err = f.ReadAt(rest, o.off+int64(m))
	}
	o.n, o.err = m+k, err
}

// Done reports, without blocking, whether the kernel has completed the
// operation (Wait may still have the rest of a short transfer to do).
func (o *Op) Done() bool {
	if o.err0 != nil {
		return true
	}
	return o.c != nil && o.c.Done()
}

// Cancel asks the kernel to cancel the operation if it is still in flight,
// without waiting. Wait then reports what it did, usually ECANCELED.
func (o *Op) Cancel() {
	if o.c != nil {
		o.c.Cancel()
	}
}

// Collector hands back asynchronous operations (Ops) in the order in which
// they complete, each under a key of the caller's choosing: the Op itself,
// an index into the caller's buffers, a struct. It is rio.Collector for
// Ops: see there for the details. The zero Collector is ready to use; it is
// safe for concurrent use and must not be copied after first use.
type Collector[K any] struct {
	q rio.Collector[K]
}

// Add registers op, which key will stand for. An Op can be in one Collector
// only, once. An Op of a Batch must be added after Batch.Submit; Add fails
// for one not yet submitted. An Op already complete is returned at once by
// Next.
func (q *Collector[K]) Add(op *Op, key K) error {
	switch {
	case op == nil:
		return errNilOp
	case op.nop != nil:
		return q.q.Add(op.nop, key)
	case op.c == nil:
		return &fs.PathError{Op: op.opName(), Path: op.f.name, Err: errNotSubmitted}
	}
	return q.q.Add(op.c, key)
}

// Len returns the number of Ops added and not yet returned.
func (q *Collector[K]) Len() int { return q.q.Len() }

// Next returns the key of the next Op to complete, blocking until one does,
// or false if none is pending or ready.
func (q *Collector[K]) Next() (K, bool) { return q.q.Next() }

// NextContext is Next, giving up with ctx.Err() when ctx is done. It
// cancels no Op.
func (q *Collector[K]) NextContext(ctx context.Context) (K, bool, error) { return q.q.NextContext(ctx) }

// TryNext returns the key of an Op that has completed, or false at once if
// none has.
func (q *Collector[K]) TryNext() (K, bool) { return q.q.TryNext() }

// All returns an iterator over the keys of the Ops as they complete, until
// none is pending or ready.
func (q *Collector[K]) All() iter.Seq[K] { return q.q.All() }
