package rionet

import (
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// LoopConn is a connection served by a LoopServer. Its methods are safe
// for concurrent use from any goroutine unless their documentation says
// otherwise; the callbacks receive it on its loop.
type LoopConn struct {
	l    *loop
	fd   int
	slot uint32
	gen  uint16

	// Loop-only state: touched by the loop's goroutine alone.
	recvOn, recvCancel bool
	sendOn, sendCancel bool
	closing, abortW    bool
	eof, starved       bool
	autoPaused         bool // write queue over half full: not reading
	shutWant, shutDone bool
	ops                int   // operations in flight on fd
	cancelling         uint8 // bit 1<<(kind-kCancelRecv): a cancellation of it in flight
	closeErr           error
	lastRecv, closeBy  int64
	inbuf              []byte      // bytes OnData left unconsumed
	parked             []parkedBuf // received while reads were paused

	userPaused atomic.Bool // PauseRead
	closeReq   atomic.Bool // Close was called
	wlen       atomic.Int64

	// Write queue and requests, guarded by mu.
	mu            sync.Mutex
	wq            []wchunk  // chunks of the write queue, oldest first
	wq0           [1]wchunk // wq's first backing array: no allocation per write
	wOff          int       // bytes of wq[0] already sent
	wEnd          int       // bytes filled in the last chunk
	wclosed       bool      // no more writes (Close, CloseWrite, closing)
	closeWriteReq bool
	splitting     bool // a Write larger than MaxWriteBuffer is being queued in parts
	gone          bool // closed for good; fd released
	dirty         bool // on the loop's dirty list
	waiters       int
	room          chan struct{} // closed when room appears or the conn closes
	wdeadline     time.Time
	laddr, raddr  net.Addr

	wmu sync.Mutex // serializes Writes that wait for room

	// Value is for the handler's own per-connection state. The loop never
	// touches it; accessing it from several goroutines needs the
	// handler's own synchronization.
	Value any
}

type parkedBuf struct {
	bid uint16
	n   int32 // 0: the peer's EOF
}

type wchunk struct {
	id  int32
	buf []byte
}

// Write queues p to be sent and returns len(p), or the bytes queued and
// an error. It copies p before returning.
//
// The write queue holds at most MaxWriteBuffer bytes. When p does not
// fit, a Write called on the loop (from a callback) queues what fits and
// returns ErrWriteBufferFull (wrapped in a *net.OpError): a callback must
// never wait. A Write called from any other goroutine waits for room
// instead, until the connection closes (net.ErrClosed) or the deadline set
// with SetWriteDeadline passes (os.ErrDeadlineExceeded), and then returns
// the bytes it queued.
//
// Writes do not interleave: a Write of at most MaxWriteBuffer bytes is
// queued whole, and a larger one (queued in parts as room appears) is not
// interleaved with other goroutines' Writes; only a Write made on the loop
// while it waits can land between its parts.
//
// The bytes are sent in order, by sends submitted once per loop
// iteration. After Close or CloseWrite, Write fails with net.ErrClosed.
func (c *LoopConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	if c.wclosed {
		c.mu.Unlock()
		return 0, c.opError("write", net.ErrClosed)
	}
	if !c.splitting && c.fitsLocked(len(p)) {
		n := c.appendLocked(p)
		c.mu.Unlock()
		if n == len(p) {
			return n, nil
		}
		return n, c.opError("write", ErrWriteBufferFull) // out of memory
	}
	c.mu.Unlock()
	if c.onLoop() {
		c.mu.Lock()
		n := c.appendLocked(p)
		c.mu.Unlock()
		return n, c.opError("write", ErrWriteBufferFull)
	}
	return c.writeWait(p)
}

// fitsLocked reports whether n more bytes fit in the queue.
func (c *LoopConn) fitsLocked(n int) bool {
	return int(c.wlen.Load())+n <= c.l.srv.MaxWriteBuffer
}

// WriteString is Write for a string.
func (c *LoopConn) WriteString(s string) (int, error) {
	return c.Write(unsafeBytes(s))
}

// appendLocked copies as much of p as the queue has room for and marks c
// dirty; it returns the count.
func (c *LoopConn) appendLocked(p []byte) int {
	l := c.l
	room := l.srv.MaxWriteBuffer - int(c.wlen.Load())
	n := 0
	locked := false
	for n < len(p) && room > 0 {
		if len(c.wq) == 0 || c.wEnd == chunkSize {
			if !locked {
				l.mu.Lock()
				locked = true
			}
			id, buf, err := l.pool.get()
			if err != nil {
				break // out of memory: write what fits
			}
			if c.wq == nil {
				c.wq = c.wq0[:0]
			}
			c.wq = append(c.wq, wchunk{id, buf})
			c.wEnd = 0
		}
		last := c.wq[len(c.wq)-1].buf
		m := copy(last[c.wEnd:], p[n:min(len(p), n+room)])
		c.wEnd += m
		n += m
		room -= m
	}
	if n > 0 {
		c.wlen.Add(int64(n))
		if !c.dirty {
			if !locked {
				l.mu.Lock()
				locked = true
			}
			c.markDirtyMuLocked()
		}
	}
	if locked {
		l.mu.Unlock()
	}
	return n
}

// markDirtyMuLocked puts c on its loop's dirty list and wakes the loop;
// called with c.mu and l.mu held.
func (c *LoopConn) markDirtyMuLocked() {
	l := c.l
	if c.dirty || l.gone {
		return
	}
	c.dirty = true
	l.dirty = append(l.dirty, c)
	l.pending.Store(true)
	l.wakeLocked()
}

// markDirtyLocked is markDirtyMuLocked with only c.mu held.
func (c *LoopConn) markDirtyLocked() {
	if c.dirty {
		return
	}
	c.l.mu.Lock()
	c.markDirtyMuLocked()
	c.l.mu.Unlock()
}

// writeWait writes p from a goroutine other than the loop, waiting for
// room as needed: all of p at once if it fits in MaxWriteBuffer, else in
// parts, with splitting set so that other goroutines' Writes wait for it.
func (c *LoopConn) writeWait(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	var t *time.Timer
	n := 0
	defer func() {
		if t != nil {
			t.Stop()
		}
		if c.splitting {
			c.mu.Lock()
			c.splitting = false
			c.mu.Unlock()
		}
	}()
	whole := len(p) <= c.l.srv.MaxWriteBuffer
	for {
		c.mu.Lock()
		if c.wclosed {
			c.mu.Unlock()
			return n, c.opError("write", net.ErrClosed)
		}
		if !whole || c.fitsLocked(len(p)) {
			if !whole {
				c.splitting = true
			}
			n += c.appendLocked(p[n:])
			if n == len(p) {
				c.mu.Unlock()
				return n, nil
			}
		}
		dl := c.wdeadline
		if !dl.IsZero() && !time.Now().Before(dl) {
			c.mu.Unlock()
			return n, c.opError("write", os.ErrDeadlineExceeded)
		}
		if c.room == nil {
			c.room = make(chan struct{})
		}
		room := c.room
		c.waiters++
		c.mu.Unlock()
		var tc <-chan time.Time
		if !dl.IsZero() {
			if t == nil {
				t = time.NewTimer(time.Until(dl))
			} else {
				t.Reset(time.Until(dl))
			}
			tc = t.C
		}
		select {
		case <-room:
		case <-tc:
		}
		c.mu.Lock()
		c.waiters--
		c.mu.Unlock()
	}
}

// wakeWritersLocked wakes the Writes waiting for room.
func (c *LoopConn) wakeWritersLocked() {
	if c.room != nil {
		close(c.room)
		c.room = nil
	}
}

// sendableLocked returns the bytes the next send takes: the rest of the
// oldest chunk.
func (c *LoopConn) sendableLocked() []byte {
	if len(c.wq) == 0 {
		return nil
	}
	end := chunkSize
	if len(c.wq) == 1 {
		end = c.wEnd
	}
	return c.wq[0].buf[c.wOff:end]
}

// sentLocked takes n sent bytes off the front of the queue, giving fully
// sent chunks back to the pool, and wakes waiting writers.
func (c *LoopConn) sentLocked(n int) {
	c.wlen.Add(-int64(n))
	c.wOff += n
	l := c.l
	for len(c.wq) > 0 {
		end := chunkSize
		if len(c.wq) == 1 {
			end = c.wEnd
		}
		if c.wOff < end {
			break
		}
		l.mu.Lock()
		l.pool.put(c.wq[0].id)
		l.mu.Unlock()
		c.wq[0] = wchunk{}
		c.wq = c.wq[1:]
		c.wOff = 0
		if len(c.wq) == 0 {
			c.wq, c.wEnd = c.wq0[:0], 0
		}
	}
	if c.waiters > 0 {
		c.wakeWritersLocked()
	}
}

// dropQueueLocked empties the write queue; keepFront keeps the oldest
// chunk, which a send in flight still reads.
func (c *LoopConn) dropQueueLocked(keepFront bool) {
	keep := 0
	if keepFront && len(c.wq) > 0 {
		keep = 1
		if len(c.wq) > 1 {
			c.wEnd = chunkSize // the front chunk is full
		}
	}
	if len(c.wq) > keep {
		l := c.l
		l.mu.Lock()
		for _, ch := range c.wq[keep:] {
			l.pool.put(ch.id)
		}
		l.mu.Unlock()
	}
	clear(c.wq[keep:])
	c.wq = c.wq[:keep]
	if keep == 0 {
		c.wq, c.wOff, c.wEnd = c.wq0[:0], 0, 0
		c.wlen.Store(0)
	} else {
		// Only the bytes of the send in flight stay counted.
		c.wlen.Store(int64(c.wEnd - c.wOff))
	}
}

// onLoop reports whether the caller is c's loop goroutine: the only one
// that can run on the loop's locked thread.
func (c *LoopConn) onLoop() bool { return unix.Gettid() == c.l.tid }

// Close closes the connection: nothing more is read, what is queued is
// sent, then the descriptor is closed and OnClose is called (with nil),
// on the loop. Close returns at once; a Write waiting for room returns
// net.ErrClosed. If the queue cannot be sent within 5 seconds (the peer
// does not read), it is dropped. Closing again returns net.ErrClosed.
func (c *LoopConn) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gone || c.closeReq.Load() {
		return c.opError("close", net.ErrClosed)
	}
	c.closeReq.Store(true)
	c.wclosed = true
	c.wakeWritersLocked()
	c.markDirtyLocked()
	return nil
}

// CloseWrite shuts down the sending side once what is queued has been
// sent (shutdown(SHUT_WR)); reading goes on. Later Writes fail with
// net.ErrClosed.
func (c *LoopConn) CloseWrite() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gone || c.wclosed {
		return c.opError("close", net.ErrClosed)
	}
	c.wclosed = true
	c.closeWriteReq = true
	c.wakeWritersLocked()
	c.markDirtyLocked()
	return nil
}

// PauseRead stops OnData calls for c until ResumeRead: the loop stops
// receiving from the socket (data that was already received is kept for
// later), so TCP flow control holds the peer back. It is how a handler
// hands a connection to a goroutine: pause, start the goroutine, return
// from OnData; the goroutine calls ResumeRead when it is done. While
// paused, a connection is not idle: Shutdown waits for it, and
// IdleTimeout does not close it.
func (c *LoopConn) PauseRead() {
	c.userPaused.Store(true)
	c.mu.Lock()
	c.markDirtyLocked()
	c.mu.Unlock()
}

// ResumeRead undoes PauseRead: OnData is called again, first with what
// was received meanwhile.
func (c *LoopConn) ResumeRead() {
	c.userPaused.Store(false)
	c.mu.Lock()
	c.markDirtyLocked()
	c.mu.Unlock()
}

func (c *LoopConn) readPaused() bool { return c.autoPaused || c.userPaused.Load() }

// SetWriteDeadline sets the deadline for Writes that wait for room (from
// goroutines other than the loop); the zero time means none. It applies
// to a Write already waiting too.
func (c *LoopConn) SetWriteDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gone {
		return c.opError("set", net.ErrClosed)
	}
	c.wdeadline = t
	c.wakeWritersLocked()
	return nil
}

// OutboundBuffered returns the bytes queued and not yet sent.
func (c *LoopConn) OutboundBuffered() int { return int(c.wlen.Load()) }

// Loop returns the index of the loop that serves c, from 0 to Loops-1.
// State that only callbacks touch can be kept per loop without locks.
func (c *LoopConn) Loop() int { return c.l.id }

// LocalAddr returns the local address, or nil once c is closed.
func (c *LoopConn) LocalAddr() net.Addr {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.laddr == nil && !c.gone {
		if sa, err := unix.Getsockname(c.fd); err == nil {
			c.laddr = sockaddrToAddr(c.network(), sa)
		}
	}
	return c.laddr
}

// RemoteAddr returns the peer's address, or nil once c is closed. It is
// looked up on the first call (a system call), so it is also nil if the
// peer had reset the connection by then.
func (c *LoopConn) RemoteAddr() net.Addr {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.raddr == nil && !c.gone {
		if sa, err := unix.Getpeername(c.fd); err == nil {
			c.raddr = sockaddrToAddr(c.network(), sa)
		}
	}
	return c.raddr
}

func (c *LoopConn) network() string {
	if c.l.tcp {
		return "tcp"
	}
	return "unix"
}

// opError shapes err like package net's errors. Called without c.mu.
func (c *LoopConn) opError(op string, err error) error {
	return &net.OpError{Op: op, Net: c.network(), Err: err}
}

// Retain takes ownership of the data passed to the OnData call now
// running for c, so that the handler can keep it after OnData returns (or
// hand it to another goroutine) without copying. The loop treats all of
// it as consumed, whatever OnData returns. Retain may only be called from
// OnData, on the loop; anywhere else it returns nil.
//
// The memory stays valid until Release. Retained buffers are taken from
// the loop's receive buffers: a handler that holds many of them for long
// leaves fewer for receiving, which slows receives down (they wait for
// buffers) but loses nothing.
func (c *LoopConn) Retain() *LoopBuffer {
	l := c.l
	if l.cur != c || l.curPhase != phaseData || l.curTaken {
		return nil
	}
	l.curTaken = true
	b := &LoopBuffer{data: l.curData, bid: -1}
	if l.curBid >= 0 {
		b.l, b.bid = l, l.curBid
		l.bufState[l.curBid] = bufHeld
		l.mu.Lock()
		l.held++
		l.mu.Unlock()
	} else {
		c.inbuf = nil // the data was inbuf: it is the caller's now
	}
	return b
}

// LoopBuffer is received data whose ownership a handler took with
// LoopConn.Retain. It is safe to use from any goroutine.
type LoopBuffer struct {
	l        *loop
	bid      int32
	data     []byte
	released atomic.Bool
}

// Bytes returns the data. The slice is valid until Release.
func (b *LoopBuffer) Bytes() []byte { return b.data }

// Release gives the memory back; Bytes' slice must not be used afterwards.
// Releasing twice is a no-op. Every retained buffer must be released:
// Shutdown waits for it, and the loop's buffers stay mapped until then.
func (b *LoopBuffer) Release() {
	if b.released.Swap(true) {
		return
	}
	b.data = nil
	l := b.l
	if l == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.gone {
		l.held--
		if l.held == 0 {
			l.br.Free()
			close(l.released)
		}
		return
	}
	l.recycle = append(l.recycle, uint16(b.bid))
	l.pending.Store(true)
	l.wakeLocked()
}
