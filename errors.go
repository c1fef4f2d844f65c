package rio

import (
	"errors"
	"fmt"
	"os"
	"syscall"

	"github.com/gorio/rio/internal/uring"
)

var (
	// ErrClosed is returned for operations started on, or blocked in, a Ring
	// that has been closed.
	ErrClosed = errors.New("rio: ring closed")

	// ErrNotSupported is matched (with errors.Is) by every error that reports
	// io_uring, an operation or a setup flag as unavailable: because the
	// kernel is too old, because io_uring is disabled by the
	// kernel.io_uring_disabled sysctl, or because a seccomp filter (such as
	// Docker's default profile) blocks it. The concrete error is a
	// *FeatureError that names the feature and the kernel that brought it.
	ErrNotSupported = errors.New("not supported")

	// errNotSubmitted is returned by Wait for an operation of a Batch that
	// was never submitted.
	errNotSubmitted = errors.New("rio: operation belongs to a Batch that was not submitted")
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

// setupError classifies a failed io_uring_setup. The kernel refuses with
// ENOSYS when io_uring is not built in (or a seccomp profile answers
// ENOSYS), and with EPERM when kernel.io_uring_disabled forbids it or a
// seccomp profile answers EPERM, as Docker's default one does.
func setupError(err error) error {
	var errno syscall.Errno
	if errors.As(err, &errno) && (errno == syscall.ENOSYS || errno == syscall.EPERM || errno == syscall.EACCES) {
		return &FeatureError{Feature: "io_uring", MinKernel: "5.1", Err: err}
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
var opCodes = func() map[string]uint8 {
	m := make(map[string]uint8, len(opTable))
	for code, info := range opTable {
		if info.name != "" {
			m[upper(info.name)] = uint8(code)
		}
	}
	return m
}()

func opName(code uint8) string {
	if int(code) < len(opTable) && opTable[code].name != "" {
		return opTable[code].name
	}
	return fmt.Sprintf("op%d", code)
}

// opFeatureError is the error for an opcode the kernel's probe does not list.
func opFeatureError(code uint8) error {
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
