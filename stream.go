package rio

import (
	"context"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"

	"github.com/gorio/rio/internal/uring"
	"golang.org/x/sys/unix"
)

// Stream is the handle of a multishot operation: one submission that
// produces many results, such as AcceptMultishot or RecvMultishot. The
// operation holds one slot of the ring until the kernel ends it; its
// results queue in the Stream until Next takes them.
//
// A Stream is safe for concurrent use, though results are usually taken by
// one goroutine.
type Stream[T any] struct {
	op   op
	conv func(res int32, flags uint32) T

	mu    sync.Mutex
	q     []streamItem
	ended bool // the last CQE is in q
	ready chan struct{}
	onEnd func() // called once when the kernel ends the operation
	once  sync.Once
}

func (s *Stream[T]) endOnce() {
	if s.onEnd != nil {
		s.once.Do(s.onEnd)
	}
}

type streamItem struct {
	res   int32
	flags uint32
}

// submitStream submits o as a multishot operation. onEnd, if not nil, is
// called once when the operation has ended (or failed to start).
func submitStream[T any](r *Ring, o *op, sqe *uring.SQE, conv func(int32, uint32) T, onEnd func()) *Stream[T] {
	s := &Stream[T]{conv: conv, ready: make(chan struct{}, 1), onEnd: onEnd}
	s.op.buf, s.op.obj, s.op.x, s.op.opcode, s.op.kernelWrites = o.buf, o.obj, o.x, o.opcode, o.kernelWrites
	s.op.ring = r
	s.op.extra().onCQE = func(res int32, flags uint32) (int32, uint32) {
		s.mu.Lock()
		s.q = append(s.q, streamItem{res, flags})
		end := flags&uring.CQEFMore == 0
		if end {
			s.ended = true
		}
		s.mu.Unlock()
		if end {
			s.endOnce()
		}
		select {
		case s.ready <- struct{}{}:
		default:
		}
		return res, flags
	}
	r.submit(&s.op, sqe, false)
	if s.op.prepErr() != nil {
		s.endOnce() // failed before submission: no CQE will come
	}
	return s
}

// Next returns the next result, blocking until there is one. Once the
// kernel has ended the operation and every result has been returned, Next
// returns io.EOF. A failed result (the one that ends the stream, typically)
// is an *os.SyscallError wrapping the errno: ECANCELED after Cancel,
// ENOBUFS when a buffer ring ran dry.
func (s *Stream[T]) Next() (T, error) { return s.NextContext(nil) }

// NextContext is Next, giving up with ctx.Err() when ctx is done. Giving
// up does not cancel the stream; Cancel does.
func (s *Stream[T]) NextContext(ctx context.Context) (T, error) {
	var zero T
	armed := false
	defer func() {
		if armed {
			s.op.ring.disarm()
		}
	}()
	for {
		s.mu.Lock()
		if len(s.q) > 0 {
			it := s.q[0]
			s.q = s.q[1:]
			s.mu.Unlock()
			if it.res < 0 {
				return zero, &os.SyscallError{Syscall: opName(s.op.opcode), Err: syscall.Errno(-it.res)}
			}
			return s.conv(it.res, it.flags), nil
		}
		ended := s.ended
		s.mu.Unlock()
		if ended {
			return zero, io.EOF
		}
		if err := s.op.prepErr(); err != nil {
			return zero, err // never submitted
		}
		// Reap what is there before parking.
		s.op.ring.reap()
		s.mu.Lock()
		n := len(s.q)
		s.mu.Unlock()
		if n > 0 {
			continue
		}
		if !armed {
			if !s.op.ring.arm() {
				return zero, io.EOF
			}
			armed = true
			continue
		}
		if ctx == nil {
			<-s.ready
			continue
		}
		select {
		case <-s.ready:
		case <-ctx.Done():
			return zero, ctx.Err()
		}
	}
}

// Buffered returns the number of results waiting to be taken by Next.
func (s *Stream[T]) Buffered() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.q)
}

// Cancel asks the kernel to end the stream. Results already produced stay
// queued; the last one is ECANCELED.
func (s *Stream[T]) Cancel() {
	if s.op.state.Load() == statePending {
		s.op.ring.cancelOp(&s.op)
	}
}

// Ended reports whether the kernel has ended the operation. Results may
// still be queued.
func (s *Stream[T]) Ended() bool {
	return s.op.state.Load() == stateDone
}

// BufferRing is a ring of provided buffers (IORING_REGISTER_PBUF_RING,
// Linux 5.19) from which the kernel picks a buffer for each receive of a
// RecvMultishot, so that no buffer is tied to an idle connection.
//
// The buffers live outside the Go heap. A buffer the kernel filled belongs
// to the caller until it gives it back with Release.
type BufferRing struct {
	r       *Ring
	group   uint16
	entries uint16
	size    int
	ring    []byte // entries × struct io_uring_buf; the tail shares entry 0
	bufs    []byte // entries × size

	mu     sync.Mutex
	tail   uint16
	closed bool
	active int // RecvMultishot streams not yet ended
}

// NewBufferRing registers a ring of entries buffers (a power of two up to
// 32768) of size bytes each as buffer group group, and hands all of them to
// the kernel.
func (r *Ring) NewBufferRing(group uint16, entries int, size int) (*BufferRing, error) {
	if entries <= 0 || entries > 32768 || entries&(entries-1) != 0 || size <= 0 || size > 1<<30 {
		return nil, argError("NewBufferRing", fmt.Errorf("%d buffers of %d bytes: %w", entries, size, syscall.EINVAL))
	}
	ring, err := unix.Mmap(-1, 0, entries*16, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANONYMOUS|unix.MAP_PRIVATE)
	if err != nil {
		return nil, os.NewSyscallError("mmap", err)
	}
	bufs, err := unix.Mmap(-1, 0, entries*size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANONYMOUS|unix.MAP_PRIVATE)
	if err != nil {
		unix.Munmap(ring)
		return nil, os.NewSyscallError("mmap", err)
	}
	br := &BufferRing{r: r, group: group, entries: uint16(entries), size: size, ring: ring, bufs: bufs}
	reg := uring.BufReg{RingAddr: uint64(uintptr(unsafe.Pointer(&ring[0]))), RingEntries: uint32(entries), Bgid: group}
	r.regMu.Lock()
	err = r.liveLocked()
	if err == nil {
		_, err = r.k.Register(uring.RegisterPbufRing, unsafe.Pointer(&reg), 1)
	}
	r.regMu.Unlock()
	if err != nil {
		unix.Munmap(ring)
		unix.Munmap(bufs)
		if errnoIs(err, syscall.EINVAL) && !r.probe.Supported(uring.OpSocket) {
			return nil, &FeatureError{Feature: "IORING_REGISTER_PBUF_RING", MinKernel: "5.19", Err: err}
		}
		return nil, err
	}
	br.mu.Lock()
	for i := 0; i < entries; i++ {
		br.putLocked(uint16(i))
	}
	br.publishLocked()
	br.mu.Unlock()
	return br, nil
}

func errnoIs(err error, errno syscall.Errno) bool {
	se, ok := err.(*os.SyscallError)
	return ok && se.Err == errno
}

// Group returns the buffer group ID, as given to NewBufferRing.
func (br *BufferRing) Group() uint16 { return br.group }

// Size returns the size of each buffer.
func (br *BufferRing) Size() int { return br.size }

// Bytes returns the first n bytes of buffer id, which the kernel filled for
// a result of RecvMultishot. The memory is valid until Release(id).
func (br *BufferRing) Bytes(id uint16, n int) []byte {
	off := int(id) * br.size
	return br.bufs[off : off+n : off+br.size]
}

// Release gives buffer id back to the kernel for later receives. The
// caller must not use the buffer's memory afterwards.
func (br *BufferRing) Release(id uint16) {
	br.mu.Lock()
	if !br.closed {
		br.putLocked(id)
		br.publishLocked()
	}
	br.mu.Unlock()
}

func (br *BufferRing) putLocked(id uint16) {
	e := br.tail & (br.entries - 1)
	ent := br.ring[int(e)*16:]
	*(*uint64)(unsafe.Pointer(&ent[0])) = uint64(uintptr(unsafe.Pointer(&br.bufs[int(id)*br.size])))
	*(*uint32)(unsafe.Pointer(&ent[8])) = uint32(br.size)
	if e == 0 {
		// Entry 0's bid shares a 32-bit word with the ring's tail.
		w := (*uint32)(unsafe.Pointer(&br.ring[12]))
		atomic.StoreUint32(w, atomic.LoadUint32(w)&0xffff0000|uint32(id))
	} else {
		*(*uint16)(unsafe.Pointer(&ent[12])) = id
	}
	br.tail++
}

// publishLocked stores the tail (bytes 14-15 of entry 0) with release
// semantics, through the 32-bit word it shares with entry 0's bid.
func (br *BufferRing) publishLocked() {
	w := (*uint32)(unsafe.Pointer(&br.ring[12]))
	atomic.StoreUint32(w, atomic.LoadUint32(w)&0xffff|uint32(br.tail)<<16)
}

// Close unregisters the buffer ring and frees its memory. It fails with
// EBUSY while a RecvMultishot Stream using the ring has not ended (Cancel
// it and drain it with Next first); buffers the caller still holds become
// invalid.
func (br *BufferRing) Close() error {
	br.mu.Lock()
	defer br.mu.Unlock()
	if br.closed {
		return nil
	}
	if br.active > 0 {
		return argError("BufferRing.Close", fmt.Errorf("%d RecvMultishot streams still use buffer group %d: %w", br.active, br.group, syscall.EBUSY))
	}
	br.closed = true
	reg := uring.BufReg{Bgid: br.group}
	r := br.r
	r.regMu.Lock()
	var err error
	if !r.closedA.Load() {
		_, err = r.k.Register(uring.UnregisterPbufRing, unsafe.Pointer(&reg), 1)
	}
	r.regMu.Unlock()
	unix.Munmap(br.ring)
	unix.Munmap(br.bufs)
	return err
}

// Buffer is one result of RecvMultishot: N bytes received into buffer ID
// of the BufferRing. N == 0 means the peer closed its side.
type Buffer struct {
	ID uint16
	N  int
}

// RecvMultishot keeps receiving from socket fd into buffers the kernel
// picks from br (Linux 6.0), one result per receive, until the peer closes
// (a result with N 0), an error, or br runs dry (ENOBUFS), which all end
// the Stream. The caller reads each result with br.Bytes(b.ID, b.N) and
// must Release the buffer when done with it.
func (r *Ring) RecvMultishot(fd int, br *BufferRing, flags int) *Stream[Buffer] {
	return r.RecvMultishotLimit(fd, br, flags, 0)
}

// RecvMultishotLimit is RecvMultishot with a cap on the bytes the stream
// receives in all (Linux 6.17): once limit bytes have arrived, the kernel
// ends the stream with its last result, and the rest of the data waits in
// the socket until the stream is submitted again. That bounds how many
// buffers of br one connection can hold while its reader is not reading.
// A limit of 0 means no cap. Kernels before 6.17 refuse a non-zero limit:
// the stream ends at once with EINVAL.
func (r *Ring) RecvMultishotLimit(fd int, br *BufferRing, flags int, limit uint32) *Stream[Buffer] {
	var s uring.SQE
	c := initOp(new(Completion[int]), &s, uring.OpRecv, fd)
	s.IOPrio |= uring.RecvMultishot
	s.Flags |= uring.SQEBufferSelect
	s.BufIndex = br.group
	s.OpFlags = uint32(flags)
	s.FileIndex = limit // sqe->optlen shares the file_index slot
	var onEnd func()
	br.mu.Lock()
	if br.closed {
		c.setErr(argError("RecvMultishot", fmt.Errorf("buffer ring closed: %w", syscall.EINVAL)))
	} else {
		br.active++
		onEnd = func() {
			br.mu.Lock()
			br.active--
			br.mu.Unlock()
		}
	}
	br.mu.Unlock()
	return submitStream(r, &c.op, &s, func(res int32, f uint32) Buffer {
		if f&uring.CQEFBuffer == 0 {
			return Buffer{N: int(res)}
		}
		return Buffer{ID: uint16(f >> uring.CQEBufferShift), N: int(res)}
	}, onEnd)
}
