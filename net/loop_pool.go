package rionet

import (
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Write-queue memory. Chunks of chunkSize bytes are carved from arenas
// mapped outside the Go heap, so that a send in flight can point into one
// without pinning: the garbage collector neither moves nor frees them, and
// the pool gives a chunk out again only after its connection has taken it
// off its queue, which it does once every send from it has completed.
// Freed chunks are reused last-in first-out, so that the pages a busy
// server touches stay few; arenas are unmapped when the loop exits.
const (
	chunkSize      = 16 << 10
	arenaSize      = 1 << 20
	chunksPerArena = arenaSize / chunkSize
)

// chunkPool is guarded by its loop's mu.
type chunkPool struct {
	arenas [][]byte
	free   []int32 // chunk ids, last freed last
	inUse  int
}

func (p *chunkPool) init() {}

// get returns a free chunk and its memory.
func (p *chunkPool) get() (int32, []byte, error) {
	if len(p.free) == 0 {
		a, err := unix.Mmap(-1, 0, arenaSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANONYMOUS|unix.MAP_PRIVATE)
		if err != nil {
			return -1, nil, os.NewSyscallError("mmap", err)
		}
		base := int32(len(p.arenas) * chunksPerArena)
		p.arenas = append(p.arenas, a)
		for i := int32(chunksPerArena - 1); i >= 0; i-- {
			p.free = append(p.free, base+i)
		}
	}
	id := p.free[len(p.free)-1]
	p.free = p.free[:len(p.free)-1]
	p.inUse++
	return id, p.chunk(id), nil
}

func (p *chunkPool) chunk(id int32) []byte {
	a := p.arenas[int(id)/chunksPerArena]
	off := int(id) % chunksPerArena * chunkSize
	return a[off : off+chunkSize : off+chunkSize]
}

// put gives chunk id back.
func (p *chunkPool) put(id int32) {
	if poisonMemory {
		poison(p.chunk(id))
	}
	p.free = append(p.free, id)
	p.inUse--
}

// poisonMemory, set by tests, overwrites write-queue chunks and receive
// buffers when they are given back, so that a send still reading a chunk
// after it was freed, or a handler seeing a buffer after it went back to
// the kernel, shows as corrupted data.
var poisonMemory bool

func poison(b []byte) {
	for i := range b {
		b[i] = 0xdb
	}
}

// unmap unmaps the arenas. No chunk may be in use.
func (p *chunkPool) unmap() {
	for _, a := range p.arenas {
		_ = unix.Munmap(a)
	}
	p.arenas, p.free = nil, nil
}

// unsafeBytes returns s's bytes without copying, for callers that only
// read them.
func unsafeBytes(s string) []byte { return unsafe.Slice(unsafe.StringData(s), len(s)) }
