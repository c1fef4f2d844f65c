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

	"github.com/gorio/rio/internal/sema"
	"github.com/gorio/rio/internal/uring"
)

// Stream is the handle of a multishot operation: one submission that
// produces many results, such as AcceptMultishot or RecvMultishot. The
// operation holds one slot of the ring until the kernel ends it; its
// results queue in the Stream until Next takes them. A zero Stream was
// never submitted: Next fails with an error matching syscall.EINVAL and
// Wait returns at once.
//
// A Stream is safe for concurrent use, though results are usually taken by
// one goroutine.
type Stream[T any] struct {
	streamCore
	conv func(res int32, flags uint32) T
}

// streamCore is the part of a Stream that does not depend on its result
// type. A server keeps one Stream per idle connection, so it is kept small:
// it is its op's cqeHook itself (op.stream), and its op needs no opExtra,
// so nothing else is allocated with it.
type streamCore struct {
	op op // first, so that op.hook finds the streamCore from the op

	mu   sync.Mutex
	q    []streamItem
	head int32 // q[head:] are the results not taken yet
	// ready is the wait's semaphore (internal/sema): a waiter parks in
	// sema.Acquire. token and waiters, guarded by mu, say what its count
	// is owed to: token is set when a result has arrived or Wake was
	// called since the last wait and nobody was waiting (its release is
	// done or about to be); waiters counts the goroutines that found no token and park
	// (a wake releases one of them instead of leaving a token). A
	// semaphore rather than a channel: it allocates nothing, where a
	// channel took 112 bytes beside every Stream, so per idle connection
	// of a server (docs/net.md, "RSS"; stream_token_test.go); and rather
	// than a sync.Mutex, whose slow path spins before it parks (4% of a
	// 16-connection echo server's samples).
	ready   uint32
	ended   bool // the last CQE is in q
	token   bool
	waiters uint32
	// br, for RecvMultishot, is the BufferRing whose count of active
	// streams this one is in until it ends; guarded by mu.
	br *BufferRing
}

type streamItem struct {
	res   int32
	flags uint32
}

// cqe queues one CQE of the stream's operation (cqeHook); the ring calls
// it for every CQE, from the goroutine that reaps.
func (s *streamCore) cqe(res int32, flags uint32) (int32, uint32) {
	s.mu.Lock()
	s.q = append(s.q, streamItem{res, flags})
	if flags&uring.CQEFBuffer != 0 && s.br != nil {
		s.br.handOut(uint16(flags >> uring.CQEBufferShift))
	}
	var br *BufferRing
	if flags&uring.CQEFMore == 0 {
		s.ended = true
		br, s.br = s.br, nil
	}
	give := s.giveLocked()
	s.mu.Unlock()
	if br != nil {
		br.streamEnded()
	}
	if give {
		sema.Release(&s.ready)
	}
	return res, flags
}

// noCQE ends a stream that failed before submission (cqeHook): it leaves
// its BufferRing's count of active streams, and a waiter wakes to find the
// error.
func (s *streamCore) noCQE() {
	s.failed()
	s.wake()
}

// wake leaves a token, or wakes a waiter if there is one.
func (s *streamCore) wake() {
	s.mu.Lock()
	give := s.giveLocked()
	s.mu.Unlock()
	if give {
		sema.Release(&s.ready)
	}
}

// giveLocked, with mu held, records a wake: it reports whether the caller
// must release ready once it lets go of mu (for a waiter, or for a new
// token), and false when a token is already there.
func (s *streamCore) giveLocked() bool {
	switch {
	case s.waiters > 0:
		s.waiters--
		return true
	case !s.token:
		s.token = true
		return true
	}
	return false
}

// await takes the token, blocking until there is one.
func (s *streamCore) await() {
	s.mu.Lock()
	if s.token {
		s.token = false
	} else {
		s.waiters++
	}
	s.mu.Unlock()
	sema.Acquire(&s.ready) // for a token at once, or about to be
	if raceEnabled {
		// The semaphore orders nothing for the race detector; the waker
		// released it after its own critical section.
		s.mu.Lock()
		s.mu.Unlock()
	}
}

// tryTake takes the token if there is one, without blocking.
func (s *streamCore) tryTake() bool {
	s.mu.Lock()
	ok := s.token
	s.token = false
	s.mu.Unlock()
	if ok {
		sema.Acquire(&s.ready) // released, or about to be: no real wait
	}
	return ok
}

// newStream allocates a Stream, in a small function of its own: allocating
// can take the runtime deep (see "Stack depth" in sqe.go).
func newStream[T any](conv func(int32, uint32) T) *Stream[T] {
	s := &Stream[T]{conv: conv}
	s.op.stream = true // the stream is its op's cqeHook
	return s
}

// submitStream submits s, whose op and sqe are prepared, as a multishot
// operation on r.
func submitStream(r *Ring, s *streamCore, sqe *uring.SQE) {
	s.op.ring = r
	r.submit(&s.op, sqe, false)
}

// failed ends a stream that failed before submission: no CQE will come.
func (s *streamCore) failed() {
	s.mu.Lock()
	br := s.br
	s.br = nil
	s.mu.Unlock()
	if br != nil {
		br.streamEnded()
	}
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
	var stop func() bool // a context's AfterFunc, which wakes the wait
	defer func() {
		if stop != nil {
			stop()
		}
		if armed {
			s.op.ring.disarm()
		}
	}()
	for {
		if it, ok, err := s.take(); ok {
			if err != nil {
				return zero, err
			}
			return s.conv(it.res, it.flags), nil
		}
		// Reap what is there before parking.
		s.op.ring.reap()
		if s.Buffered() > 0 {
			continue
		}
		if !armed {
			if !s.op.ring.arm() {
				return zero, io.EOF
			}
			armed = true
			continue
		}
		if ctx != nil && ctx.Done() != nil {
			if err := ctx.Err(); err != nil {
				return zero, err
			}
			if stop == nil {
				stop = context.AfterFunc(ctx, s.wake)
			}
		}
		s.await()
	}
}

// take takes the next result without blocking. ok is false if there is
// none yet; otherwise err is the error to return (io.EOF at the end).
func (s *streamCore) take() (it streamItem, ok bool, err error) {
	s.mu.Lock()
	if int(s.head) < len(s.q) {
		it = s.q[s.head]
		s.head++
		if int(s.head) == len(s.q) {
			// Empty: reuse the array from its start.
			s.q, s.head = s.q[:0], 0
		}
		s.mu.Unlock()
		if it.res < 0 {
			return it, true, &os.SyscallError{Syscall: opName(s.op.opcode), Err: syscall.Errno(-it.res)}
		}
		return it, true, nil
	}
	ended := s.ended
	s.mu.Unlock()
	if ended {
		return it, true, io.EOF
	}
	if err := s.op.prepErr(); err != nil {
		return it, true, err // never submitted
	}
	if s.op.ring == nil {
		return it, true, errZeroStream
	}
	if s.op.state.Load() == stateNew {
		return it, true, errNotSubmitted // queued in a Batch not submitted
	}
	return it, false, nil
}

var errZeroStream = fmt.Errorf("rio: zero Stream: %w", syscall.EINVAL)

// Wait blocks until Next can return without blocking (a result is
// buffered, or the stream has ended) or Wake is called. It can also return
// without either, when a result that woke it was taken by a Next that did
// not wait, so callers check what they wait for and call Wait again.
//
// Wait parks on less stack than NextContext does, which matters to a
// server with a goroutine waiting on each of many idle connections. It has
// no timeout of its own: to give up on a deadline, call Wake from a timer
// (or Cancel, which ends the stream). Closing the ring ends every stream,
// so a blocked Wait returns then too. On a Ring made WithWaitSpin, a Wait
// with no other goroutine waiting on the ring polls for a while before it
// parks.
func (s *Stream[T]) Wait() {
	if s.tryTake() {
		return // a token from Wake, or from a result (perhaps since taken)
	}
	if s.pending() {
		return
	}
	r := s.op.ring
	// What s waits for may not be entered yet (see deferLocked).
	r.flush()
	// Reap before parking only if that ends the wait. Reaping readies
	// the waiters of the other completions, and a goroutine readied by
	// another runs next on its P, ahead of those already queued: the
	// readers that reaped this way kept serving the connections that had
	// just been served while others waited (docs/net.md, "Reads").
	if r.cqHolds(s.op.userData) {
		r.reap()
		if s.pending() {
			return
		}
	}
	if r.spinFor > 0 && r.spin(&s.streamCore) {
		return
	}
	if !r.arm() {
		return
	}
	if !s.pending() { // arm reaped what was posted while disarmed
		s.await()
	}
	s.op.ring.disarm()
}

// pending reports whether Next would return without blocking: a result is
// buffered, the stream has ended, or it was never submitted.
func (s *streamCore) pending() bool {
	s.mu.Lock()
	p := int(s.head) < len(s.q) || s.ended
	s.mu.Unlock()
	return p || s.op.prepErr() != nil || s.op.ring == nil || s.op.state.Load() == stateNew
}

// Wake makes a Wait that is blocked on s return, or if none is, the next
// Wait on s to return at once. It does not affect Next and NextContext
// other than by making one of their waits loop once more.
func (s *Stream[T]) Wake() { s.wake() }

// Buffered returns the number of results waiting to be taken by Next.
func (s *Stream[T]) Buffered() int {
	s.mu.Lock()
	n := len(s.q) - int(s.head)
	s.mu.Unlock()
	return n
}

// Cancel asks the kernel to end the stream. Results already produced stay
// queued; the last one is ECANCELED.
func (s *Stream[T]) Cancel() {
	if s.op.inFlight() {
		s.op.ring.cancelOp(&s.op)
	}
}

// Ended reports whether the kernel has ended the operation. Results may
// still be queued.
func (s *Stream[T]) Ended() bool {
	return s.op.done()
}

// BufferRing is a ring of provided buffers (IORING_REGISTER_PBUF_RING,
// Linux 5.19) from which the kernel picks a buffer for each receive of a
// RecvMultishot, so that no buffer is tied to an idle connection.
//
// The buffers live outside the Go heap. A buffer the kernel filled belongs
// to the caller until it gives it back with Release.
type BufferRing struct {
	r    *Ring
	ring *uring.BufRing // the kernel-shared ring and its buffers
	// out has bit id set while buffer id is the caller's: from the
	// result that carried it to Release. A Release of a buffer the
	// caller does not hold would hand the kernel one buffer twice.
	out []atomic.Uint64

	mu     sync.Mutex // guards ring's Add and Publish, and what follows
	closed bool
	active int // RecvMultishot streams not yet ended
}

// NewBufferRing registers a ring of entries buffers (a power of two up to
// 32768) of size bytes each as buffer group group, and hands all of them to
// the kernel.
func (r *Ring) NewBufferRing(group uint16, entries int, size int) (*BufferRing, error) {
	if !r.usable() {
		return nil, errBadRing
	}
	if entries <= 0 || entries > 32768 || entries&(entries-1) != 0 || size <= 0 || size > 1<<30 {
		return nil, argError("NewBufferRing", fmt.Errorf("%d buffers of %d bytes: %w", entries, size, syscall.EINVAL))
	}
	ring, err := uring.NewBufRing(entries, size, group)
	if err != nil {
		return nil, err
	}
	br := &BufferRing{r: r, ring: ring, out: make([]atomic.Uint64, (entries+63)/64)}
	reg := ring.Reg()
	r.regMu.Lock()
	err = r.liveLocked()
	if err == nil {
		_, err = r.k.Register(uring.RegisterPbufRing, unsafe.Pointer(&reg), 1)
	}
	if err == nil {
		if r.bufRings == nil {
			r.bufRings = make(map[*BufferRing]struct{})
		}
		r.bufRings[br] = struct{}{}
	}
	r.regMu.Unlock()
	if err != nil {
		ring.Free()
		return nil, r.bufferRingError(err, group)
	}
	br.mu.Lock()
	for i := 0; i < entries; i++ {
		ring.Add(uint16(i))
	}
	ring.Publish()
	br.mu.Unlock()
	return br, nil
}

func errnoIs(err error, errno syscall.Errno) bool {
	se, ok := err.(*os.SyscallError)
	return ok && se.Err == errno
}

// Group returns the buffer group ID, as given to NewBufferRing.
func (br *BufferRing) Group() uint16 {
	if br == nil || br.ring == nil {
		return 0
	}
	return br.ring.Group()
}

// Size returns the size of each buffer.
func (br *BufferRing) Size() int {
	if br == nil || br.ring == nil {
		return 0
	}
	return br.ring.Size()
}

// Bytes returns the first n bytes of buffer id, which the kernel filled for
// a result of RecvMultishot. The memory is valid until Release(id), and
// until the BufferRing or its Ring is closed. An id out of range, an n
// outside 0 to Size(), or a closed BufferRing gives nil.
func (br *BufferRing) Bytes(id uint16, n int) []byte {
	if br == nil || br.ring == nil || int(id) >= br.ring.Entries() || n < 0 || n > br.ring.Size() {
		return nil
	}
	br.mu.Lock()
	closed := br.closed
	br.mu.Unlock()
	if closed {
		return nil
	}
	return br.ring.Buf(id, n)
}

// Release gives buffer id back to the kernel for later receives. The
// caller must not use the buffer's memory afterwards. Releasing an id out
// of range, or a buffer the caller does not hold (one already released,
// or never received), fails with an error matching syscall.EINVAL and
// changes nothing. After Close, Release does nothing.
func (br *BufferRing) Release(id uint16) error {
	if br == nil || br.ring == nil || int(id) >= br.ring.Entries() {
		return argError("BufferRing.Release", fmt.Errorf("buffer id %d out of range: %w", id, syscall.EINVAL))
	}
	bit := uint64(1) << (id % 64)
	br.mu.Lock()
	if br.closed {
		br.mu.Unlock()
		return nil
	}
	if br.out[id/64].And(^bit)&bit == 0 {
		br.mu.Unlock()
		return argError("BufferRing.Release", fmt.Errorf("buffer %d of group %d is not held: %w", id, br.ring.Group(), syscall.EINVAL))
	}
	br.ring.Add(id)
	br.ring.Publish()
	br.mu.Unlock()
	return nil
}

// handOut records that the kernel filled buffer id for a result: it is
// the caller's until Release.
func (br *BufferRing) handOut(id uint16) {
	if int(id) < br.ring.Entries() {
		br.out[id/64].Or(uint64(1) << (id % 64))
	}
}

// Close unregisters the buffer ring and frees its memory. It fails with
// EBUSY while a RecvMultishot Stream using the ring has not ended (Cancel
// it and drain it with Next first); buffers the caller still holds become
// invalid. Closing the Ring closes its BufferRings too (their streams have
// ended by then).
func (br *BufferRing) Close() error {
	br.mu.Lock()
	defer br.mu.Unlock()
	if br.closed {
		return nil
	}
	if br.active > 0 {
		return argError("BufferRing.Close", fmt.Errorf("%d RecvMultishot streams still use buffer group %d: %w", br.active, br.ring.Group(), syscall.EBUSY))
	}
	br.closed = true
	reg := uring.BufReg{Bgid: br.ring.Group()}
	r := br.r
	r.regMu.Lock()
	var err error
	if !r.closedA.Load() {
		_, err = r.k.Register(uring.UnregisterPbufRing, unsafe.Pointer(&reg), 1)
	}
	delete(r.bufRings, br)
	r.regMu.Unlock()
	br.free()
	return err
}

// free unmaps the memory of a closed BufferRing; br.mu is held.
func (br *BufferRing) free() { br.ring.Free() }

// closeBufferRings frees the BufferRings still open when the ring is torn
// down: the kernel's registration went with the ring. regMu is held.
func (r *Ring) closeBufferRingsLocked() {
	for br := range r.bufRings {
		br.mu.Lock()
		if !br.closed {
			br.closed = true
			br.free()
		}
		br.mu.Unlock()
	}
	r.bufRings = nil
}

// bufferRingError classifies a failed IORING_REGISTER_PBUF_RING: a kernel
// without provided-buffer rings, or one where registering is blocked,
// gives a *FeatureError (ErrNotSupported); pinning the ring past
// RLIMIT_MEMLOCK gives a *LimitError (ErrResourceLimit); a group already
// registered on the ring gives an error matching EEXIST.
func (r *Ring) bufferRingError(err error, group uint16) error {
	switch {
	case errnoIs(err, syscall.EINVAL) && !r.probe.Supported(uring.OpSocket):
		return &FeatureError{Feature: "IORING_REGISTER_PBUF_RING", MinKernel: "5.19", Err: err}
	case errnoIs(err, syscall.EEXIST), errnoIs(err, syscall.EBUSY):
		return argError("NewBufferRing", fmt.Errorf("buffer group %d already registered on this ring: %w", group, err))
	}
	return registerError("IORING_REGISTER_PBUF_RING", "5.19", err)
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
	st := newStream(bufferResult)
	r.recvMultishot(&st.streamCore, fd, br, flags, limit)
	return st
}

func (r *Ring) recvMultishot(s *streamCore, fd int, br *BufferRing, flags int, limit uint32) {
	var sqe uring.SQE
	prepRecvMultishot(s, &sqe, fd, br, flags, limit)
	submitStream(r, s, &sqe)
}

// prepRecvMultishot encodes a multishot receive into s and sqe, and counts s
// among br's active streams (see streamCore.failed for the way back).
func prepRecvMultishot(s *streamCore, sqe *uring.SQE, fd int, br *BufferRing, flags int, limit uint32) {
	initSQE(&s.op, sqe, uring.OpRecv, fd)
	sqe.IOPrio |= uring.RecvMultishot
	sqe.Flags |= uring.SQEBufferSelect
	sqe.OpFlags = uint32(flags)
	sqe.FileIndex = limit // sqe->optlen shares the file_index slot
	if br == nil {
		s.op.setErr(errNilBufferRing("RecvMultishot"))
		return
	}
	sqe.BufIndex = br.ring.Group()
	br.attach(s)
}

// attach counts s, a stream being prepared to receive into br, among br's
// active streams (see streamCore.failed for the way back), or fails it if
// br is closed.
func (br *BufferRing) attach(s *streamCore) {
	br.mu.Lock()
	if br.closed {
		s.op.setErr(errBufferRingClosed())
	} else {
		br.active++
		s.br = br
	}
	br.mu.Unlock()
}

// errBufferRingClosed keeps the formatting out of recvMultishot's frame
// (see "Stack depth" in sqe.go).
func errBufferRingClosed() error {
	return argError("RecvMultishot", fmt.Errorf("buffer ring closed: %w", syscall.EINVAL))
}

func errNilBufferRing(op string) error {
	return argError(op, fmt.Errorf("nil BufferRing: %w", syscall.EINVAL))
}

func bufferResult(res int32, f uint32) Buffer {
	if f&uring.CQEFBuffer == 0 {
		return Buffer{N: int(res)}
	}
	return Buffer{ID: uint16(f >> uring.CQEBufferShift), N: int(res)}
}

// streamEnded takes a RecvMultishot stream that has ended off the count of
// active ones.
func (br *BufferRing) streamEnded() {
	br.mu.Lock()
	br.active--
	br.mu.Unlock()
}

// WaitEnded blocks until the kernel has ended the stream (as it does
// after Cancel), without taking its results, which stay queued for Next.
// If ctx is done first, it cancels the stream and returns ctx.Err(); a nil
// ctx waits for the end alone. Closing the ring ends every stream.
func (s *Stream[T]) WaitEnded(ctx context.Context) error { return s.op.wait(ctx) }

// Err returns the error the kernel ended the stream with: nil while the
// stream runs, and nil if it ended without one. It takes nothing from the
// stream. It reaps the completions that are ready first, waiting for a
// reap in progress on another goroutine, so that a stream the kernel has
// just ended is seen ended; it does not wait for the stream otherwise.
func (s *Stream[T]) Err() error {
	if s.op.inFlight() {
		s.op.ring.reapWait()
	}
	if !s.op.done() {
		return nil
	}
	if err := s.op.prepErr(); err != nil {
		return err
	}
	if res := s.op.res; res < 0 {
		return &os.SyscallError{Syscall: opName(s.op.opcode), Err: syscall.Errno(-res)}
	}
	return nil
}
