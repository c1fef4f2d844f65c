package file

import (
	"errors"
	"io/fs"
	"os"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"github.com/gorio/rio"
	"golang.org/x/sys/unix"
)

// The rest of os.File's methods: WriteString, Chmod, Chown, SyscallConn
// and the deadlines.

var _ syscall.Conn = (*File)(nil)

// WriteString is Write of the bytes of s, as os.File.WriteString.
func (f *File) WriteString(s string) (int, error) {
	return f.Write(unsafe.Slice(unsafe.StringData(s), len(s)))
}

// Chmod changes the mode of the file to mode, as os.File.Chmod does, with
// fchmod(2): io_uring has no operation for it. Errors are *fs.PathError
// with Op "chmod".
func (f *File) Chmod(mode fs.FileMode) error {
	if f == nil {
		return os.ErrInvalid
	}
	if f.osf != nil {
		return f.osf.Chmod(mode)
	}
	if !f.acquire() {
		return f.closedErr("chmod")
	}
	defer f.release()
	return f.wrapErr("chmod", ignoringEINTR(func() error { return unix.Fchmod(f.fd, syscallMode(mode)) }))
}

// Chown changes the numeric uid and gid of the file, as os.File.Chown
// does, with fchown(2); -1 leaves one unchanged. Errors are *fs.PathError
// with Op "chown".
func (f *File) Chown(uid, gid int) error {
	if f == nil {
		return os.ErrInvalid
	}
	if f.osf != nil {
		return f.osf.Chown(uid, gid)
	}
	if !f.acquire() {
		return f.closedErr("chown")
	}
	defer f.release()
	return f.wrapErr("chown", ignoringEINTR(func() error { return unix.Fchown(f.fd, uid, gid) }))
}

// SetDeadline sets the read and write deadlines, as os.File.SetDeadline
// does. Only pipes, FIFOs, sockets and terminals (files that cannot seek)
// have deadlines; for others it returns os.ErrNoDeadline. A deadline is an
// absolute time after which Read, Write and the waits of SyscallConn fail
// with an error wrapping os.ErrDeadlineExceeded instead of blocking; it
// applies to operations already blocked, whose ring operation it cancels,
// as well as to later ones. A zero t means no deadline.
func (f *File) SetDeadline(t time.Time) error {
	return f.setDeadline(t, true, true)
}

// SetReadDeadline sets the deadline of Read (and of SyscallConn's Read),
// as SetDeadline describes.
func (f *File) SetReadDeadline(t time.Time) error {
	return f.setDeadline(t, true, false)
}

// SetWriteDeadline sets the deadline of Write (and of SyscallConn's
// Write), as SetDeadline describes. A Write that times out may have
// written some of its bytes, which its count reports.
func (f *File) SetWriteDeadline(t time.Time) error {
	return f.setDeadline(t, false, true)
}

func (f *File) setDeadline(t time.Time, read, write bool) error {
	if f == nil {
		return os.ErrInvalid
	}
	if f.osf != nil {
		switch {
		case read && write:
			return f.osf.SetDeadline(t)
		case read:
			return f.osf.SetReadDeadline(t)
		}
		return f.osf.SetWriteDeadline(t)
	}
	if !f.acquire() {
		return f.closingErr()
	}
	defer f.release()
	if !f.stream {
		return os.ErrNoDeadline
	}
	d := f.deadlines()
	if read {
		d.r.set(t)
	}
	if write {
		d.w.set(t)
	}
	return nil
}

// fileDeadlines are a File's deadlines, made on first use.
type fileDeadlines struct{ r, w deadline }

func (f *File) deadlines() *fileDeadlines {
	if d := f.dls.Load(); d != nil {
		return d
	}
	f.dls.CompareAndSwap(nil, new(fileDeadlines))
	return f.dls.Load()
}

// deadline is one deadline: ch is closed when it passes, and replaced when
// a later one is set after that. Operations wait on the ch they find, so
// that moving a deadline that has not passed yet moves theirs too.
type deadline struct {
	mu    sync.Mutex
	ch    chan struct{}
	timer *time.Timer
	gen   uint64 // counts sets, so that a stale timer does nothing
}

func (d *deadline) set(t time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.gen++
	if d.timer != nil {
		d.timer.Stop()
		d.timer = nil
	}
	if d.ch == nil || isClosed(d.ch) {
		d.ch = make(chan struct{})
	}
	if t.IsZero() {
		return
	}
	dur := time.Until(t)
	if dur <= 0 {
		close(d.ch)
		return
	}
	gen, ch := d.gen, d.ch
	d.timer = time.AfterFunc(dur, func() {
		d.mu.Lock()
		if d.gen == gen {
			close(ch)
			d.timer = nil
		}
		d.mu.Unlock()
	})
}

func isClosed(ch chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// done returns the channel that is closed when the deadline passes.
func (d *deadline) done() chan struct{} {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.ch == nil {
		d.ch = make(chan struct{})
	}
	return d.ch
}

// deadlineOf returns the channel of the stream's read or write deadline.
// Every operation on a stream waits on it, deadline or not, since one may
// be set while it waits.
func (f *File) deadlineOf(write bool) chan struct{} {
	d := f.deadlines()
	if write {
		return d.w.done()
	}
	return d.r.done()
}

// dlContext is a context.Context that is done when a deadline passes.
type dlContext struct{ ch chan struct{} }

func (c dlContext) Deadline() (time.Time, bool) { return time.Time{}, false }
func (c dlContext) Done() <-chan struct{}       { return c.ch }
func (c dlContext) Value(any) any               { return nil }
func (c dlContext) Err() error {
	if isClosed(c.ch) {
		return os.ErrDeadlineExceeded
	}
	return nil
}

// waitDeadline waits for c, an operation on the stream, until the read or
// write deadline. If the deadline passes first, it cancels c, waits until
// the kernel is done with it, and returns os.ErrDeadlineExceeded, unless
// the operation completed meanwhile (data read is then returned, not
// lost).
func waitDeadline[T any](f *File, c *rio.Completion[T], write bool) (T, error) {
	if !f.stream {
		return c.Wait()
	}
	v, err := c.WaitContext(dlContext{f.deadlineOf(write)})
	if err != os.ErrDeadlineExceeded {
		return v, err
	}
	v, err = c.Wait() // cancelled: the buffer is the caller's once this returns
	if err != nil && errors.Is(err, syscall.ECANCELED) {
		err = os.ErrDeadlineExceeded
	}
	return v, err
}

// pastDeadline reports whether the read or write deadline has passed,
// which fails an operation before it starts, as in os.
func (f *File) pastDeadline(write bool) bool {
	d := f.dls.Load()
	if d == nil {
		return false
	}
	dl := &d.r
	if write {
		dl = &d.w
	}
	dl.mu.Lock()
	defer dl.mu.Unlock()
	return dl.ch != nil && isClosed(dl.ch)
}

// SyscallConn returns a raw connection to the file's descriptor, as
// os.File.SyscallConn does: Control runs a function with the descriptor,
// kept open meanwhile; Read and Write run theirs until it returns true,
// waiting in between (through the ring, with the deadlines) until the
// descriptor is readable or writable. Only files without positions (pipes,
// FIFOs, sockets, terminals) can wait; for others, Read and Write fail once
// their function returns false, as os's do.
func (f *File) SyscallConn() (syscall.RawConn, error) {
	if f == nil {
		return nil, os.ErrInvalid
	}
	if f.osf != nil {
		return f.osf.SyscallConn()
	}
	return rawConn{f}, nil
}

type rawConn struct{ f *File }

// errUnsupportedWait is os's error for waiting on a file the poller does
// not take, such as a regular file.
var errUnsupportedWait = errors.New("waiting for unsupported file type")

func (c rawConn) Control(fn func(fd uintptr)) error {
	if !c.f.acquire() {
		return c.f.closingErr()
	}
	defer c.f.release()
	fn(uintptr(c.f.fd))
	return nil
}

func (c rawConn) Read(fn func(fd uintptr) bool) error { return c.wait(fn, false) }

func (c rawConn) Write(fn func(fd uintptr) bool) error { return c.wait(fn, true) }

func (c rawConn) wait(fn func(fd uintptr) bool, write bool) error {
	f := c.f
	if !f.acquire() {
		return f.closingErr()
	}
	defer f.release()
	events := uint32(unix.POLLIN)
	if write {
		events = unix.POLLOUT
	}
	for {
		if f.pastDeadline(write) {
			return os.ErrDeadlineExceeded
		}
		if fn(uintptr(f.fd)) {
			return nil
		}
		if !f.stream {
			return errUnsupportedWait
		}
		_, err := runDeadline(f, write, func(r *rio.Ring) *rio.Completion[uint32] { return r.Poll(f.fd, events) })
		switch {
		case err == nil || errors.Is(err, syscall.EINTR):
		case err == os.ErrDeadlineExceeded:
			return err
		case f.closing():
			return errFileClosing
		default:
			return err
		}
	}
}
