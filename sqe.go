package rio

import (
	"errors"
	"fmt"
	"math"
	"os"
	"runtime"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"github.com/gorio/rio/internal/shortcall"
	"github.com/gorio/rio/internal/uring"
	"golang.org/x/sys/unix"
)

// This file encodes operations into SQEs. Each prep function fills one
// field of the SQE per argument, following the kernel's io_uring.h, and
// records the memory the kernel will use so that the ring can pin it.

// maxRW caps the bytes of one read or write, as Go's internal/poll does;
// larger requests complete short, as io.Reader and io.Writer allow.
const maxRW = 1 << 30

// fixedTag marks a registered-file index passed where a descriptor goes.
const fixedTag = -(1 << 30)

// FixedFile returns the value to pass as fd to refer to the file registered
// at index in the Ring's file table (see Ring.RegisterFiles), rather than to
// a file descriptor. Operations on it skip the kernel's per-operation file
// lookup and reference counting.
func FixedFile(index int) int {
	return fixedTag - index
}

// initOp starts encoding an operation into c, a zeroed Completion, and s,
// a zeroed SQE.
func initOp[T any](c *Completion[T], s *uring.SQE, opcode uring.Op, fd int) *Completion[T] {
	initSQE(&c.op, s, opcode, fd)
	return c
}

func initSQE(o *op, s *uring.SQE, opcode uring.Op, fd int) {
	o.opcode = opcode
	s.Opcode = opcode
	setFd(s, fd)
}

func setFd(s *uring.SQE, fd int) {
	if fd <= fixedTag {
		s.Fd = int32(fixedTag - fd)
		s.Flags |= uring.SQEFixedFile
		return
	}
	s.Fd = int32(fd)
}

func argError(op string, err error) error {
	return fmt.Errorf("rio: %s: %w", op, err)
}

func checkOffset[T any](c *Completion[T], off int64) {
	if off < 0 {
		c.setErr(argError(opName(c.opcode), fmt.Errorf("negative offset %d: %w", off, syscall.EINVAL)))
	}
}

func setBuf[T any](c *Completion[T], s *uring.SQE, b []byte) {
	if len(b) > maxRW {
		b = b[:maxRW]
	}
	c.setBuf(b)
	s.Addr = uring.SliceAddr(b)
	s.Len = uint32(len(b))
}

func prepNop(c *Completion[struct{}], s *uring.SQE) *Completion[struct{}] {
	return initOp(c, s, uring.OpNop, -1)
}

// prepRW encodes read, write and their fixed-buffer forms. off -1 means the
// file's current position (only via prepReadCur/prepWriteCur).
func prepRW(c *Completion[int], s *uring.SQE, opcode uring.Op, fd int, b []byte, off int64) *Completion[int] {
	initOp(c, s, opcode, fd)
	setBuf(c, s, b)
	s.Off = uint64(off)
	c.kernelWrites = opcode == uring.OpRead || opcode == uring.OpReadFixed
	return c
}

func prepRWAt(c *Completion[int], s *uring.SQE, opcode uring.Op, fd int, b []byte, off int64) *Completion[int] {
	prepRW(c, s, opcode, fd, b, off)
	checkOffset(c, off)
	return c
}

func prepRWFixed(c *Completion[int], s *uring.SQE, r *Ring, opcode uring.Op, fd int, b []byte, off int64, index int) *Completion[int] {
	prepRWAt(c, s, opcode, fd, b, off)
	if err := r.checkFixedBuffer(opName(opcode), b, index); err != nil {
		c.setErr(err)
	}
	s.BufIndex = uint16(index)
	return c
}

func prepRWV(c *Completion[int], s *uring.SQE, opcode uring.Op, fd int, bufs [][]byte, off int64) *Completion[int] {
	initOp(c, s, opcode, fd)
	checkOffset(c, off)
	c.kernelWrites = opcode == uring.OpReadv
	if len(bufs) > 1024 {
		c.setErr(argError(opName(opcode), fmt.Errorf("%d buffers exceed IOV_MAX (1024): %w", len(bufs), syscall.EINVAL)))
		return c
	}
	s.Off = uint64(off)
	if len(bufs) == 0 {
		return c
	}
	iov := make([]unix.Iovec, len(bufs))
	total := 0
	for i, b := range bufs {
		if total+len(b) > maxRW {
			b = b[:maxRW-total]
		}
		total += len(b)
		if len(b) > 0 {
			iov[i].Base = unsafe.SliceData(b)
		}
		iov[i].SetLen(len(b))
	}
	c.extra().bufs = bufs
	c.obj = unsafe.Pointer(&iov[0])
	s.Addr = uring.Addr(c.obj)
	s.Len = uint32(len(iov))
	return c
}

func prepFsync(c *Completion[struct{}], s *uring.SQE, fd int, flags uint32) *Completion[struct{}] {
	initOp(c, s, uring.OpFsync, fd)
	s.OpFlags = flags
	return c
}

func prepSyncFileRange(c *Completion[struct{}], s *uring.SQE, fd int, off int64, n uint32, flags int) *Completion[struct{}] {
	initOp(c, s, uring.OpSyncFileRange, fd)
	checkOffset(c, off)
	s.Off = uint64(off)
	s.Len = n
	s.OpFlags = uint32(flags)
	return c
}

func prepFallocate(c *Completion[struct{}], s *uring.SQE, fd int, mode uint32, off, length int64) *Completion[struct{}] {
	initOp(c, s, uring.OpFallocate, fd)
	checkOffset(c, off)
	if length <= 0 {
		c.setErr(argError("fallocate", fmt.Errorf("length %d not positive: %w", length, syscall.EINVAL)))
	}
	s.Off = uint64(off)
	s.Addr = uint64(length) // the kernel takes the length in addr
	s.Len = mode
	return c
}

func prepFtruncate(c *Completion[struct{}], s *uring.SQE, fd int, length int64) *Completion[struct{}] {
	initOp(c, s, uring.OpFtruncate, fd)
	if length < 0 {
		c.setErr(argError("ftruncate", fmt.Errorf("negative length %d: %w", length, syscall.EINVAL)))
	}
	s.Off = uint64(length)
	return c
}

// cpath returns path as a NUL-terminated byte slice.
func cpath(path string) (*byte, error) {
	if strings.IndexByte(path, 0) >= 0 {
		return nil, fmt.Errorf("path %q contains a NUL byte: %w", path, syscall.EINVAL)
	}
	b := make([]byte, len(path)+1)
	copy(b, path)
	return &b[0], nil
}

func setPath[T any](c *Completion[T], path string, obj *unsafe.Pointer) uint64 {
	p, err := cpath(path)
	if err != nil {
		c.setErr(argError(opName(c.opcode), err))
		return 0
	}
	*obj = unsafe.Pointer(p)
	return uring.Addr(*obj)
}

func prepOpenat(c *Completion[int], s *uring.SQE, dirfd int, path string, flags int, mode uint32) *Completion[int] {
	initOp(c, s, uring.OpOpenat, dirfd)
	s.Addr = setPath(c, path, &c.obj)
	s.Len = mode
	s.OpFlags = uint32(flags | unix.O_CLOEXEC)
	return c
}

func prepClose(c *Completion[struct{}], s *uring.SQE, fd int) *Completion[struct{}] {
	initOp(c, s, uring.OpClose, -1)
	if fd <= fixedTag {
		s.FileIndex = uint32(fixedTag-fd) + 1 // closing a direct descriptor
		s.Fd = 0
	} else {
		s.Fd = int32(fd)
	}
	return c
}

func prepStatx(c *Completion[struct{}], s *uring.SQE, dirfd int, path string, flags int, mask uint32, st *unix.Statx_t) *Completion[struct{}] {
	initOp(c, s, uring.OpStatx, dirfd)
	s.Addr = setPath(c, path, &c.obj)
	s.Len = mask
	s.OpFlags = uint32(flags)
	if st == nil {
		c.setErr(argError("statx", fmt.Errorf("nil Statx_t: %w", syscall.EFAULT)))
		return c
	}
	c.extra().obj2 = unsafe.Pointer(st)
	s.Off = uring.Addr(c.x.obj2)
	return c
}

func prepRenameat(c *Completion[struct{}], s *uring.SQE, olddirfd int, oldpath string, newdirfd int, newpath string, flags int) *Completion[struct{}] {
	initOp(c, s, uring.OpRenameat, olddirfd)
	s.Addr = setPath(c, oldpath, &c.obj)
	s.Off = setPath(c, newpath, &c.extra().obj2)
	s.Len = uint32(int32(newdirfd))
	s.OpFlags = uint32(flags)
	return c
}

func prepUnlinkat(c *Completion[struct{}], s *uring.SQE, dirfd int, path string, flags int) *Completion[struct{}] {
	initOp(c, s, uring.OpUnlinkat, dirfd)
	s.Addr = setPath(c, path, &c.obj)
	s.OpFlags = uint32(flags)
	return c
}

func prepMkdirat(c *Completion[struct{}], s *uring.SQE, dirfd int, path string, mode uint32) *Completion[struct{}] {
	initOp(c, s, uring.OpMkdirat, dirfd)
	s.Addr = setPath(c, path, &c.obj)
	s.Len = mode
	return c
}

func timespec(d time.Duration) *uring.Timespec {
	if d < 0 {
		d = 0
	}
	return &uring.Timespec{Sec: int64(d / time.Second), Nsec: int64(d % time.Second)}
}

func prepTimeout(c *Completion[struct{}], s *uring.SQE, d time.Duration) *Completion[struct{}] {
	initOp(c, s, uring.OpTimeout, -1)
	c.obj = unsafe.Pointer(timespec(d))
	s.Addr = uring.Addr(c.obj)
	s.Len = 1
	c.extra().okErrno[0] = syscall.ETIME
	return c
}

func prepLinkTimeout(c *Completion[bool], s *uring.SQE, d time.Duration) *Completion[bool] {
	initOp(c, s, uring.OpLinkTimeout, -1)
	c.obj = unsafe.Pointer(timespec(d))
	s.Addr = uring.Addr(c.obj)
	s.Len = 1
	// ETIME: the timeout fired and cancelled the operation; ECANCELED: the
	// operation completed first and the timeout was removed.
	c.extra().okErrno = [2]syscall.Errno{syscall.ETIME, syscall.ECANCELED}
	return c
}

func prepPoll(c *Completion[uint32], s *uring.SQE, fd int, events uint32) *Completion[uint32] {
	initOp(c, s, uring.OpPollAdd, fd)
	s.OpFlags = events
	return c
}

func prepCancelFd(c *Completion[int], s *uring.SQE, fd int) *Completion[int] {
	initOp(c, s, uring.OpAsyncCancel, fd)
	s.OpFlags = uring.AsyncCancelFd | uring.AsyncCancelAll
	if s.Flags&uring.SQEFixedFile != 0 {
		s.Flags &^= uring.SQEFixedFile
		s.OpFlags |= uring.AsyncCancelFdFixed
	}
	return c
}

// checkFixedBuffer verifies that b lies inside registered buffer index.
func (r *Ring) checkFixedBuffer(op string, b []byte, index int) error {
	if !r.usable() {
		return errBadRing
	}
	r.regMu.Lock()
	defer r.regMu.Unlock()
	if index < 0 || index >= len(r.regBufs) || index > math.MaxUint16 {
		return argError(op, fmt.Errorf("buffer index %d not registered (%d buffers): %w", index, len(r.regBufs), syscall.EINVAL))
	}
	reg := r.regBufs[index]
	if len(b) == 0 {
		return nil
	}
	start := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	base := uintptr(unsafe.Pointer(unsafe.SliceData(reg)))
	if start < base || start+uintptr(len(b)) > base+uintptr(len(reg)) {
		return argError(op, fmt.Errorf("buffer is not inside registered buffer %d: %w", index, syscall.EFAULT))
	}
	return nil
}

// submit submits one operation. Failures before submission complete the op
// with an error; submit itself never fails.
func (r *Ring) submit(o *op, s *uring.SQE, internal bool) {
	if !r.usable() {
		o.fail(errBadRing)
		return
	}
	if !r.plainOp(o) {
		if err := r.checkOp(o); err != nil {
			o.fail(err)
			return
		}
	}
	idx, ok := r.acquire1(o, s, internal)
	if !ok {
		return // failed, or queued: pump submits it when slots free
	}
	r.claim1(idx, o)
	ops := [1]*op{o}
	r.mu.Lock()
	if !r.publishLocked(ops[:], unsafe.Slice(s, 1), internal) {
		r.mu.Unlock()
		r.unsubmit([]uint32{idx}, ops[:], true)
		return
	}
	// A multishot operation is entered at once, not deferred: it is
	// submitted once and lives long, so deferring saves little, and its
	// first submission is on the stack of every first Read of a rionet
	// connection, where the flush from Stream.Wait, one call chain deeper,
	// grew parked readers' stacks past 2 KiB (TestParkedReadStack under
	// load). Its results come later: its submitter does not reap (see
	// "Stack depth").
	stream := o.stream // its hook is its streamCore
	if !stream && r.deferLocked(internal) {
		r.mu.Unlock()
		return
	}
	r.flushLocked(!stream)
}

// Deferred entering. An operation method publishes its SQE and returns
// without io_uring_enter: the SQEs published one by one, from one
// goroutine or many, reach the kernel together with the next flush. A
// flush comes with the first wait of any kind on the ring (Wait,
// WaitContext, Done, Stream.Next and Wait, a Collector, Close: they all
// reap, and reap flushes first), with a full SQ, and, for an operation
// nobody waits for, from the ring's flush timer, flushDelay after the
// first unflushed submission. Batch.Submit, cancellations, the queue's
// pump, SQPOLL rings and multishot streams do not defer.

// flushDelay bounds how long a published SQE nobody waits for stays
// unsubmitted while its goroutine runs on; a goroutine that parks lets
// the timer run at once.
const flushDelay = 20 * time.Microsecond

// deferLocked reports whether the SQEs just published (by a user
// operation, with mu held) may wait for the next flush, and arranges that
// flush: the goroutine in the enter loop takes them on its next round,
// and otherwise the flush timer is armed, unless it already is.
func (r *Ring) deferLocked(internal bool) bool {
	if internal || r.sqpoll {
		return false
	}
	if r.submitting {
		r.again = true
		return true
	}
	if !r.unflushed.Load() {
		r.unflushed.Store(true)
	}
	if !r.timerArmed {
		r.timerArmed = true
		r.flushTimer.Reset(flushDelay)
	}
	return true
}

// Flush hands the kernel every operation submitted so far: Ring's
// operation methods publish an operation and return, and the ring enters
// it with the next wait on the ring (any Wait, Done, Next, a Collector's,
// Close) or from a timer flushDelay (20 µs) later, once the Go scheduler
// runs timers. A caller that needs
// the kernel to have the operation now, before it closes a descriptor the
// operation uses or makes a system call that must come after it, calls
// Flush. It does not wait for completions.
func (r *Ring) Flush() {
	if r.usable() {
		r.flush()
	}
}

// timedFlush is the flush timer's function: it submits what was published
// and not yet flushed, and reaps what has completed, so that the
// operations nobody waits for leave their slots (and the kernel their
// memory) as they did when each submission reaped.
func (r *Ring) timedFlush() {
	r.mu.Lock()
	r.timerArmed = false
	r.mu.Unlock()
	r.reap()
}

// flush submits the published SQEs that wait for a flush, if any. It must
// not be called with mu held.
func (r *Ring) flush() {
	if !r.unflushed.Load() {
		return
	}
	r.mu.Lock()
	if !r.unflushed.Load() || r.dead {
		r.mu.Unlock()
		return
	}
	r.flushLocked(false)
}

// plainOp reports whether checkOp would find nothing wrong with o,
// without the call: o has no extra state (where a preparation error would
// be) and the kernel has its opcode. Ring.submit and checkBatch call
// checkOp only for the others.
func (r *Ring) plainOp(o *op) bool { return o.x == nil && r.probe.Supported(o.opcode) }

// checkOp returns the error an op fails with before it is submitted: one
// found while preparing it, or the kernel's lack of its opcode. Ring's
// methods and Batch.Submit both check with it.
func (r *Ring) checkOp(o *op) error {
	if err := o.prepErr(); err != nil {
		return err
	}
	if !r.probe.Supported(o.opcode) {
		return opFeatureError(o.opcode)
	}
	return nil
}

// publishLocked is the one path by which SQEs reach the submission queue,
// for Ring's methods, Batch.Submit and the queue's pump alike. With mu held,
// it copies the SQEs of ops, whose slots are claimed, into the SQ,
// contiguously, and publishes the new tail; the caller then flushes them
// (flushLocked). It reports false, publishing nothing, if the ring refuses
// them (see refusesLocked) or broke while making room; the caller then
// takes the slots back (unsubmit).
func (r *Ring) publishLocked(ops []*op, sqes []uring.SQE, internal bool) bool {
	n := uint32(len(ops))
	if r.refusesLocked(internal) {
		return false
	}
	if r.sqTail-uring.LoadAcquire(r.rings.SQHead)+n > r.rings.SQEntries && !r.waitSQSpace(n) {
		return false // the SQ is full, and the ring broke while making room
	}
	sq, mask, tail, heavy := r.rings.SQEs, r.rings.SQMask, r.sqTail, r.heavy
	for i, o := range ops {
		sqes[i].UserData = o.userData
		sq[tail&mask] = sqes[i]
		tail++
		heavy = heavy || heavyOp(o)
	}
	r.sqTail, r.heavy = tail, heavy
	// Publish the submission whole: waitSQSpace may enter.
	uring.StoreRelease(r.rings.SQTail, tail)
	r.submitted += uint64(len(ops))
	return true
}

// refusesLocked reports whether the ring, with mu held, refuses to
// publish a user operation (or an internal one): user ones from the
// moment Close begins, internal ones once Close has no more use for them.
func (r *Ring) refusesLocked(internal bool) bool {
	if r.brokenA.Load() {
		return true
	}
	if internal {
		return r.quiet || r.dead
	}
	return r.closed || r.dead
}

// Stack depth. A goroutine that parks keeps the stack it grew, and a
// server has one reader goroutine parked on each idle connection: rionet's
// first Read of a connection submits a multishot receive (submit, through
// Ring.recvMultishot) and parks in Stream.Wait, which reaps first (cqe.go).
// So the depth of the submit and reap paths is memory per idle
// connection, which rionet's TestParkedReadStack bounds. The functions on
// those paths keep their frames small and put rare or deep work in helpers
// of their own: acquire1 and claim1 below, enterSubmit's one shallow frame
// for the common enter, drainLocked's freed array in the Ring, newStream's
// allocation, errBufferRingClosed's formatting; a multishot submitter does
// not reap at all, and Stream.Wait parks on less stack than NextContext.
// This is the one place that explains it; the others point here.

// acquire1 acquires one slot for o. It reports false if o failed, or if
// it was queued to wait for a slot.
func (r *Ring) acquire1(o *op, s *uring.SQE, internal bool) (uint32, bool) {
	if idx, ok := r.table.acquire1(internal); ok {
		return idx, true
	}
	r.enqueue1(o, s, internal)
	return 0, false
}

// enqueue1 is enqueue for one op, which fails if it cannot be queued.
func (r *Ring) enqueue1(o *op, s *uring.SQE, internal bool) {
	ops := [1]*op{o}
	if err := r.enqueue(internal, ops[:], unsafe.Slice(s, 1)); err != errQueued {
		o.fail(err)
	}
}

// claim1 is claim for one op.
func (r *Ring) claim1(idx uint32, o *op) {
	var now int64
	r.table.claim(idx, o, &now)
}

// unsubmit empties and releases the slots idx of ops, claimed but refused
// by publishLocked, and fails the ops; with pump, it then submits what the
// freed slots let through.
func (r *Ring) unsubmit(idx []uint32, ops []*op, pump bool) {
	for _, i := range idx {
		r.table.unclaim(i)
	}
	r.table.release(idx...)
	err := r.closedErr()
	for _, o := range ops {
		failQueued(o, err)
	}
	if pump {
		r.pump()
	}
}

// flushLocked makes sure the published SQEs reach the kernel. Called with mu
// held; returns with it released. If another goroutine is already in the
// enter loop, it will pick our SQEs up (flat combining); otherwise this
// goroutine becomes the one, and afterwards, if reap is set, reaps what
// completed inline.
func (r *Ring) flushLocked(reap bool) {
	if r.submitting {
		r.again = true
		r.mu.Unlock()
		return
	}
	r.submitting = true
	for {
		short := !r.heavy
		r.heavy = false
		r.unflushed.Store(false) // this enter takes every published SQE
		fast := short && r.short != nil && !r.sqpoll
		r.mu.Unlock()
		r.enterSubmit(short, fast)
		r.mu.Lock()
		if fast {
			r.flushEnters++ // enterSubmit's first attempt
		}
		if r.brokenA.Load() {
			// No more enters: fail what the kernel never saw, whoever
			// published it.
			r.failUnconsumedLocked()
			r.again = false
		}
		if !r.again {
			r.submitting = false
			r.mu.Unlock()
			break
		}
		r.again = false
	}
	if reap {
		r.reap()
	} else if r.table.hasReady.Load() {
		r.pump()
	}
}

// enterSubmit is enter(0, 0, short), with its common case (a short enter
// of which the kernel takes every SQE) in one shallow frame (see "Stack
// depth"); fast says that case applies (a short enter the kernel can
// take without the scheduler, and no SQPOLL thread).
func (r *Ring) enterSubmit(short, fast bool) {
	if fast {
		_, errno := r.short.EnterShort(r.rings.SQEntries, 0, 0)
		// Counted in flushEnters by the caller, under mu.
		if errno == 0 && uring.LoadAcquire(r.rings.SQHead) == uring.LoadAcquire(r.rings.SQTail) {
			return
		}
		switch errno {
		case 0, syscall.EINTR, syscall.EAGAIN, syscall.EBUSY:
		case syscall.ENOMEM:
			r.stats.enterErrors.Add(1)
		default:
			r.stats.enterErrors.Add(1)
			r.breakRing(errno)
			return
		}
		// Let enter retry or back off.
	}
	r.enter(0, 0, short)
}

// heavyOp reports whether o may take long to submit, because the kernel
// copies much data while issuing it: such a submission goes through the
// scheduler's blocking-syscall path so that the P is handed off.
func heavyOp(o *op) bool {
	const limit = shortcall.Max
	n := int(o.blen)
	if o.x != nil {
		for _, b := range o.x.bufs {
			n += len(b)
		}
	}
	return n > limit
}

// waitSQSpace makes room for n SQEs, called with mu held. The kernel
// consumes SQEs during enter, so a full SQ is flushed here. It reports
// false if the ring broke (see breakRing): the caller must not publish.
func (r *Ring) waitSQSpace(n uint32) bool {
	for r.sqTail-uring.LoadAcquire(r.rings.SQHead)+n > r.rings.SQEntries {
		if r.brokenA.Load() {
			r.failUnconsumedLocked()
			return false
		}
		if r.sqpoll {
			r.enterFlags(0, 0, uring.EnterSQWait, false)
		} else {
			short := !r.heavy
			r.heavy = false
			r.unflushed.Store(false)
			r.enter(0, 0, short)
		}
	}
	return !r.brokenA.Load()
}

// breakRing records that io_uring_enter failed with errno, which cannot
// clear: the ring fd was closed behind the ring's back (EBADF), its number
// now names another file (EOPNOTSUPP), or a seccomp filter installed
// after New blocks the call (EPERM, ENOSYS). From then on the ring never
// enters again; operations the kernel never saw fail with the error (see
// failUnconsumedLocked), and so does every new one. Operations the kernel
// already has go on: their completions still reach the mapped CQ and the
// eventfd, so they complete as usual.
func (r *Ring) breakRing(errno syscall.Errno) {
	r.breakOnce.Do(func() {
		r.brokenErr = os.NewSyscallError("io_uring_enter", errno)
		r.brokenA.Store(true)
	})
}

// failUnconsumedLocked fails, with mu held, the operations whose SQEs are
// published but were never consumed by the kernel, and takes them out of
// the SQ, once the ring is broken. Without SQPOLL the kernel reads SQEs
// only inside io_uring_enter, which the ring no longer calls, so their
// memory is the caller's again. With SQPOLL the kernel's thread might
// still read them, so they stay pending until it does (or forever). The
// operations waiting for a slot fail too.
func (r *Ring) failUnconsumedLocked() {
	err := r.brokenErr
	r.failQueue(err, true)
	if r.sqpoll {
		return
	}
	rg := r.rings
	head := uring.LoadAcquire(rg.SQHead)
	var idx []uint32
	var ops []*op
	for i := head; i != r.sqTail; i++ {
		if o, j := r.table.lookup(rg.SQEs[i&rg.SQMask].UserData); o != nil {
			r.table.unclaim(j)
			idx = append(idx, j)
			ops = append(ops, o)
		}
	}
	r.sqTail = head
	uring.StoreRelease(rg.SQTail, head)
	if len(idx) > 0 {
		r.table.release(idx...)
	}
	for _, o := range ops {
		failQueued(o, err)
	}
}

// enter submits every published SQE. short says that none of them moves
// much data inline.
func (r *Ring) enter(minComplete, flags uint32, short bool) {
	if r.sqpoll {
		if uring.LoadAcquire(r.rings.SQFlags)&uring.SQNeedWakeup == 0 && flags == 0 {
			return
		}
		flags |= uring.EnterSQWakeup
	}
	r.enterFlags(r.rings.SQEntries, minComplete, flags, short)
}

// backoff reaps, to free what the kernel may be waiting on, and gives way
// before attempt number attempt of an enter: a yield at first, then sleeps
// growing to 1 ms.
func (r *Ring) backoff(attempt int) {
	r.drain() // not reap: the caller may hold mu, which pump takes
	if attempt < 10 {
		runtime.Gosched()
		return
	}
	time.Sleep(time.Duration(min(attempt, 100)) * 10 * time.Microsecond)
}

// enterGiveUp is how many attempts enterFlags makes at a transient error
// once Close has begun: about a second of backoff (see backoff).
const enterGiveUp = 1100

func (r *Ring) enterFlags(toSubmit, minComplete, flags uint32, short bool) {
	for attempt := 0; ; attempt++ {
		var errno syscall.Errno
		if r.short != nil && short && flags&(uring.EnterGetEvents|uring.EnterSQWait) == 0 {
			_, errno = r.short.EnterShort(toSubmit, minComplete, flags)
		} else {
			_, errno = r.k.Enter(toSubmit, minComplete, flags)
		}
		r.stats.enters.Add(1)
		switch errno {
		case 0:
			// The kernel may submit fewer SQEs than offered, without an
			// error (io_submit_sqes stops when it cannot allocate a
			// request). Nobody else enters while this goroutine is in the
			// enter loop, so it must not leave published SQEs behind.
			// Found by the simulated kernel (internal/sim).
			if toSubmit == 0 || r.sqpoll || uring.LoadAcquire(r.rings.SQHead) == uring.LoadAcquire(r.rings.SQTail) {
				return
			}
			if attempt == 8 {
				// Still nothing taken: the fd number may have been closed
				// behind the ring's back and reused by another io_uring
				// instance, whose own SQ this enter submitted.
				if v, ok := r.k.(verifier); ok && !v.Verify() {
					r.stats.enterErrors.Add(1)
					r.breakRing(syscall.EBADF)
					return
				}
			}
			r.backoff(attempt)
			continue
		case syscall.EINTR:
			continue
		case syscall.EAGAIN, syscall.EBUSY, syscall.ENOMEM:
			// The kernel is short of memory (ENOMEM counted), or has
			// completions it could not post: it clears, so retry. But
			// Close waits for this loop, so once Close has begun an
			// error that has not cleared after a second or so of
			// retries breaks the ring, as an error that cannot clear
			// does, and the operations the kernel never saw fail with
			// it (TestEnterRetryEndsOnClose).
			if errno == syscall.ENOMEM {
				r.stats.enterErrors.Add(1)
			}
			if attempt >= enterGiveUp && r.closeReq.Load() {
				r.breakRing(errno)
				return
			}
			r.backoff(attempt)
			continue
		default:
			// EBADF, EOPNOTSUPP, EPERM, ENOSYS, EFAULT, EINVAL...: it will
			// not clear, and SQEs left queued would wait for ever.
			r.stats.enterErrors.Add(1)
			r.breakRing(errno)
			return
		}
	}
}

// cancelOp asks the kernel to cancel o, if it is still in flight. An
// operation still waiting for a slot is withdrawn instead: it completes
// with ECANCELED without reaching the kernel.
func (r *Ring) cancelOp(o *op) {
	if !o.inFlight() {
		return
	}
	if x := o.x; x != nil && x.q != nil && r.withdraw(x.q) {
		return
	}
	c := &Completion[int]{}
	c.ring = r
	c.opcode = uring.OpAsyncCancel
	r.submit(&c.op, &uring.SQE{Opcode: uring.OpAsyncCancel, Fd: -1, Addr: o.userData}, true)
}

// The ring's side of the in-flight table's queue: an operation that finds
// no free slot waits there (see slots.go), and pump submits it once slots
// free.

// errQueued says that acquire queued the submission: its operations are
// pending and pump will submit them.
var errQueued = errors.New("rio: queued")

// acquire appends n free slots to dst. If the slots are not free, or
// others already wait for them, it queues the submission (ops and their
// SQEs, copied) and returns errQueued; on a closed ring, or past the queue
// limit, it fails with ErrClosed or ErrRingFull.
func (r *Ring) acquire(dst []uint32, n int, internal bool, ops []*op, sqes []uring.SQE) ([]uint32, error) {
	if dst, ok := r.table.acquire(dst, n, internal); ok {
		return dst, nil
	}
	return dst, r.enqueue(internal, ops, sqes)
}

// enqueue queues a submission that found no free slots. The queue holds
// the ring armed (the reaper must free slots for it) while the submission
// waits; arming comes first, since arm reaps, and reaping may free the
// slots, in which case the submission goes ahead at once.
func (r *Ring) enqueue(internal bool, ops []*op, sqes []uring.SQE) error {
	if !internal && r.closedA.Load() {
		return r.closedErr()
	}
	if !r.arm() {
		return r.closedErr()
	}
	pump, err := r.table.enqueue(newQueued(internal, ops, sqes), func() error {
		if r.deadA.Load() || (!internal && r.closedA.Load()) {
			return r.closedErr()
		}
		return nil
	})
	if err != nil {
		r.disarm()
		return err
	}
	if pump {
		r.pump()
	}
	return errQueued
}

// pump submits the queued submissions that have their slots. It is called
// after slots are freed, outside the CQ lock and mu (reap, flushLocked),
// and by whoever made the queue move. One goroutine pumps at a time; one
// that finds another pumping leaves the work to it, which looks again
// after it stops.
func (r *Ring) pump() {
	for r.table.hasReady.Load() {
		if !r.pumpMu.TryLock() {
			return
		}
		for {
			live, dropped := r.table.takeReady()
			if live == nil && dropped == nil {
				break
			}
			r.submitQueued(live, dropped)
		}
		r.pumpMu.Unlock()
	}
}

// submitQueued publishes popped submissions and enters them, with one
// io_uring_enter for all of them if the SQ holds them. Those withdrawn
// while they waited for pump (dropped) were never submitted.
func (r *Ring) submitQueued(live, dropped []*queued) {
	for _, q := range dropped {
		r.table.release(q.idx...)
		withdrawAll(q.ops)
		r.disarm()
	}
	if len(live) == 0 {
		return
	}
	var now int64
	for _, q := range live {
		r.table.claimAll(q.idx, q.ops, &now)
	}
	var refused []*queued
	published := false
	r.mu.Lock()
	for _, q := range live {
		if !r.publishLocked(q.ops, q.sqes, q.sys) {
			refused = append(refused, q)
			continue
		}
		published = true
	}
	if published {
		r.flushLocked(false)
	} else {
		r.mu.Unlock()
	}
	for _, q := range refused {
		r.unsubmit(q.idx, q.ops, false)
	}
	cancel := r.table.submitted(live)
	for range live {
		r.disarm()
	}
	for _, o := range cancel {
		r.cancelOp(o) // never blocks: at worst it is queued
	}
}

// withdraw takes o's queued submission out of the queue, if it is still
// waiting there, and completes its operations with ECANCELED, as the
// kernel would have. It reports false if the submission is already
// published, in which case the caller cancels it through the kernel.
func (r *Ring) withdraw(q *queued) bool {
	withdrawn, wasQueued, pump := r.table.withdraw(q)
	if wasQueued {
		withdrawAll(q.ops)
		r.disarm()
	}
	if pump {
		r.pump()
	}
	return withdrawn
}

// withdrawQueuedFd withdraws every queued submission that has an operation
// on fd (FixedFile(i) for a registered file), for CancelFd. It returns how
// many operations it withdrew.
func (r *Ring) withdrawQueuedFd(fd int) int {
	n := 0
	for _, q := range r.table.queuedOnFd(fd) {
		if r.withdraw(q) {
			n += len(q.ops)
		}
	}
	return n
}

// failQueue fails every user submission still waiting in the queue (and
// with sys, the internal ones too) with err, for Close. Popped ones are
// failed by pump, which sees the ring closed.
func (r *Ring) failQueue(err error, sys bool) {
	for _, q := range r.table.takeQueue(sys) {
		for _, o := range q.ops {
			failQueued(o, err)
		}
		r.disarm()
	}
}

// withdrawAll completes operations taken out of the queue with ECANCELED.
func withdrawAll(ops []*op) {
	for _, o := range ops {
		o.finishRes(-int32(syscall.ECANCELED), 0)
	}
}

// failQueued fails an operation that waited in the queue and will never be
// submitted.
func failQueued(o *op, err error) { o.fail(err) }
