package uring

import (
	"fmt"
	"os"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// BufRingEntry is struct io_uring_buf, one entry of a provided-buffer ring.
// The ring's tail, written by the application, overlays the Resv field of
// entry 0 (struct io_uring_buf_ring).
type BufRingEntry struct {
	Addr uint64
	Len  uint32
	Bid  uint16
	Resv uint16
}

// BufRing is a provided-buffer ring (IORING_REGISTER_PBUF_RING, Linux 5.19)
// together with the buffers it hands out, both in anonymous memory mapped
// outside the Go heap: the garbage collector never moves or frees them, so
// the kernel may write into a buffer at any time between registration and
// Free without any pinning.
//
// A BufRing has a single producer: whoever calls Add and Publish (the one
// goroutine that owns it, or callers holding the owner's lock). The kernel
// is the only consumer. It never writes the ring, so an entry is the
// owner's to rewrite once the kernel has moved its head past it, which it
// has for every buffer it has handed out in a completion.
//
// Lifetime: NewBufRing maps the memory; the owner registers it (Reg) on a
// ring, gives buffers to the kernel (Add, Publish), and must unregister it
// (or close the ring, after every operation that selects from it has
// completed) before Free unmaps it.
type BufRing struct {
	ring    []byte // entries × BufRingEntry
	bufs    []byte // entries × size
	entries uint32
	mask    uint16
	size    int
	group   uint16
	tail    uint16 // next entry to fill; published by Publish
}

// NewBufRing maps a ring of entries buffers (a power of two from 1 to
// 32768) of size bytes each, for buffer group group. The buffers' pages are
// not touched: they become resident as the kernel first fills them.
func NewBufRing(entries, size int, group uint16) (*BufRing, error) {
	if entries <= 0 || entries > 32768 || entries&(entries-1) != 0 || size <= 0 || size > 1<<30 {
		return nil, fmt.Errorf("uring: %d provided buffers of %d bytes: need a power of two from 1 to 32768 buffers of 1 byte to 1 GiB: %w", entries, size, syscall.EINVAL)
	}
	ring, err := unix.Mmap(-1, 0, entries*int(unsafe.Sizeof(BufRingEntry{})), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANONYMOUS|unix.MAP_PRIVATE)
	if err != nil {
		return nil, os.NewSyscallError("mmap", err)
	}
	bufs, err := unix.Mmap(-1, 0, entries*size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANONYMOUS|unix.MAP_PRIVATE)
	if err != nil {
		_ = unix.Munmap(ring)
		return nil, os.NewSyscallError("mmap", err)
	}
	return &BufRing{ring: ring, bufs: bufs, entries: uint32(entries), mask: uint16(entries - 1), size: size, group: group}, nil
}

// Reg returns the registration argument for IORING_REGISTER_PBUF_RING (and,
// with only Bgid needed, IORING_UNREGISTER_PBUF_RING).
func (b *BufRing) Reg() BufReg {
	return BufReg{RingAddr: uint64(uintptr(unsafe.Pointer(&b.ring[0]))), RingEntries: b.entries, Bgid: b.group}
}

// Group returns the buffer group ID.
func (b *BufRing) Group() uint16 { return b.group }

// Entries returns the number of buffers.
func (b *BufRing) Entries() int { return int(b.entries) }

// Size returns the size of each buffer.
func (b *BufRing) Size() int { return b.size }

// Buf returns the first n bytes of buffer bid. The slice aliases memory the
// kernel writes while the buffer is in the ring: the caller may use it only
// between the completion that handed bid out and the Add that gives it back.
func (b *BufRing) Buf(bid uint16, n int) []byte {
	off := int(bid) * b.size
	return b.bufs[off : off+n : off+b.size]
}

// Add queues buffer bid for the kernel, in the entry after the last one
// added; the kernel sees it after the next Publish. The caller must own
// bid: it was handed out by a completion (or never given to the kernel)
// and is not queued already. At most Entries buffers can be queued between
// two completions that hand buffers out.
func (b *BufRing) Add(bid uint16) {
	e := b.entry(b.tail & b.mask)
	e.Addr = uint64(uintptr(unsafe.Pointer(&b.bufs[int(bid)*b.size])))
	e.Len = uint32(b.size)
	if b.tail&b.mask == 0 {
		// Entry 0's bid shares a 32-bit word with the ring's tail,
		// which the kernel may be reading: store the word whole.
		w := b.tailWord()
		atomic.StoreUint32(w, atomic.LoadUint32(w)&0xffff0000|uint32(bid))
	} else {
		e.Bid = bid
	}
	b.tail++
}

// Publish makes every buffer added so far visible to the kernel, with a
// release store of the ring's tail.
func (b *BufRing) Publish() {
	w := b.tailWord()
	atomic.StoreUint32(w, atomic.LoadUint32(w)&0xffff|uint32(b.tail)<<16)
}

// Published returns the tail as last published.
func (b *BufRing) Published() uint16 { return uint16(atomic.LoadUint32(b.tailWord()) >> 16) }

func (b *BufRing) entry(i uint16) *BufRingEntry {
	return (*BufRingEntry)(unsafe.Pointer(&b.ring[int(i)*int(unsafe.Sizeof(BufRingEntry{}))]))
}

// tailWord is the 32-bit word holding entry 0's bid (low half) and the
// ring's tail (high half, offset 14 of struct io_uring_buf_ring).
func (b *BufRing) tailWord() *uint32 { return (*uint32)(unsafe.Pointer(&b.ring[12])) }

// Free unmaps the ring and its buffers. The ring must no longer be
// registered with a live io_uring instance, and no slice from Buf may be
// used afterwards.
func (b *BufRing) Free() {
	if b.ring != nil {
		_ = unix.Munmap(b.ring)
		_ = unix.Munmap(b.bufs)
		b.ring, b.bufs = nil, nil
	}
}
