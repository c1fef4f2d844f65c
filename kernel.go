package rio

import (
	"errors"
	"os"
	"sync/atomic"
	"syscall"
	"unsafe"

	"github.com/gorio/rio/internal/uring"
	"golang.org/x/sys/unix"
)

// kernel is what a Ring needs from an io_uring instance: the running
// kernel's, or a simulated one (package riotest).
type kernel = uring.Kernel

// shortEnterer is implemented by kernels with a cheaper io_uring_enter for
// calls that neither wait nor do much work inline.
type shortEnterer interface {
	EnterShort(toSubmit, minComplete, flags uint32) (int, syscall.Errno)
}

// verifier is implemented by kernels that can tell whether their fd number
// still names their io_uring instance.
type verifier interface{ Verify() bool }

// realKernel is an io_uring instance of the running kernel.
//
// Its fd number can be closed behind its back (a double close elsewhere in
// the program) and then reused by any open. Once it knows that, it never
// uses the number again: not for io_uring_enter or io_uring_register,
// which would reach another file, and not for close, which would close
// someone else's. It knows when the kernel answers EBADF (the number is
// free) or EOPNOTSUPP (it names a file that is not an io_uring), and when
// the number no longer names the inode it had at setup, which Register and
// Close check first and a ring whose enters make no progress asks (see
// Verify). The mappings hold the instance itself alive, so operations the
// kernel already has still complete into them.
type realKernel struct {
	fd   int
	p    uring.Params
	rg   *uring.Rings
	dev  uint64
	ino  uint64
	lost atomic.Bool // fd no longer names this instance
}

func newRealKernel(entries uint32, p *uring.Params) (kernel, error) {
	want := *p
	p.Flags |= uring.SetupSubmitAll
	fd, err := uring.Setup(entries, p)
	if errors.Is(err, syscall.EINVAL) {
		// IORING_SETUP_SUBMIT_ALL came with Linux 5.18; retry without.
		*p = want
		fd, err = uring.Setup(entries, p)
	}
	if err != nil {
		if want.Flags&(uring.SetupSQPoll|uring.SetupCoopTaskrun) != 0 && (errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EINVAL)) {
			if fd, perr := uring.Setup(1, &uring.Params{}); perr == nil {
				unix.Close(fd)
				if want.Flags&uring.SetupCoopTaskrun != 0 {
					return nil, &FeatureError{Feature: "IORING_SETUP_COOP_TASKRUN", MinKernel: "5.19", Err: err}
				}
				return nil, &FeatureError{Feature: "IORING_SETUP_SQPOLL", MinKernel: "5.11", Err: err}
			}
		}
		return nil, setupError(err)
	}
	k := &realKernel{fd: fd, p: *p}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err == nil {
		k.dev, k.ino = st.Dev, st.Ino
	}
	if k.p.Features&uring.FeatNoDrop == 0 {
		unix.Close(fd)
		return nil, &FeatureError{Feature: "IORING_FEAT_NODROP", MinKernel: "5.5"}
	}
	k.rg, err = uring.Map(fd, &k.p)
	if err != nil {
		unix.Close(fd)
		if lerr := limitError("mmap of the io_uring rings", err); lerr != nil {
			return nil, lerr
		}
		return nil, err
	}
	return k, nil
}

func (k *realKernel) Rings() *uring.Rings { return k.rg }

func (k *realKernel) Params() *uring.Params { return &k.p }

func (k *realKernel) Enter(toSubmit, minComplete, flags uint32) (int, syscall.Errno) {
	if k.lost.Load() {
		return 0, syscall.EBADF
	}
	n, errno := uring.Enter(k.fd, toSubmit, minComplete, flags)
	k.check(errno)
	return n, errno
}

// EnterShort implements shortEnterer.
func (k *realKernel) EnterShort(toSubmit, minComplete, flags uint32) (int, syscall.Errno) {
	if k.lost.Load() {
		return 0, syscall.EBADF
	}
	n, errno := uring.EnterShort(k.fd, toSubmit, minComplete, flags)
	if errno != 0 {
		k.check(errno)
	}
	return n, errno
}

// check marks the fd lost after an answer that says it no longer names
// this instance.
func (k *realKernel) check(errno syscall.Errno) {
	if errno == syscall.EBADF || errno == syscall.EOPNOTSUPP {
		k.lost.Store(true)
	}
}

// Verify reports whether the fd number still names this instance, and
// marks it lost if not. It costs an fstat.
func (k *realKernel) Verify() bool {
	if k.lost.Load() {
		return false
	}
	var st unix.Stat_t
	if err := unix.Fstat(k.fd, &st); err != nil || st.Dev != k.dev || st.Ino != k.ino {
		k.lost.Store(true)
		return false
	}
	return true
}

func (k *realKernel) Register(opcode uint32, arg unsafe.Pointer, nr uint32) (int, error) {
	if !k.Verify() {
		return -1, os.NewSyscallError("io_uring_register", syscall.EBADF)
	}
	n, err := uring.Register(k.fd, opcode, arg, nr)
	if errnoIs(err, syscall.EBADF) || errnoIs(err, syscall.EOPNOTSUPP) {
		k.lost.Store(true)
	}
	return n, err
}

func (k *realKernel) Close() error {
	k.rg.Unmap()
	if !k.Verify() {
		// Closed behind our back: the number is someone else's now, or
		// nobody's. Unmapping released the instance.
		return nil
	}
	if err := unix.Close(k.fd); err != nil {
		return os.NewSyscallError("close", err)
	}
	return nil
}
