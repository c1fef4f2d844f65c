// Package file is file IO through io_uring that a Go program can use in
// place of *os.File.
//
// A *File behaves like an *os.File: it implements io.Reader, io.Writer,
// io.ReaderAt, io.WriterAt, io.Seeker, io.Closer, io.ReaderFrom and
// io.WriterTo, and its errors have the same shapes (*fs.PathError, a bare
// io.EOF at end of file, fs.ErrClosed after Close). Reads, writes, opens,
// stats, syncs and truncates go through an io_uring Ring of the rio
// package instead of blocking system calls, so a goroutine waiting for the
// disk never holds an OS thread, however many goroutines wait. (The
// exceptions: a buffered read first tries to copy the data from the page
// cache with preadv2(RWF_NOWAIT), which never waits for the disk and is
// cheaper than a ring round trip when the data is cached, and Stat of a
// path the kernel has cached reads it without the ring in the same way;
// File-to-File copies use copy_file_range, as os does; getdents64
// (ReadDir), fchmod and fchown, which io_uring lacks, are system calls;
// and Close closes the descriptor with close(2), so that it never waits
// for a slot of a full ring.)
//
// ReadAtAsync and WriteAtAsync start an operation and return its *Op at
// once, so that one goroutine can keep many operations in flight; a
// Collector returns them in the order they complete and a Batch starts many
// with one system call. An Op's Wait has the shape of ReadAt and WriteAt.
//
// The package-level functions (ReadFile, WriteFile, ReadDir, Stat, Lstat,
// Remove, RemoveAll, Rename, Mkdir, MkdirAll, Symlink, Link) and DirFS are
// os's, through the ring, with os's results and errors.
//
// # Rings
//
// Open, Create and OpenFile use a Ring shared by the whole process,
// DefaultRing, created on first use and never closed. An operation on a
// regular file or a directory holds a slot of its ring for a bounded time;
// a read or write of a pipe, FIFO, socket or terminal may hold one for
// ever (until data comes). So the operations of shared Files on such
// streams go to rings of their own, made with rio.WithQueueLimit(0): each
// goes to the first of them with a free slot, and when every one is full
// another is created, up to 64 (past that, the operation fails with an
// error matching rio.ErrRingFull rather than wait). However many reads of
// streams block, the operations on DefaultRing never wait behind them.
// OpenFileRing uses a Ring of the caller's for everything, and its
// operations wait in that Ring's queue when it is full (see
// rio.WithQueueLimit).
//
// # Fallback
//
// Where io_uring is unavailable (an old kernel, the kernel.io_uring_disabled
// sysctl, a seccomp profile that blocks it), Open, Create and OpenFile
// return Files that delegate to the os package, with the same behaviour and
// errors, except that the asynchronous methods fail. SetFallback(false)
// makes them fail instead, with an error matching rio.ErrNotSupported.
//
// # O_DIRECT
//
// A File opened with syscall.O_DIRECT checks the alignment of every buffer,
// offset and length before it submits the operation, and reports a
// misaligned one as an *AlignmentError (which matches syscall.EINVAL)
// inside the *fs.PathError, rather than leaving the kernel to answer with a
// bare EINVAL. Alignment reports what the file needs and AlignedBuffer
// allocates suitable buffers.
package file

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gorio/rio"
	"github.com/gorio/rio/internal/fdlife"
	"golang.org/x/sys/unix"
)

// File is an open file descriptor whose IO goes through an io_uring Ring.
//
// A File is safe for concurrent use. As with *os.File, Read, Write and Seek
// share the file position, and are serialised with each other; ReadAt and
// WriteAt do not use the position and run in parallel.
//
// The File owns its descriptor from Open to Close. The Ring it uses is not
// owned: a Ring passed to OpenFileRing must outlive the File (operations
// on a File whose Ring was closed fail with rio.ErrClosed, except reads
// served from the page cache (see Read); Close still releases the
// descriptor).
type File struct {
	name string
	osf  *os.File // non-nil: fallback mode, every method delegates to it

	ring   *rio.Ring // the caller's Ring, or the first shared ring
	pool   *ringPool // for a File on DefaultRing: where a stream's operations go
	fd     int
	append bool // opened with O_APPEND
	direct bool // opened with O_DIRECT
	align  Alignment

	// posMu serialises the operations that use or move the file position:
	// Read, Write, Seek, ReadFrom, WriteTo. It guards pos.
	posMu sync.Mutex
	// pos is the file position. The File keeps it, rather than the
	// kernel's file offset, because io_uring does not advance the latter
	// when a read or write at the current position completes short (seen
	// on Linux 6.18 for an O_DIRECT read reaching end of file and for a
	// write cut short by RLIMIT_FSIZE). Unused for streams.
	pos int64
	// stream: the descriptor cannot seek (a pipe, FIFO, socket or tty);
	// reads and writes use the kernel's notion of the current position.
	stream bool

	// The page-cache fast path of reads (see nowait.go).
	noNowait atomic.Bool  // never try it: O_DIRECT, a stream, or unsupported
	misses   atomic.Int64 // consecutive RWF_NOWAIT misses

	// cl is the lifetime of the descriptor: the operations in progress,
	// the asynchronous ones, Close. Nil for a zero File or a fallback.
	cl *closer

	dir *dirInfo                      // ReadDir's buffer (dir.go), guarded by posMu
	dls atomic.Pointer[fileDeadlines] // set by SetDeadline (osfile.go)
	// On a stream, Reads are serialised by rmu and Writes by wmu rather
	// than both by posMu, so that a blocked Read does not hold up a Write.
	rmu, wmu sync.Mutex
}

// ioLock returns the mutex that serialises Read (or Write, if write).
func (f *File) ioLock(write bool) *sync.Mutex {
	switch {
	case !f.stream:
		return &f.posMu
	case write:
		return &f.wmu
	}
	return &f.rmu
}

// cancelRetry is how often Close repeats its cancellation while operations
// are still in progress.
const cancelRetry = 10 * time.Millisecond

// Compile-time checks that File implements what it promises.
var (
	_ io.Reader          = (*File)(nil)
	_ io.Writer          = (*File)(nil)
	_ io.ReaderAt        = (*File)(nil)
	_ io.WriterAt        = (*File)(nil)
	_ io.Seeker          = (*File)(nil)
	_ io.Closer          = (*File)(nil)
	_ io.ReaderFrom      = (*File)(nil)
	_ io.WriterTo        = (*File)(nil)
	_ io.ReadWriteSeeker = (*File)(nil)
)

// ErrNoRing is returned, wrapped, by methods that need io_uring (the
// asynchronous ones) on a File that fell back to the os package.
var ErrNoRing = errors.New("file: no io_uring ring (the File fell back to the os package)")

// errWriteAtInAppendMode mirrors os: WriteAt is not allowed with O_APPEND.
var errWriteAtInAppendMode = errors.New("file: invalid use of WriteAt on file opened with O_APPEND")

var errNegativeOffset = errors.New("negative offset")

var fallback atomic.Bool

func init() { fallback.Store(true) }

// SetFallback says whether Open, Create and OpenFile fall back to the os
// package when io_uring is unavailable (the default), or fail with the
// error that made the shared Ring unavailable, which matches
// rio.ErrNotSupported. It affects Files opened after the call; it is safe
// to call at any time.
func SetFallback(enabled bool) { fallback.Store(enabled) }

var (
	defaultOnce sync.Once
	defaultRing *rio.Ring
	defaultErr  error
	streamRings ringPool
)

// DefaultRing returns the Ring that Open, Create and OpenFile use, creating
// it on first use. It belongs to the package and is never closed; callers
// may submit their own operations to it but must not close it. If io_uring
// is unavailable, the error matches rio.ErrNotSupported.
//
// The reads and writes of Files on pipes, FIFOs, sockets and terminals,
// which may wait for ever, each holding a slot of their ring, do not go
// there but to rings of their own (see the package documentation), so
// that they never make the operations on DefaultRing wait.
func DefaultRing() (*rio.Ring, error) {
	defaultOnce.Do(func() {
		r, err := newSharedRing()
		if err == nil {
			err = checkRing(r)
			if err != nil {
				r.Close()
				r = nil
			}
		}
		defaultRing, defaultErr = r, err
	})
	return defaultRing, defaultErr
}

// maxStreamRings bounds how many rings the stream pool grows to.
const maxStreamRings = 64

// ringPool is the package's rings for the operations of shared Files on
// streams. They refuse operations when full (rio.WithQueueLimit(0)), so
// that an operation goes to another one, rather than wait behind
// operations that may never complete; one is added when all are full.
type ringPool struct {
	rings atomic.Pointer[[]*rio.Ring] // grows, never shrinks
	mu    sync.Mutex                  // held to grow
}

// load returns the pool's rings (none before the first is needed).
func (p *ringPool) load() []*rio.Ring {
	if rs := p.rings.Load(); rs != nil {
		return *rs
	}
	return nil
}

// grow adds a ring to the pool, unless another goroutine did since the
// caller saw n rings, and returns the rings.
func (p *ringPool) grow(n int) ([]*rio.Ring, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	rings := p.load()
	if len(rings) > n {
		return rings, nil
	}
	if len(rings) >= maxStreamRings {
		return nil, fmt.Errorf("file: all %d rings for streams are full: %w", len(rings), rio.ErrRingFull)
	}
	r, err := newSharedRing(rio.WithQueueLimit(0))
	if err == nil {
		if err = checkRing(r); err != nil {
			r.Close()
		}
	}
	if err != nil {
		return nil, fmt.Errorf("file: adding a ring for streams: %w", err)
	}
	rings = append(rings[:len(rings):len(rings)], r)
	p.rings.Store(&rings)
	return rings, nil
}

// submit submits an operation, made by op, on the File's ring; for a
// shared File on a stream (pipe, FIFO, socket, terminal), on the first
// ring of the stream pool that has a free slot, adding one if none has:
// there an operation never waits for a slot. The error is that of a pool
// that cannot grow; the operation's own is Wait's.
func submit[T any](f *File, op func(*rio.Ring) *rio.Completion[T]) (*rio.Completion[T], error) {
	if f.pool == nil || !f.stream {
		return op(f.ring), nil
	}
	return submitPool(f.pool, f.ring, op)
}

// runDeadline is run, waiting with the File's read (or, with write, its
// write) deadline on a stream (see waitDeadline).
func runDeadline[T any](f *File, write bool, op func(*rio.Ring) *rio.Completion[T]) (T, error) {
	c, err := submit(f, op)
	if err != nil {
		var zero T
		return zero, err
	}
	return waitDeadline(f, c, write)
}

// run submits an operation as submit does and waits for its result.
func run[T any](f *File, op func(*rio.Ring) *rio.Completion[T]) (T, error) {
	c, err := submit(f, op)
	if err != nil {
		var zero T
		return zero, err
	}
	return c.Wait()
}

func submitPool[T any](p *ringPool, shared *rio.Ring, op func(*rio.Ring) *rio.Completion[T]) (*rio.Completion[T], error) {
	rings := p.load()
	for i := 0; ; i++ {
		if i == len(rings) {
			var err error
			if rings, err = p.grow(i); err != nil {
				if i == 0 && errors.Is(err, rio.ErrResourceLimit) {
					// Not even one ring for streams fits: the reduced
					// form is DefaultRing, where a blocked read holds
					// a slot, and operations past its capacity wait
					// in its queue (Close's cancellations have slots
					// of their own).
					why := fmt.Errorf("file: no ring for streams, their operations go to DefaultRing: %w", err)
					reduced.CompareAndSwap(nil, &why)
					return op(shared), nil
				}
				return nil, err
			}
		}
		c := op(rings[i])
		// A full ring of the pool fails the operation before it returns.
		if !c.Done() {
			return c, nil
		}
		if _, err := c.Wait(); err == nil || !errors.Is(err, rio.ErrRingFull) {
			return c, nil
		}
	}
}

// requiredOps are the operations a File cannot do without. The others
// (OPENAT, STATX, FSYNC, FTRUNCATE, ASYNC_CANCEL) fall back to
// system calls when the kernel lacks them.
var requiredOps = []string{"READ", "WRITE"}

func checkRing(r *rio.Ring) error {
	for _, op := range requiredOps {
		if err := r.Supported(op); err != nil {
			return err
		}
	}
	return nil
}

// Open opens the named file for reading, like os.Open, through the shared
// Ring.
func Open(name string) (*File, error) {
	return OpenFile(name, os.O_RDONLY, 0)
}

// Create creates or truncates the named file, like os.Create, through the
// shared Ring: mode 0666 before umask, opened for reading and writing.
func Create(name string) (*File, error) {
	return OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0666)
}

// OpenFile is os.OpenFile through the shared Ring: flag is a combination
// of os.O_* (and syscall.O_DIRECT) flags and perm the mode for a created
// file, before umask. O_CLOEXEC is always added. If io_uring is
// unavailable, it falls back to os.OpenFile unless SetFallback(false) was
// called. Errors are *fs.PathError with Op "open".
func OpenFile(name string, flag int, perm fs.FileMode) (*File, error) {
	return openWith(DefaultRing, name, flag, perm)
}

// openWith is OpenFile with the shared Ring obtained from ring.
func openWith(ring func() (*rio.Ring, error), name string, flag int, perm fs.FileMode) (*File, error) {
	r, err := ring()
	if err != nil {
		if !fallback.Load() {
			return nil, &fs.PathError{Op: "open", Path: name, Err: err}
		}
		osf, err := os.OpenFile(name, flag, perm)
		if err != nil {
			return nil, err
		}
		return &File{name: name, osf: osf, fd: -1}, nil
	}
	return OpenFileRing(r, name, flag, perm)
}

// OpenFileRing is OpenFile on a Ring of the caller's, which must stay open
// as long as the File is used. It never falls back to the os package: if
// the Ring lacks an operation a File needs, the error matches
// rio.ErrNotSupported.
func OpenFileRing(r *rio.Ring, name string, flag int, perm fs.FileMode) (*File, error) {
	if r == nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fmt.Errorf("nil *rio.Ring: %w", syscall.EINVAL)}
	}
	if err := checkRing(r); err != nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	if strings.IndexByte(name, 0) >= 0 {
		return nil, &fs.PathError{Op: "open", Path: name, Err: syscall.EINVAL}
	}
	var fd int
	var err error
	for {
		if r.Supported("OPENAT") == nil {
			fd, err = r.Openat(unix.AT_FDCWD, name, flag|unix.O_CLOEXEC, syscallMode(perm)).Wait()
		} else {
			fd, err = unix.Open(name, flag|unix.O_CLOEXEC, syscallMode(perm))
		}
		if !errors.Is(err, syscall.EINTR) {
			break
		}
	}
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: errnoOf(err)}
	}
	f := newFile(r, fd, name, flag)
	if f.direct {
		f.align, err = f.statAlignment()
		if err != nil {
			f.Close()
			return nil, &fs.PathError{Op: "open", Path: name, Err: err}
		}
	}
	return f, nil
}

// newFile makes the File of descriptor fd, open with flag, on r.
func newFile(r *rio.Ring, fd int, name string, flag int) *File {
	f := &File{
		name:   name,
		ring:   r,
		fd:     fd,
		append: flag&os.O_APPEND != 0,
		direct: flag&syscall.O_DIRECT != 0,
	}
	// Seekable? Also picks up the starting position (0 after open).
	var err error
	if f.pos, err = unix.Seek(fd, 0, io.SeekCurrent); err != nil {
		f.pos = 0
		f.stream = true
	}
	f.noNowait.Store(f.direct || f.stream)
	if f.stream && r == defaultRing {
		f.pool = &streamRings
	}
	f.cl = &closer{fd: fd, name: name, ring: r, pool: f.pool, stream: f.stream, asyncNext: 64}
	// A File dropped unclosed is closed when the garbage collector finds
	// it unreachable, as an os.File is; never under an operation in
	// flight (see closer).
	runtime.AddCleanup(f, (*closer).dropped, f.cl)
	return f
}

// syscallMode converts a fs.FileMode to open(2)'s mode bits, as os does.
func syscallMode(m fs.FileMode) uint32 {
	o := uint32(m.Perm())
	if m&fs.ModeSetuid != 0 {
		o |= syscall.S_ISUID
	}
	if m&fs.ModeSetgid != 0 {
		o |= syscall.S_ISGID
	}
	if m&fs.ModeSticky != 0 {
		o |= syscall.S_ISVTX
	}
	return o
}

// Name returns the name the file was opened with, as os.File.Name does.
func (f *File) Name() string { return f.name }

// Fd returns the file's descriptor. It stays owned by the File: it is valid
// until Close, after which the number may be reused by another file, or
// until the File is garbage collected, whose cleanup closes it (as with
// os.File.Fd: keep the File reachable, with runtime.KeepAlive if need
// be, while the number is in use). Unlike
// os.File.Fd, it does not change the descriptor's mode. The File keeps the
// position of Read, Write and Seek itself: the descriptor's own offset
// (lseek) follows Seek but not Read and Write. On a File that fell back to
// the os package, Fd is the *os.File's Fd.
func (f *File) Fd() uintptr {
	if f == nil || f.invalid() {
		return ^uintptr(0)
	}
	if f.osf != nil {
		return f.osf.Fd()
	}
	return uintptr(f.fd)
}

// Ring returns the Ring the File's IO goes through (for a File opened on
// the shared rings, the first of them, DefaultRing), or nil if it fell
// back to the os package. The File does not own it.
func (f *File) Ring() *rio.Ring { return f.ring }

// invalid reports whether f is a zero File, not made by this package's
// functions: its methods fail with EINVAL, as those of a nil *os.File do.
func (f *File) invalid() bool { return f.ring == nil && f.osf == nil }

// acquire registers an operation in progress; it fails once Close has
// begun, and on a zero File. Every successful acquire is paired with a
// release.
func (f *File) acquire() bool {
	return f.cl != nil && f.cl.life.Acquire()
}

func (f *File) release() { f.cl.life.Release() }

func (f *File) closing() bool { return f.cl != nil && f.cl.life.Closing() }

// Close closes the File. Operations started afterwards fail with
// fs.ErrClosed. Operations in progress on other goroutines, asynchronous
// ones included, run to completion on a regular file or block device, so
// no write is lost; a loop such as ReadAt's or Write's stops after its
// current operation, with fs.ErrClosed. On a pipe, FIFO, socket or tty,
// where an operation may wait forever, Close cancels them instead: they
// fail with fs.ErrClosed (asynchronous ones with ECANCELED). Either way,
// the descriptor is closed only after the last operation on it has been
// reaped, so the kernel never reads or writes a descriptor number reused
// by another file. Close waits for that.
//
// As with os.File, a second Close returns an error matching fs.ErrClosed.
func (f *File) Close() error {
	if f == nil {
		return fs.ErrInvalid
	}
	if f.osf != nil {
		return f.osf.Close()
	}
	if f.invalid() {
		return f.closedErr("close")
	}
	first := false
	f.cl.once.Do(func() {
		first = true
		f.cl.err = f.cl.close()
	})
	if !first {
		return &fs.PathError{Op: "close", Path: f.name, Err: fs.ErrClosed}
	}
	return f.cl.err
}

// closer is what closing a File's descriptor takes: the count of the
// operations in progress, the asynchronous operations started, and the
// descriptor and rings. It does not point back at the File, so that a
// cleanup can close a File that became unreachable: an operation in
// progress keeps its File reachable (a method's receiver, or an Op's), and
// an asynchronous one nobody waits for any more is in the closer's list,
// which the cleanup waits for before it closes the descriptor.
type closer struct {
	life   fdlife.Life
	fd     int
	name   string
	ring   *rio.Ring
	pool   *ringPool
	stream bool

	// Asynchronous operations started and possibly not yet reaped; Close
	// waits for each before it closes the descriptor.
	asyncMu   sync.Mutex
	async     []*rio.Completion[int]
	asyncNext int // prune the list when it grows to this length

	once sync.Once // Close's
	err  error
}

// dropped is the cleanup of a File that became unreachable unclosed: it
// closes the File as Close would, in a goroutine of its own, since it may
// wait for asynchronous operations.
func (cl *closer) dropped() {
	go cl.once.Do(func() { cl.err = cl.close() })
}

func (cl *closer) close() error {
	if !cl.life.BeginClose(nil) {
		return nil // cannot happen: close runs once
	}
	cl.life.Release()
	if cl.stream {
		// A read or write on a pipe, FIFO or socket may wait forever:
		// cancel, and keep cancelling until they are all done, since an
		// operation may be submitted just after a cancellation went
		// through.
		cl.cancelUntilDrained()
	} else {
		<-cl.life.Done()
	}
	// No synchronous operation remains and no new one starts. Wait for the
	// asynchronous ones.
	cl.asyncMu.Lock()
	pending := cl.async
	cl.async = nil
	cl.asyncMu.Unlock()
	if len(pending) > 0 && cl.stream {
		cl.cancelFd()
	}
	for _, c := range pending {
		c.Wait()
	}
	if err := cl.closeFd(); err != nil {
		return &fs.PathError{Op: "close", Path: cl.name, Err: err}
	}
	return nil
}

// cancelUntilDrained cancels operations on the descriptor until every
// synchronous one has finished.
func (cl *closer) cancelUntilDrained() {
	for {
		if !cl.cancelFd() {
			// No cancellation by descriptor (before Linux 5.19): the
			// operations run to completion.
			<-cl.life.Done()
			return
		}
		select {
		case <-cl.life.Done():
			return
		case <-time.After(cancelRetry):
		}
	}
}

// cancelFd cancels every operation in flight on the descriptor, on every
// ring the File uses; the cancellation takes a slot kept for it, so it
// never waits behind the operations it cancels. It reports false if the
// kernel cannot.
func (cl *closer) cancelFd() bool {
	if cl.ring.Supported("ASYNC_CANCEL") != nil {
		return false
	}
	ok := true
	cl.each(func(r *rio.Ring) {
		_, err := r.CancelFd(cl.fd).Wait()
		if err != nil && !errors.Is(err, syscall.ENOENT) {
			ok = false
		}
	})
	return ok
}

// each runs fn on every ring the File's operations may have gone to.
func (cl *closer) each(fn func(*rio.Ring)) {
	fn(cl.ring)
	if cl.pool != nil && cl.stream {
		for _, r := range cl.pool.load() {
			fn(r)
		}
	}
}

// closeFd closes the descriptor, with close(2) on the calling thread
// rather than through the ring: a Close must never wait for a slot of a
// ring that other Files' operations (blocked reads of pipes, say) may hold
// for ever, and closing a descriptor nothing else uses is quick.
func (cl *closer) closeFd() error {
	return errnoOf(unix.Close(cl.fd))
}

// wrapErr turns an error of the core, or of a system call, into the error
// os.File would return for op: nil and io.EOF unchanged, otherwise a
// *fs.PathError wrapping the errno, with fs.ErrClosed for an operation the
// File's Close cancelled.
func (f *File) wrapErr(op string, err error) error {
	if err == nil || err == io.EOF {
		return err
	}
	if errors.Is(err, rio.ErrResourceLimit) {
		// No ring for streams fits: say so, not just ENOMEM.
		return &fs.PathError{Op: op, Path: f.name, Err: err}
	}
	if errors.Is(err, syscall.ECANCELED) && f.closing() {
		err = fs.ErrClosed
	} else if f.stream && errors.Is(err, syscall.EAGAIN) && f.pastDeadline(op == "write") {
		err = os.ErrDeadlineExceeded // the wait for readiness timed out (osfile.go)
	}
	return &fs.PathError{Op: op, Path: f.name, Err: errnoOf(err)}
}

// errnoOf unwraps an *os.SyscallError to its errno, as os reports errors.
func errnoOf(err error) error {
	var se *os.SyscallError
	if errors.As(err, &se) {
		return se.Err
	}
	return err
}

func (f *File) closedErr(op string) error {
	if f.invalid() {
		return &fs.PathError{Op: op, Path: f.name, Err: syscall.EINVAL}
	}
	return &fs.PathError{Op: op, Path: f.name, Err: fs.ErrClosed}
}

// sharedRingSizes are the SQ sizes the shared rings try, largest (rio's
// default) first.
var sharedRingSizes = []uint32{256, 32, 4}

// reduced is the first resource limit that made a shared ring smaller.
var reduced atomic.Pointer[error]

// newSharedRing creates a shared ring with opts, smaller than the default
// if RLIMIT_MEMLOCK, against which the kernel counts the rings' memory,
// demands it.
func newSharedRing(opts ...rio.Option) (*rio.Ring, error) {
	var first error
	for _, n := range sharedRingSizes {
		r, err := rio.New(append(opts[:len(opts):len(opts)], rio.WithEntries(n))...)
		if err == nil && first != nil {
			why := fmt.Errorf("file: a shared ring of %d entries instead of %d: %w", n, sharedRingSizes[0], first)
			reduced.CompareAndSwap(nil, &why)
		}
		if err == nil || !errors.Is(err, rio.ErrResourceLimit) {
			return r, err
		}
		if first == nil {
			first = err
		}
	}
	return nil, first
}

// Reduced reports whether the shared rings (DefaultRing and the rings for
// streams) run in a reduced form, and why: nil if not (nor if the package
// falls back to os: DefaultRing's error says why). Where RLIMIT_MEMLOCK,
// against which the kernel counts the rings' memory, is too low for rings
// of the default size, they are smaller, and the error matches
// rio.ErrResourceLimit: operations past a ring's capacity wait in its
// queue, or, for streams, go to another ring; where not even a small ring
// for streams fits, the operations on pipes, FIFOs, sockets and terminals
// go to DefaultRing.
func Reduced() error {
	if p := reduced.Load(); p != nil {
		return *p
	}
	return nil
}
