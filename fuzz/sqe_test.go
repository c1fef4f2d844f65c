package fuzz

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/gorio/rio"
	"github.com/gorio/rio/internal/sim"
	"github.com/gorio/rio/internal/uring"
)

// FuzzSQEEncoding submits one operation with fuzzed arguments, through the
// Ring or a Batch (alone, drained, or linked to a following Nop), over a
// simulated kernel that records every SQE as it is consumed. The SQE must
// be exactly what the kernel's ABI makes of the arguments: each argument in
// its own field, the memory it points to holding what was passed, and every
// other byte of the 64 zero. Arguments that rio rejects must produce no
// SQE and an error.
func FuzzSQEEncoding(f *testing.F) {
	f.Add(uint8(1), int32(3), int64(4096), uint32(10), uint32(0), uint32(0o644), "a/b", "c", uint16(16), uint8(0))
	f.Add(uint8(14), int32(-100), int64(0), uint32(0), uint32(unix.O_RDWR|unix.O_CREAT), uint32(0o600), "file", "", uint16(0), uint8(1))
	f.Add(uint8(10), int32(-(1 << 30)), int64(0), uint32(0), uint32(0), uint32(0), "", "", uint16(0), uint8(3))
	f.Fuzz(func(t *testing.T, opc uint8, fd int32, off int64, n uint32, flags uint32, mode uint32, path, path2 string, bufLen uint16, via uint8) {
		checkSQE(t, opc, int(fd), off, n, flags, mode, path, path2, int(bufLen), via)
	})
}

// captured is an SQE with the memory it points to, read while the
// operation was in flight.
type captured struct {
	sqe          uring.SQE
	path, path2  string
	pok, p2ok    bool
	iov          []unix.Iovec
	ts           uring.Timespec
	hasTimespec  bool
	statxAddress uint64
}

func capture(s uring.SQE) captured {
	c := captured{sqe: s}
	switch s.Opcode {
	case uring.OpOpenat, uring.OpStatx, uring.OpUnlinkat, uring.OpMkdirat, uring.OpRenameat:
		c.path, c.pok = cstring(s.Addr)
		if s.Opcode == uring.OpRenameat {
			c.path2, c.p2ok = cstring(s.Off)
		}
	case uring.OpReadv, uring.OpWritev:
		if s.Addr != 0 && s.Len <= 1024 {
			c.iov = append(c.iov, unsafe.Slice((*unix.Iovec)(ptr(s.Addr)), s.Len)...)
		}
	case uring.OpTimeout, uring.OpLinkTimeout:
		if s.Addr != 0 {
			c.ts, c.hasTimespec = *(*uring.Timespec)(ptr(s.Addr)), true
		}
	}
	return c
}

const fixedTag = -(1 << 30)

// expFd is what the fd field and flags of an SQE are for fd, which may be
// a rio.FixedFile index.
func expFd(fd int) (int32, uint8) {
	if fd <= fixedTag {
		return int32(fixedTag - fd), uring.SQEFixedFile
	}
	return int32(fd), 0
}

func bufAddr(b []byte) uint64 {
	if len(b) == 0 {
		return 0
	}
	return addrOf(unsafe.SliceData(b))
}

func raw(s *uring.SQE) [64]byte { return *(*[64]byte)(unsafe.Pointer(s)) }

// submitter is what Ring and Batch have in common.
type submitter interface {
	Nop() *rio.Completion[struct{}]
	ReadAt(fd int, b []byte, off int64) *rio.Completion[int]
	WriteAt(fd int, b []byte, off int64) *rio.Completion[int]
	Read(fd int, b []byte) *rio.Completion[int]
	Write(fd int, b []byte) *rio.Completion[int]
	ReadvAt(fd int, bufs [][]byte, off int64) *rio.Completion[int]
	WritevAt(fd int, bufs [][]byte, off int64) *rio.Completion[int]
	ReadFixedAt(fd int, b []byte, off int64, index int) *rio.Completion[int]
	WriteFixedAt(fd int, b []byte, off int64, index int) *rio.Completion[int]
	Fsync(fd int) *rio.Completion[struct{}]
	Fdatasync(fd int) *rio.Completion[struct{}]
	SyncFileRange(fd int, off int64, n uint32, flags int) *rio.Completion[struct{}]
	Fallocate(fd int, mode uint32, off, length int64) *rio.Completion[struct{}]
	Ftruncate(fd int, length int64) *rio.Completion[struct{}]
	Openat(dirfd int, path string, flags int, mode uint32) *rio.Completion[int]
	CloseFd(fd int) *rio.Completion[struct{}]
	Statx(dirfd int, path string, flags int, mask uint32, st *unix.Statx_t) *rio.Completion[struct{}]
	Renameat(olddirfd int, oldpath string, newdirfd int, newpath string, flags int) *rio.Completion[struct{}]
	Unlinkat(dirfd int, path string, flags int) *rio.Completion[struct{}]
	Mkdirat(dirfd int, path string, mode uint32) *rio.Completion[struct{}]
	Timeout(d time.Duration) *rio.Completion[struct{}]
	Poll(fd int, events uint32) *rio.Completion[uint32]
}

const numOps = 24

func checkSQE(t *testing.T, opc uint8, fd int, off int64, n uint32, flags uint32, mode uint32, path, path2 string, bufLen int, via uint8) {
	var mu sync.Mutex
	var got []captured
	cfg := sim.Config{
		Seed:     1,
		OnSubmit: func(s uring.SQE) { mu.Lock(); got = append(got, capture(s)); mu.Unlock() },
		// Validate, but execute nothing: the arguments are arbitrary.
		Override: func(uring.SQE) (int32, bool) { return 0, true },
	}
	r, _ := newRing(t, cfg)
	reg := make([]byte, 4096)
	if err := r.RegisterBuffers([][]byte{reg}); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, bufLen%5000)
	bufs := [][]byte{buf[:len(buf)/3], buf[len(buf)/3:]}
	st := new(unix.Statx_t)
	op := opc % numOps
	mode3 := int(mode % 3)
	if op == 23 {
		via = 1 // a link timeout goes into a Batch after a Nop
	}

	var s submitter = r
	var b *rio.Batch
	if via%4 != 0 {
		b = r.NewBatch()
		s = b
	}
	var waits []func() error
	w := func(c interface{ Wait() (struct{}, error) }) {
		waits = append(waits, func() error { _, err := c.Wait(); return err })
	}
	wi := func(c *rio.Completion[int]) { waits = append(waits, func() error { _, err := c.Wait(); return err }) }

	exp := uring.SQE{}
	exp.Fd, exp.Flags = expFd(fd)
	valid := true
	switch op {
	case 0:
		w(s.Nop())
		exp = uring.SQE{Opcode: uring.OpNop, Fd: -1}
	case 1, 2:
		exp.Opcode = uring.OpRead
		if op == 2 {
			exp.Opcode = uring.OpWrite
			wi(s.WriteAt(fd, buf, off))
		} else {
			wi(s.ReadAt(fd, buf, off))
		}
		exp.Off, exp.Addr, exp.Len = uint64(off), bufAddr(buf), uint32(len(buf))
		valid = off >= 0
	case 3, 4:
		exp.Opcode = uring.OpRead
		if op == 4 {
			exp.Opcode = uring.OpWrite
			wi(s.Write(fd, buf))
		} else {
			wi(s.Read(fd, buf))
		}
		exp.Off, exp.Addr, exp.Len = ^uint64(0), bufAddr(buf), uint32(len(buf))
	case 5, 6:
		exp.Opcode = uring.OpReadv
		if op == 6 {
			exp.Opcode = uring.OpWritev
			wi(s.WritevAt(fd, bufs, off))
		} else {
			wi(s.ReadvAt(fd, bufs, off))
		}
		exp.Off, exp.Len = uint64(off), uint32(len(bufs))
		valid = off >= 0
	case 7, 8:
		lo := min(int(n%4096), len(reg))
		hi := min(lo+len(buf), len(reg))
		fb := reg[lo:hi]
		exp.Opcode = uring.OpReadFixed
		if op == 8 {
			exp.Opcode = uring.OpWriteFixed
			wi(s.WriteFixedAt(fd, fb, off, mode3))
		} else {
			wi(s.ReadFixedAt(fd, fb, off, mode3))
		}
		exp.Off, exp.Addr, exp.Len, exp.BufIndex = uint64(off), bufAddr(fb), uint32(len(fb)), uint16(mode3)
		valid = off >= 0 && mode3 == 0
	case 9, 10:
		exp.Opcode = uring.OpFsync
		if op == 10 {
			exp.OpFlags = uring.FsyncDatasync
			w(s.Fdatasync(fd))
		} else {
			w(s.Fsync(fd))
		}
	case 11:
		w(s.SyncFileRange(fd, off, n, int(flags)))
		exp.Opcode, exp.Off, exp.Len, exp.OpFlags = uring.OpSyncFileRange, uint64(off), n, flags
		valid = off >= 0
	case 12:
		length := int64(n) - 1
		w(s.Fallocate(fd, mode, off, length))
		exp.Opcode, exp.Off, exp.Addr, exp.Len = uring.OpFallocate, uint64(off), uint64(length), mode
		valid = off >= 0 && length > 0
	case 13:
		w(s.Ftruncate(fd, off))
		exp.Opcode, exp.Off = uring.OpFtruncate, uint64(off)
		valid = off >= 0
	case 14:
		wi(s.Openat(fd, path, int(flags&0x7fffffff), mode))
		exp.Opcode, exp.Len, exp.OpFlags = uring.OpOpenat, mode, (flags&0x7fffffff)|unix.O_CLOEXEC
		valid = !strings.Contains(path, "\x00")
	case 15:
		w(s.CloseFd(fd))
		exp.Opcode, exp.Flags = uring.OpClose, 0
		if fd <= fixedTag {
			exp.Fd, exp.FileIndex = 0, uint32(fixedTag-fd)+1
		}
	case 16:
		w(s.Statx(fd, path, int(flags&0x7fffffff), mode, st))
		exp.Opcode, exp.Len, exp.OpFlags, exp.Off = uring.OpStatx, mode, flags&0x7fffffff, addrOf(st)
		valid = !strings.Contains(path, "\x00")
	case 17:
		newdir := int(int32(mode))
		w(s.Renameat(fd, path, newdir, path2, int(flags&0x7fffffff)))
		exp.Opcode, exp.Len, exp.OpFlags = uring.OpRenameat, uint32(int32(newdir)), flags&0x7fffffff
		valid = !strings.Contains(path, "\x00") && !strings.Contains(path2, "\x00")
	case 18:
		w(s.Unlinkat(fd, path, int(flags&0x7fffffff)))
		exp.Opcode, exp.OpFlags = uring.OpUnlinkat, flags&0x7fffffff
		valid = !strings.Contains(path, "\x00")
	case 19:
		w(s.Mkdirat(fd, path, mode))
		exp.Opcode, exp.Len = uring.OpMkdirat, mode
		valid = !strings.Contains(path, "\x00")
	case 20:
		s.Timeout(time.Duration(off)) // not waited for: Close cancels it
		exp = uring.SQE{Opcode: uring.OpTimeout, Fd: -1, Len: 1}
	case 21:
		c := s.Poll(fd, flags)
		waits = append(waits, func() error { _, err := c.Wait(); return err })
		exp.Opcode, exp.OpFlags = uring.OpPollAdd, flags
	case 22:
		wi(r.CancelFd(fd))
		b = nil // CancelFd exists on the Ring only
		exp.Opcode, exp.OpFlags, exp.Flags = uring.OpAsyncCancel, uring.AsyncCancelFd|uring.AsyncCancelAll, 0
		if fd <= fixedTag {
			exp.OpFlags |= uring.AsyncCancelFdFixed
		}
	case 23:
		b.Nop()
		b.LinkTimeout(time.Duration(off)) // not waited for
		exp = uring.SQE{Opcode: uring.OpLinkTimeout, Fd: -1, Len: 1}
	}
	var trailer bool
	if b != nil && op != 23 {
		switch via % 4 {
		case 2:
			b.Drain()
			exp.Flags |= uring.SQEIODrain
		case 3:
			if via&4 != 0 {
				b.HardLink()
				exp.Flags |= uring.SQEIOHardlink
			} else {
				b.Link()
				exp.Flags |= uring.SQEIOLink
			}
			b.Nop()
			trailer = true
		}
		if err := b.Submit(); err != nil && valid {
			t.Fatalf("Submit: %v", err)
		}
	} else if b != nil {
		if err := b.Submit(); err != nil {
			t.Fatalf("Submit: %v", err)
		}
	}
	for _, wait := range waits {
		err := wait()
		if !valid && err == nil {
			t.Fatalf("op %d: invalid arguments accepted", op)
		}
	}
	// An operation nobody waited for (the Timeout) is handed to the
	// kernel by the ring's next flush: make it now.
	r.Flush()
	mu.Lock()
	defer mu.Unlock()
	if !valid {
		if len(got) != 0 {
			t.Fatalf("op %d: invalid arguments submitted: %+v", op, got[0].sqe)
		}
		return
	}
	want := 1
	if trailer || op == 23 {
		want = 2
	}
	if len(got) != want {
		t.Fatalf("op %d: %d SQEs submitted, want %d", op, len(got), want)
	}
	g := got[0]
	if op == 23 {
		// The Nop before the link timeout carries the link.
		if nop := got[0].sqe; nop.Flags != uring.SQEIOLink || nop.Opcode != uring.OpNop {
			t.Fatalf("Nop before LinkTimeout: %+v", nop)
		}
		g = got[1]
	}
	if trailer {
		nop := got[1].sqe
		nop.UserData = 0
		if raw(&nop) != raw(&uring.SQE{Opcode: uring.OpNop, Fd: -1}) {
			t.Fatalf("Nop after a link: %+v", nop)
		}
	}
	gs := g.sqe
	if gs.UserData == 0 {
		t.Fatalf("op %d: zero user_data", op)
	}
	gs.UserData = 0

	// Pointed-to memory.
	switch op {
	case 5, 6:
		if len(g.iov) != len(bufs) {
			t.Fatalf("iovec count %d, want %d", len(g.iov), len(bufs))
		}
		for i, v := range g.iov {
			if v.Len != uint64(len(bufs[i])) || (len(bufs[i]) > 0 && uint64(uintptr(unsafe.Pointer(v.Base))) != bufAddr(bufs[i])) {
				t.Fatalf("iovec %d: %+v, want %d bytes at %#x", i, v, len(bufs[i]), bufAddr(bufs[i]))
			}
		}
		exp.Addr = gs.Addr
		if exp.Addr == 0 {
			t.Fatalf("vectored op without iovec array")
		}
	case 14, 16, 17, 18, 19:
		if !g.pok || g.path != path {
			t.Fatalf("path %q (ok %v), want %q", g.path, g.pok, path)
		}
		if op == 17 && (!g.p2ok || g.path2 != path2) {
			t.Fatalf("new path %q, want %q", g.path2, path2)
		}
		exp.Addr = gs.Addr
		if op == 17 {
			exp.Off = gs.Off
		}
	case 20, 23:
		d := time.Duration(off)
		if d < 0 {
			d = 0
		}
		want := uring.Timespec{Sec: int64(d / time.Second), Nsec: int64(d % time.Second)}
		if !g.hasTimespec || g.ts != want {
			t.Fatalf("timespec %+v, want %+v", g.ts, want)
		}
		exp.Addr = gs.Addr
	}
	if a, b := raw(&gs), raw(&exp); !bytes.Equal(a[:], b[:]) {
		t.Fatalf("op %d (via %d): SQE\n got %s\nwant %s", op, via%4, dump(&gs), dump(&exp))
	}
}

func dump(s *uring.SQE) string {
	b := raw(s)
	return fmt.Sprintf("%+v\n     bytes % x", *s, b[:])
}
