package rio

import (
	"errors"
	"fmt"
	"os"
	"syscall"

	"github.com/gorio/rio/internal/uring"
	"golang.org/x/sys/unix"
)

var (
	// ErrClosed is returned for operations started on, or blocked in, a Ring
	// that has been closed.
	ErrClosed = errors.New("rio: ring closed")

	// ErrRingFull is matched by the error of an operation refused because
	// the ring's in-flight table was full and its queue at the limit set
	// with WithQueueLimit. The operation never reached the kernel.
	ErrRingFull = errors.New("rio: ring full")

	// ErrNotSupported is matched (with errors.Is) by every error that reports
	// io_uring, an operation or a setup flag as unavailable: because the
	// kernel is too old, because io_uring is disabled by the
	// kernel.io_uring_disabled sysctl, or because a seccomp filter (such as
	// Docker's default profile) blocks it. The concrete error is a
	// *FeatureError that names the feature and the kernel that brought it.
	ErrNotSupported = uring.ErrNotSupported

	// ErrResourceLimit is matched (with errors.Is) by every error that
	// reports a resource limit of the process as the reason io_uring, or
	// part of it, could not be set up: RLIMIT_MEMLOCK, against which the
	// kernel counts the memory it pins for rings, registered buffers and
	// provided-buffer rings (ENOMEM), or RLIMIT_NOFILE (EMFILE, ENFILE).
	// The concrete error is a *LimitError, which also wraps the errno.
	// Unlike ErrNotSupported, it may go away with smaller rings or fewer
	// buffers.
	ErrResourceLimit = uring.ErrResourceLimit

	// errBadRing is the error of every method of a nil or zero Ring, as
	// package os returns one matching fs.ErrInvalid for a nil *os.File.
	errBadRing = fmt.Errorf("rio: nil or zero Ring: %w", syscall.EINVAL)

	// errNotSubmitted is returned by Wait for an operation of a Batch that
	// was never submitted.
	errNotSubmitted = fmt.Errorf("rio: operation belongs to a Batch that was not submitted: %w", syscall.EINVAL)

	// errReleased is returned by Wait for a Completion handed back for
	// reuse (Completion.Release, Batch.Recycle) and not yet reused.
	errReleased = fmt.Errorf("rio: Completion used after it was released for reuse: %w", syscall.EINVAL)
)

// FeatureError reports that a kernel feature rio needs is missing or blocked.
// It matches ErrNotSupported, and unwraps to the underlying system call error
// when there is one.
type FeatureError struct {
	// Feature names what is missing: "io_uring", an operation such as
	// "IORING_OP_FTRUNCATE", or a setup flag such as "IORING_SETUP_SQPOLL".
	Feature string
	// MinKernel is the first Linux version with the feature, such as "6.9".
	MinKernel string
	// Err is the error the kernel returned, if the feature was refused
	// rather than found missing by a probe. It may be nil.
	Err error
}

// Error says what is missing, the kernel that brought it and, if set, the
// error the kernel returned.
func (e *FeatureError) Error() string {
	s := fmt.Sprintf("rio: %s not supported (requires Linux %s or later)", e.Feature, e.MinKernel)
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap returns ErrNotSupported and, if set, the underlying error.
func (e *FeatureError) Unwrap() []error {
	if e.Err == nil {
		return []error{ErrNotSupported}
	}
	return []error{ErrNotSupported, e.Err}
}

// LimitError reports that a resource limit kept io_uring, or part of it
// (a ring of the size asked for, a buffer ring), from being set up. It
// matches ErrResourceLimit and unwraps to the system call error.
type LimitError struct {
	// What needed the resource: "io_uring_setup", "eventfd", or a
	// registration such as "IORING_REGISTER_PBUF_RING".
	What string
	// Limit names the limit and its current value, such as
	// "RLIMIT_MEMLOCK is 64 KiB".
	Limit string
	// Err is the error the kernel returned (ENOMEM, EMFILE, ENFILE).
	Err error
}

// Error says that a resource limit was reached, which one, and the error
// the kernel returned.
func (e *LimitError) Error() string {
	return fmt.Sprintf("rio: %s: resource limit (%s): %v", e.What, e.Limit, e.Err)
}

// Unwrap returns ErrResourceLimit and the underlying error.
func (e *LimitError) Unwrap() []error { return []error{ErrResourceLimit, e.Err} }

// unavailable reports whether errno, from any io_uring system call, means
// that io_uring is not there for this process: ENOSYS when it is not built
// in (or a seccomp profile answers ENOSYS), EPERM when
// kernel.io_uring_disabled forbids it or a seccomp profile answers EPERM,
// as Docker's default one does, and EACCES.
func unavailable(errno syscall.Errno) bool {
	return errno == syscall.ENOSYS || errno == syscall.EPERM || errno == syscall.EACCES
}

// limitError returns a *LimitError for err if it reports a resource limit
// (ENOMEM: RLIMIT_MEMLOCK, or memory; EMFILE, ENFILE: descriptors), or nil.
func limitError(what string, err error) error {
	var errno syscall.Errno
	if !errors.As(err, &errno) {
		return nil
	}
	var rl unix.Rlimit
	switch errno {
	case syscall.ENOMEM:
		limit := "out of memory"
		if unix.Getrlimit(unix.RLIMIT_MEMLOCK, &rl) == nil && rl.Cur != unix.RLIM_INFINITY {
			limit = fmt.Sprintf("RLIMIT_MEMLOCK is %d KiB; the kernel counts the memory io_uring pins against it", rl.Cur>>10)
		}
		return &LimitError{What: what, Limit: limit, Err: err}
	case syscall.EMFILE:
		limit := "RLIMIT_NOFILE"
		if unix.Getrlimit(unix.RLIMIT_NOFILE, &rl) == nil {
			limit = fmt.Sprintf("RLIMIT_NOFILE is %d", rl.Cur)
		}
		return &LimitError{What: what, Limit: limit, Err: err}
	case syscall.ENFILE:
		return &LimitError{What: what, Limit: "the system's limit on open files", Err: err}
	}
	return nil
}

// setupError classifies a failed io_uring_setup: unavailable (a
// *FeatureError matching ErrNotSupported), a resource limit (a
// *LimitError), or else the *os.SyscallError itself.
func setupError(err error) error {
	var errno syscall.Errno
	if errors.As(err, &errno) && unavailable(errno) {
		return &FeatureError{Feature: "io_uring", MinKernel: "5.1", Err: err}
	}
	if lerr := limitError("io_uring_setup", err); lerr != nil {
		return lerr
	}
	return err
}

// registerError classifies a failed io_uring_register of feature (an
// IORING_REGISTER_* name, or "io_uring_register" for those every kernel
// has), which came with Linux minKernel: blocked (a seccomp profile that
// lets io_uring_setup through but not io_uring_register) gives a
// *FeatureError, a resource limit a *LimitError, anything else the
// *os.SyscallError itself.
func registerError(feature, minKernel string, err error) error {
	var errno syscall.Errno
	if errors.As(err, &errno) && unavailable(errno) {
		return &FeatureError{Feature: feature, MinKernel: minKernel, Err: err}
	}
	if lerr := limitError(feature, err); lerr != nil {
		return lerr
	}
	return err
}

// cqeError turns a negative CQE result into the error an operation returns:
// an *os.SyscallError naming the operation and wrapping the errno, so that
// errors.Is(err, syscall.ECANCELED) and friends work.
func cqeError(name string, res int32) error {
	return &os.SyscallError{Syscall: name, Err: syscall.Errno(-res)}
}

// opInfo names an opcode for errors and says which kernel brought it.
type opInfo struct {
	name      string // used in *os.SyscallError and FeatureError
	minKernel string
}

var opTable = [...]opInfo{
	uring.OpNop:            {"nop", "5.1"},
	uring.OpReadv:          {"readv", "5.1"},
	uring.OpWritev:         {"writev", "5.1"},
	uring.OpFsync:          {"fsync", "5.1"},
	uring.OpReadFixed:      {"read_fixed", "5.1"},
	uring.OpWriteFixed:     {"write_fixed", "5.1"},
	uring.OpPollAdd:        {"poll_add", "5.1"},
	uring.OpPollRemove:     {"poll_remove", "5.1"},
	uring.OpSyncFileRange:  {"sync_file_range", "5.2"},
	uring.OpSendmsg:        {"sendmsg", "5.3"},
	uring.OpRecvmsg:        {"recvmsg", "5.3"},
	uring.OpTimeout:        {"timeout", "5.4"},
	uring.OpTimeoutRemove:  {"timeout_remove", "5.5"},
	uring.OpAccept:         {"accept", "5.5"},
	uring.OpAsyncCancel:    {"async_cancel", "5.5"},
	uring.OpLinkTimeout:    {"link_timeout", "5.5"},
	uring.OpConnect:        {"connect", "5.5"},
	uring.OpFallocate:      {"fallocate", "5.6"},
	uring.OpOpenat:         {"openat", "5.6"},
	uring.OpClose:          {"close", "5.6"},
	uring.OpFilesUpdate:    {"files_update", "5.6"},
	uring.OpStatx:          {"statx", "5.6"},
	uring.OpRead:           {"read", "5.6"},
	uring.OpWrite:          {"write", "5.6"},
	uring.OpFadvise:        {"fadvise", "5.6"},
	uring.OpMadvise:        {"madvise", "5.6"},
	uring.OpSend:           {"send", "5.6"},
	uring.OpRecv:           {"recv", "5.6"},
	uring.OpOpenat2:        {"openat2", "5.6"},
	uring.OpEpollCtl:       {"epoll_ctl", "5.6"},
	uring.OpSplice:         {"splice", "5.7"},
	uring.OpProvideBuffers: {"provide_buffers", "5.7"},
	uring.OpRemoveBuffers:  {"remove_buffers", "5.7"},
	uring.OpTee:            {"tee", "5.8"},
	uring.OpShutdown:       {"shutdown", "5.11"},
	uring.OpRenameat:       {"renameat", "5.11"},
	uring.OpUnlinkat:       {"unlinkat", "5.11"},
	uring.OpMkdirat:        {"mkdirat", "5.15"},
	uring.OpSymlinkat:      {"symlinkat", "5.15"},
	uring.OpLinkat:         {"linkat", "5.15"},
	uring.OpMsgRing:        {"msg_ring", "5.18"},
	uring.OpFsetxattr:      {"fsetxattr", "5.19"},
	uring.OpSetxattr:       {"setxattr", "5.19"},
	uring.OpFgetxattr:      {"fgetxattr", "5.19"},
	uring.OpGetxattr:       {"getxattr", "5.19"},
	uring.OpSocket:         {"socket", "5.19"},
	uring.OpUringCmd:       {"uring_cmd", "5.19"},
	uring.OpSendZC:         {"send_zc", "6.0"},
	uring.OpSendmsgZC:      {"sendmsg_zc", "6.1"},
	uring.OpReadMultishot:  {"read_multishot", "6.7"},
	uring.OpWaitid:         {"waitid", "6.7"},
	uring.OpFutexWait:      {"futex_wait", "6.7"},
	uring.OpFutexWake:      {"futex_wake", "6.7"},
	uring.OpFutexWaitv:     {"futex_waitv", "6.7"},
	uring.OpFixedFdInstall: {"fixed_fd_install", "6.8"},
	uring.OpFtruncate:      {"ftruncate", "6.9"},
	uring.OpBind:           {"bind", "6.11"},
	uring.OpListen:         {"listen", "6.11"},
}

// opCodes maps the kernel's names of the operations ("READ") to their
// codes, for Supported, which file/ calls on every open and close.
var opCodes = func() map[string]uring.Op {
	m := make(map[string]uring.Op, len(opTable))
	for code, info := range opTable {
		if info.name != "" {
			m[upper(info.name)] = uring.Op(code)
		}
	}
	return m
}()

func opName(code uring.Op) string {
	if int(code) < len(opTable) && opTable[code].name != "" {
		return opTable[code].name
	}
	return fmt.Sprintf("op%d", code)
}

// opFeatureError is the error for an opcode the kernel's probe does not list.
func opFeatureError(code uring.Op) error {
	min := "?"
	if int(code) < len(opTable) {
		min = opTable[code].minKernel
	}
	return &FeatureError{Feature: "IORING_OP_" + upper(opName(code)), MinKernel: min}
}

func upper(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'a' <= c && c <= 'z' {
			b[i] = c - 'a' + 'A'
		}
	}
	return string(b)
}
