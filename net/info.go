package rionet

import (
	"github.com/gorio/rio"
)

// RingOf returns the Ring that v runs on, if v is a *Listener, *Conn or
// *PacketConn of this package, and nil otherwise: in particular for the
// listeners and connections of package net that the constructors return
// where io_uring is unavailable (see the package documentation on
// fallback; Available says why). It is how a program tells, for what
// Listen, Dial, ListenPacket and the File functions returned, whether it
// runs on io_uring:
//
//	ln, _ := rionet.Listen("tcp", ":8080")
//	if rionet.RingOf(ln) == nil {
//		log.Printf("not on io_uring: %v", rionet.Available(nil))
//	}
func RingOf(v any) *rio.Ring {
	switch v := v.(type) {
	case *Listener:
		return v.fd.e.ring
	case *Conn:
		return v.fd.e.ring
	case *PacketConn:
		return v.ring()
	}
	return nil
}

// Available reports whether this package can use r (nil: its default
// Ring): nil if it can, or else the error that makes Listen, Dial and the
// others fall back to package net (it matches rio.ErrNotSupported and
// names the missing feature and the kernel that brought it), or fail when
// fallback is off. For the default Ring, the answer is decided once, when
// it is first needed, and kept for the life of the process.
func Available(r *rio.Ring) error {
	_, err := engineFor(r)
	return err
}

// DefaultRing returns the package's default Ring, which every Listener,
// Conn and PacketConn made without a Ring of the caller's uses (the first
// 32,768 of them at a time; past that, further rings of the package's
// take the rest, see "Rings" in the package documentation), creating it
// if need be; or the error that makes the package fall back (as
// Available(nil) returns). Its Stats show what the package's connections
// cost in submissions, system calls and latency. The Ring is the
// package's: do not close it or register buffers or files on it.
func DefaultRing() (*rio.Ring, error) {
	e, err := engineFor(nil)
	if err != nil {
		return nil, err
	}
	return e.ring, nil
}

// Reduced reports whether this package runs on r (nil: its default Ring)
// in a reduced form, and why: nil if it runs in full (or falls back to
// package net: see Available); otherwise an error saying what it gave up
// and wrapping the cause. Where RLIMIT_MEMLOCK is too low for the default
// ring or its 8 MiB of receive buffers, the default ring is smaller and
// the buffers fewer (matching rio.ErrResourceLimit); where there can be
// no receive buffers at all (too low a limit, a kernel before 5.19:
// rio.ErrNotSupported; the buffer group taken on a Ring of the caller's:
// syscall.EEXIST), every Read receives directly into its buffer. Either
// way Conns work as usual, with fewer receives in flight at once or one
// system call more per Read.
func Reduced(r *rio.Ring) error {
	e, err := engineFor(r)
	if err != nil {
		return nil
	}
	return e.reduced
}
