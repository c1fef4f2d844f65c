package sim

import (
	"syscall"
	"time"
	"unsafe"

	"github.com/gorio/rio/internal/uring"
	"golang.org/x/sys/unix"
)

// This file executes operations. Each executor validates the SQE as the
// kernel's prep function does (fields the operation does not use must be
// zero), then performs the operation with the corresponding system call on
// the caller's descriptor and memory. An executor returns block to say that
// the operation waits for its descriptor (r.pollFd, r.pollEv) to become
// ready; the worker then retries it.

type execFunc func(k *Kernel, r *req) (res int32, flags uint32, block bool)

// SQE fields, for the per-operation lists of fields that may be set.
const (
	fIOPrio = 1 << iota
	fOff
	fAddr
	fLen
	fOpFlags
	fBufIndex
	fFileIndex
	fAddr3
)

type opSpec struct {
	exec      execFunc
	fields    int  // fields the operation may set, besides fd and user_data
	needsFile bool // the fd field is a file, which IOSQE_FIXED_FILE may index
	bufSelect bool // IOSQE_BUFFER_SELECT is allowed
}

var execTable [256]execFunc
var specs [256]opSpec

func init() {
	rw := fIOPrio | fOff | fAddr | fLen | fOpFlags | fBufIndex
	paths := fAddr | fLen | fOpFlags | fOff | fFileIndex
	specs = [256]opSpec{
		uring.OpNop:           {exec: execNop},
		uring.OpRead:          {exec: execRW, fields: rw, needsFile: true, bufSelect: true},
		uring.OpWrite:         {exec: execRW, fields: rw, needsFile: true},
		uring.OpReadv:         {exec: execRW, fields: rw, needsFile: true},
		uring.OpWritev:        {exec: execRW, fields: rw, needsFile: true},
		uring.OpReadFixed:     {exec: execRW, fields: rw, needsFile: true},
		uring.OpWriteFixed:    {exec: execRW, fields: rw, needsFile: true},
		uring.OpFsync:         {exec: execFsync, fields: fOff | fLen | fOpFlags, needsFile: true},
		uring.OpSyncFileRange: {exec: execSyncFileRange, fields: fOff | fLen | fOpFlags, needsFile: true},
		uring.OpFallocate:     {exec: execFallocate, fields: fOff | fAddr | fLen, needsFile: true},
		uring.OpFtruncate:     {exec: execFtruncate, fields: fOff, needsFile: true},
		uring.OpOpenat:        {exec: execOpenat, fields: paths &^ fOff},
		uring.OpClose:         {exec: execClose, fields: fFileIndex},
		uring.OpStatx:         {exec: execStatx, fields: paths &^ fFileIndex},
		uring.OpRenameat:      {exec: execRenameat, fields: paths &^ fFileIndex},
		uring.OpUnlinkat:      {exec: execUnlinkat, fields: fAddr | fOpFlags},
		uring.OpMkdirat:       {exec: execMkdirat, fields: fAddr | fLen},
		uring.OpTimeout:       {exec: execInvalid, fields: fAddr | fLen | fOff | fOpFlags},
		uring.OpLinkTimeout:   {exec: execInvalid, fields: fAddr | fLen | fOpFlags},
		uring.OpPollAdd:       {exec: execPoll, fields: fOpFlags | fLen, needsFile: true},
		uring.OpAsyncCancel:   {exec: execCancel, fields: fAddr | fOpFlags},
	}
	netSpecs()
	for i := range specs {
		execTable[i] = specs[i].exec
	}
}

func execInvalid(*Kernel, *req) (int32, uint32, bool) { return errno(syscall.EINVAL), 0, false }

func errno(e syscall.Errno) int32 { return -int32(e) }

func errRes(err error) int32 {
	if e, ok := err.(syscall.Errno); ok {
		return -int32(e)
	}
	return errno(syscall.EIO)
}

// exec validates r's SQE and runs it.
func (k *Kernel) exec(r *req) (int32, uint32, bool) {
	s := &r.sqe
	op := s.Opcode
	if !k.probe[op] {
		return errno(syscall.EINVAL), 0, false
	}
	sp := &specs[op]
	const known = uring.SQEFixedFile | uring.SQEIODrain | uring.SQEIOLink | uring.SQEIOHardlink |
		uring.SQEAsync | uring.SQEBufferSelect | uring.SQECQESkipSuccess
	if s.Flags&^known != 0 || (s.Flags&uring.SQEBufferSelect != 0 && !sp.bufSelect) {
		return errno(syscall.EINVAL), 0, false
	}
	if s.Personality != 0 {
		return errno(syscall.EINVAL), 0, false
	}
	set := 0
	for _, f := range []struct {
		bit int
		nz  bool
	}{
		{fIOPrio, s.IOPrio != 0}, {fOff, s.Off != 0}, {fAddr, s.Addr != 0}, {fLen, s.Len != 0},
		{fOpFlags, s.OpFlags != 0}, {fBufIndex, s.BufIndex != 0}, {fFileIndex, s.FileIndex != 0},
		{fAddr3, s.Addr3 != 0},
	} {
		if f.nz {
			set |= f.bit
		}
	}
	if set&^sp.fields != 0 {
		return errno(syscall.EINVAL), 0, false
	}
	if s.Flags&uring.SQEFixedFile != 0 && !sp.needsFile {
		return errno(syscall.EBADF), 0, false
	}
	if k.cfg.Override != nil {
		if res, ok := k.cfg.Override(*s); ok {
			return res, 0, false
		}
	}
	return sp.exec(k, r)
}

// file returns the descriptor r operates on, resolving a registered file.
func (k *Kernel) file(r *req) (int, syscall.Errno) {
	fd := int(r.sqe.Fd)
	if r.sqe.Flags&uring.SQEFixedFile != 0 {
		if fd < 0 || fd >= len(k.files) || k.files[fd] < 0 {
			return -1, syscall.EBADF
		}
		return k.files[fd], 0
	}
	if fd < 0 {
		return -1, syscall.EBADF
	}
	return fd, 0
}

// stream reports whether fd is a pipe, socket or character device, whose
// reads and writes wait for readiness rather than run to completion.
func stream(fd int) (bool, syscall.Errno) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return false, err.(syscall.Errno)
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFIFO, unix.S_IFSOCK, unix.S_IFCHR:
		return true, 0
	}
	return false, 0
}

func ready(fd int, ev int16) bool {
	fds := []unix.PollFd{{Fd: int32(fd), Events: ev}}
	n, _ := unix.Poll(fds, 0)
	return n > 0
}

func (r *req) block(fd int, ev int16) (int32, uint32, bool) {
	r.pollFd, r.pollEv = int32(fd), ev
	return 0, 0, true
}

// shorten applies an injected short transfer to n bytes.
func (k *Kernel) shorten(r *req, n int) int {
	if r.short <= 0 || n <= 1 {
		return n
	}
	m := 1 + int(r.short*float64(n-1))
	if m < n {
		k.stats.ShortIO++
	}
	return m
}

func execNop(k *Kernel, r *req) (int32, uint32, bool) {
	if r.sqe.OpFlags != 0 {
		return errno(syscall.EINVAL), 0, false
	}
	return 0, 0, false
}

// execRW runs read, write, their vectored and their fixed-buffer forms.
func execRW(k *Kernel, r *req) (int32, uint32, bool) {
	s := &r.sqe
	write := s.Opcode == uring.OpWrite || s.Opcode == uring.OpWritev || s.Opcode == uring.OpWriteFixed
	fd, e := k.file(r)
	if e != 0 {
		return errno(e), 0, false
	}
	if s.Opcode != uring.OpReadFixed && s.Opcode != uring.OpWriteFixed && s.BufIndex != 0 && s.Flags&uring.SQEBufferSelect == 0 {
		return errno(syscall.EINVAL), 0, false
	}
	off := int64(s.Off)
	if off < -1 {
		return errno(syscall.EINVAL), 0, false
	}
	var iov []unix.Iovec
	var sel *pbuf
	switch s.Opcode {
	case uring.OpReadv, uring.OpWritev:
		if s.Len > 1024 {
			return errno(syscall.EINVAL), 0, false
		}
		if s.Len > 0 {
			if s.Addr == 0 {
				return errno(syscall.EFAULT), 0, false
			}
			iov = append(iov, unsafe.Slice((*unix.Iovec)(ptr(s.Addr)), s.Len)...)
		}
	case uring.OpReadFixed, uring.OpWriteFixed:
		if int(s.BufIndex) >= len(k.bufs) {
			return errno(syscall.EFAULT), 0, false
		}
		reg := k.bufs[s.BufIndex]
		base := uring.Addr(unsafe.Pointer(reg.Base))
		if s.Addr < base || s.Addr+uint64(s.Len) > base+reg.Len {
			return errno(syscall.EFAULT), 0, false
		}
		iov = []unix.Iovec{{Base: (*byte)(ptr(s.Addr)), Len: uint64(s.Len)}}
	default:
		if s.Flags&uring.SQEBufferSelect != 0 {
			if s.Addr != 0 {
				return errno(syscall.EINVAL), 0, false
			}
			b, res := k.selectBuf(r)
			if res < 0 {
				return res, 0, false
			}
			sel = b
			iov = []unix.Iovec{{Base: (*byte)(ptr(b.addr)), Len: uint64(min(b.len, s.Len))}}
			if s.Len == 0 {
				iov[0].Len = uint64(b.len)
			}
		} else {
			iov = []unix.Iovec{{Base: (*byte)(ptr(s.Addr)), Len: uint64(s.Len)}}
		}
	}
	total := 0
	for _, v := range iov {
		total += int(v.Len)
	}
	r.want = int64(total)
	n := k.shorten(r, total)
	if n < total {
		left := n
		for i := range iov {
			if int(iov[i].Len) > left {
				iov[i].Len = uint64(left)
			}
			left -= int(iov[i].Len)
		}
	}
	if total == 0 {
		return 0, 0, false
	}
	isStream, e := stream(fd)
	if e != 0 {
		return errno(e), 0, false
	}
	flags := 0
	if isStream {
		off = -1
		flags = unix.RWF_NOWAIT
	}
	nr := uintptr(unix.SYS_PREADV2)
	ev := int16(unix.POLLIN)
	if write {
		nr, ev = unix.SYS_PWRITEV2, unix.POLLOUT
	}
	for {
		m, _, en := unix.Syscall6(nr, uintptr(fd), uintptr(unsafe.Pointer(&iov[0])), uintptr(len(iov)), uintptr(off), 0, uintptr(flags))
		switch en {
		case 0:
			if sel != nil {
				return int32(m), k.consumeBuf(sel, int(m)), false
			}
			return int32(m), 0, false
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			if isStream {
				return r.block(fd, ev)
			}
		case syscall.EOPNOTSUPP:
			if flags != 0 {
				// No RWF_NOWAIT for this file: poll, then go ahead.
				if !ready(fd, ev) {
					return r.block(fd, ev)
				}
				flags = 0
				continue
			}
		}
		return errno(en), 0, false
	}
}

func execFsync(k *Kernel, r *req) (int32, uint32, bool) {
	fd, e := k.file(r)
	if e != 0 {
		return errno(e), 0, false
	}
	if r.sqe.OpFlags&^uring.FsyncDatasync != 0 {
		return errno(syscall.EINVAL), 0, false
	}
	var err error
	if r.sqe.OpFlags&uring.FsyncDatasync != 0 {
		err = unix.Fdatasync(fd)
	} else {
		err = unix.Fsync(fd)
	}
	if err != nil {
		return errRes(err), 0, false
	}
	return 0, 0, false
}

func execSyncFileRange(k *Kernel, r *req) (int32, uint32, bool) {
	fd, e := k.file(r)
	if e != 0 {
		return errno(e), 0, false
	}
	if err := unix.SyncFileRange(fd, int64(r.sqe.Off), int64(r.sqe.Len), int(r.sqe.OpFlags)); err != nil {
		return errRes(err), 0, false
	}
	return 0, 0, false
}

func execFallocate(k *Kernel, r *req) (int32, uint32, bool) {
	fd, e := k.file(r)
	if e != 0 {
		return errno(e), 0, false
	}
	if err := unix.Fallocate(fd, r.sqe.Len, int64(r.sqe.Off), int64(r.sqe.Addr)); err != nil {
		return errRes(err), 0, false
	}
	return 0, 0, false
}

func execFtruncate(k *Kernel, r *req) (int32, uint32, bool) {
	fd, e := k.file(r)
	if e != 0 {
		return errno(e), 0, false
	}
	if int64(r.sqe.Off) < 0 {
		return errno(syscall.EINVAL), 0, false
	}
	if err := unix.Ftruncate(fd, int64(r.sqe.Off)); err != nil {
		return errRes(err), 0, false
	}
	return 0, 0, false
}

func sys(nr uintptr, a ...uintptr) (int32, uint32, bool) {
	var args [6]uintptr
	copy(args[:], a)
	for {
		v, _, e := unix.Syscall6(nr, args[0], args[1], args[2], args[3], args[4], args[5])
		if e == syscall.EINTR {
			continue
		}
		if e != 0 {
			return errno(e), 0, false
		}
		return int32(v), 0, false
	}
}

func dirfd(fd int32) uintptr { return uintptr(int(fd)) }

func execOpenat(k *Kernel, r *req) (int32, uint32, bool) {
	s := &r.sqe
	if s.Addr == 0 {
		return errno(syscall.EFAULT), 0, false
	}
	res, _, _ := sys(unix.SYS_OPENAT, dirfd(s.Fd), uintptr(s.Addr), uintptr(s.OpFlags|unix.O_LARGEFILE), uintptr(s.Len))
	if res < 0 || s.FileIndex == 0 {
		return res, 0, false
	}
	// A direct descriptor: install it in the registered file table.
	fd := int(res)
	if k.files == nil {
		unix.Close(fd)
		return errno(syscall.ENXIO), 0, false
	}
	slot := int(s.FileIndex) - 1
	if s.FileIndex == uring.FileIndexAlloc {
		slot = -1
		for i, f := range k.files {
			if f < 0 {
				slot = i
				break
			}
		}
		if slot < 0 {
			unix.Close(fd)
			return errno(syscall.ENFILE), 0, false
		}
	}
	if slot >= len(k.files) {
		unix.Close(fd)
		return errno(syscall.EINVAL), 0, false
	}
	if k.files[slot] >= 0 {
		unix.Close(k.files[slot])
	}
	k.files[slot] = fd
	if s.FileIndex == uring.FileIndexAlloc {
		return int32(slot), 0, false
	}
	return 0, 0, false
}

func execClose(k *Kernel, r *req) (int32, uint32, bool) {
	s := &r.sqe
	if s.FileIndex != 0 {
		if s.Fd != 0 {
			return errno(syscall.EINVAL), 0, false
		}
		slot := int(s.FileIndex) - 1
		if slot >= len(k.files) || k.files[slot] < 0 {
			return errno(syscall.EBADF), 0, false
		}
		unix.Close(k.files[slot])
		k.files[slot] = -1
		return 0, 0, false
	}
	if s.Fd < 0 {
		return errno(syscall.EBADF), 0, false
	}
	if err := unix.Close(int(s.Fd)); err != nil {
		return errRes(err), 0, false
	}
	return 0, 0, false
}

func execStatx(k *Kernel, r *req) (int32, uint32, bool) {
	s := &r.sqe
	return sys(unix.SYS_STATX, dirfd(s.Fd), uintptr(s.Addr), uintptr(s.OpFlags), uintptr(s.Len), uintptr(s.Off))
}

func execRenameat(k *Kernel, r *req) (int32, uint32, bool) {
	s := &r.sqe
	return sys(unix.SYS_RENAMEAT2, dirfd(s.Fd), uintptr(s.Addr), dirfd(int32(s.Len)), uintptr(s.Off), uintptr(s.OpFlags))
}

func execUnlinkat(k *Kernel, r *req) (int32, uint32, bool) {
	s := &r.sqe
	if s.OpFlags&^unix.AT_REMOVEDIR != 0 {
		return errno(syscall.EINVAL), 0, false
	}
	return sys(unix.SYS_UNLINKAT, dirfd(s.Fd), uintptr(s.Addr), uintptr(s.OpFlags))
}

func execMkdirat(k *Kernel, r *req) (int32, uint32, bool) {
	s := &r.sqe
	return sys(unix.SYS_MKDIRAT, dirfd(s.Fd), uintptr(s.Addr), uintptr(s.Len))
}

// timespec reads the relative timeout of a timeout or link timeout.
func (k *Kernel) timespec(r *req) (time.Duration, syscall.Errno) {
	s := &r.sqe
	if s.Len != 1 || s.Addr == 0 || s.OpFlags&(uring.TimeoutAbs|uring.TimeoutUpdate|uring.LinkTimeoutUpdate|uring.TimeoutMultishot) != 0 {
		return 0, syscall.EINVAL
	}
	ts := (*uring.Timespec)(ptr(s.Addr))
	if ts.Sec < 0 || ts.Nsec < 0 || ts.Nsec >= 1e9 {
		return 0, syscall.EINVAL
	}
	return time.Duration(ts.Sec)*time.Second + time.Duration(ts.Nsec), 0
}

func execPoll(k *Kernel, r *req) (int32, uint32, bool) {
	fd, e := k.file(r)
	if e != 0 {
		return errno(e), 0, false
	}
	if r.sqe.Len != 0 { // multishot and update are not simulated
		return errno(syscall.EINVAL), 0, false
	}
	ev := int16(r.sqe.OpFlags)
	fds := []unix.PollFd{{Fd: int32(fd), Events: ev}}
	if n, _ := unix.Poll(fds, 0); n > 0 {
		if fds[0].Revents&unix.POLLNVAL != 0 {
			return errno(syscall.EBADF), 0, false
		}
		return int32(uint16(fds[0].Revents)), 0, false
	}
	return r.block(fd, ev)
}

// execCancel is IORING_OP_ASYNC_CANCEL. Operations queued with a delay,
// blocked on a descriptor, and timeouts can be cancelled; one drawn to be
// "already running" (Faults.CancelRace) cannot. Operations behind a link or
// a drain, and link timeouts, are not found, as in the kernel.
func execCancel(k *Kernel, r *req) (int32, uint32, bool) {
	s := &r.sqe
	const known = uring.AsyncCancelAll | uring.AsyncCancelFd | uring.AsyncCancelAny | uring.AsyncCancelFdFixed | uring.AsyncCancelUserdata
	fl := s.OpFlags
	if fl&^known != 0 || (fl&uring.AsyncCancelFdFixed != 0 && fl&uring.AsyncCancelFd == 0) {
		return errno(syscall.EINVAL), 0, false
	}
	all := fl&(uring.AsyncCancelAll|uring.AsyncCancelAny) != 0
	match := func(x *req) bool {
		if x == r || x.state == stDone || x.sqe.Opcode == uring.OpAsyncCancel {
			return false
		}
		switch {
		case fl&uring.AsyncCancelAny != 0:
			return true
		case fl&uring.AsyncCancelFd != 0:
			fixed := fl&uring.AsyncCancelFdFixed != 0
			return x.sqe.Fd == s.Fd && (x.sqe.Flags&uring.SQEFixedFile != 0) == fixed
		}
		return x.sqe.UserData == s.Addr
	}
	nr := int32(0)
	ret := errno(syscall.ENOENT)
	for _, x := range append([]*req(nil), k.live...) {
		if !match(x) {
			continue
		}
		switch x.state {
		case stTimed, stBlocked, stTimer:
		default:
			continue
		}
		if x.state == stTimed && x.cancelRace {
			x.interrupt = true
			k.stats.CancelRaces++
			if !all {
				return errno(syscall.EALREADY), 0, false
			}
			continue
		}
		k.stats.Cancelled++
		k.complete(x, errno(syscall.ECANCELED), 0)
		nr++
		if !all {
			return 0, 0, false
		}
	}
	if all {
		return nr, 0, false
	}
	return ret, 0, false
}
