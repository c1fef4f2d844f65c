package rionet

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/gorio/rio"
	"github.com/gorio/rio/internal/fdlife"
	"golang.org/x/sys/unix"
)

// netFD is a socket owned by this package: its descriptor, the reference
// count that keeps the descriptor open while operations use it, and the
// state of reads, writes and deadlines. Conn and Listener wrap one.
type netFD struct {
	e      *engine
	sysfd  int
	family int
	net    string // "tcp", "tcp4", "tcp6", "unix"; "udp", "udp4", "udp6", "unixgram"

	// unconnected is set for a datagram socket with no peer: it has no
	// remote address to look up.
	unconnected bool
	// datagram is set for a PacketConn: its receive stream, if any, is a
	// multishot recvmsg into the engine's datagram buffers (udp_multishot.go).
	datagram bool
	// nonblock: the socket stays in non-blocking mode (a listener's,
	// which Accept waits for in the network poller); RawConn callbacks
	// leave it so. Beside the other flags: at the end it took the netFD
	// past 256 bytes, into the next size class (fd_size_test.go).
	nonblock bool
	// rst is the state of socket errors after a reset (see reset.go):
	// the errno the receive stream ended with, who reported it, and
	// whether CloseWrite was called, in one word to keep the netFD small.
	// Beside the flags, in what would be their padding.
	rst atomic.Uint32

	// life counts the methods using sysfd (incref, decref); Close begins
	// closing it, and whoever drops the last reference then destroys the
	// netFD, so the descriptor is closed only once nothing uses it any
	// more.
	life fdlife.Life

	// Addresses: la and ra are recorded at accept and connect (IP
	// sockets, see recordAddrs); laddr and raddr are the net.Addrs made
	// of them when first asked for, or set directly (Unix sockets,
	// listeners). Guarded by addrMu once the netFD is shared.
	addrMu       sync.Mutex
	la, ra       sockAddr
	laddr, raddr net.Addr

	// dl is the deadline state, allocated on first use (see deadlines).
	dl atomic.Pointer[deadlines]

	// Read side, guarded by rmu (one Read at a time, as in package net).
	rmu sync.Mutex
	// stream is the multishot receive, if armed. Only a goroutine holding
	// rmu changes it; deadlines and Close load it to wake a waiting Read.
	stream atomic.Pointer[rio.Stream[rio.Buffer]]
	cur    rio.Buffer // a received buffer being consumed
	// curOff is how much of cur was consumed: an int32 (a provided
	// buffer is far below 2 GiB), so that it and the flags take one word
	// (fd_size_test.go).
	curOff  int32
	hasCur  bool
	direct  bool  // the buffer ring ran dry: the next Read receives directly
	eof     bool  // the peer has closed its side: Reads return io.EOF
	pendErr error // an error received behind data, for the next Read

	// Write side: one Write at a time, so that concurrent Writes do not
	// interleave their bytes.
	wmu sync.Mutex

	// lis is a listener's part of destroy and of waking (its Accept
	// waits in the network poller), nil for other sockets.
	lis *listenerState
}

// newNetFD makes the netFD of sysfd, which it owns from then on, on e or,
// if e is one of the package's own rings, on whichever of them has room
// (engine.take): the caller uses fd.e from then on.
func newNetFD(e *engine, sysfd, family int, network string) *netFD {
	return &netFD{e: e.take(), sysfd: sysfd, family: family, net: network}
}

// incref takes a reference, or reports false if the netFD is closing.
func (fd *netFD) incref() bool { return fd.life.Acquire() }

func (fd *netFD) decref() { fd.life.Release() }

// close marks the netFD closing, wakes every blocked operation, and waits
// until the last of them has dropped its reference and the descriptor has
// been closed. It reports false if the netFD was already closing.
func (fd *netFD) close() bool {
	if !fd.life.BeginClose(fd.destroy) {
		return false
	}
	if d := fd.dl.Load(); d != nil {
		d.rd.close()
		d.wd.close()
	}
	// A deadlines allocated after the Load sees the closing bit: nobody
	// waits on it.
	fd.wakeReader()
	fd.life.Release()
	<-fd.life.Done()
	return true
}

func (fd *netFD) isClosing() bool { return fd.life.Closing() }

// dropped is the cleanup of a Conn, Listener or PacketConn that became
// unreachable unclosed, as package net's finalizers close its sockets: the
// netFD is destroyed once no method uses it any more, in a goroutine of
// its own (destroy waits for the kernel to end a multishot receive). It
// wakes nothing: a method still blocked on the netFD (called on the object
// before it became unreachable) goes on until it ends by itself, and the
// descriptor is closed after.
func dropped(fd *netFD) {
	go fd.life.CloseIdle(fd.destroy)
}

// destroy ends the multishot receive, gives back every buffer the netFD
// holds, and closes the descriptor. It runs once, when the netFD is closing
// and nothing holds a reference, so nothing else touches the read state.
func (fd *netFD) destroy() {
	fd.rmu.Lock()
	if s := fd.stream.Load(); s != nil {
		s.Cancel()
		if fd.datagram {
			drainDgram(fd.e, s)
		} else {
			drainRecv(fd.e, s)
		}
		fd.stream.Store(nil)
	}
	if fd.hasCur {
		fd.e.br.Release(fd.cur.ID)
		fd.hasCur = false
	}
	fd.rmu.Unlock()
	if fd.lis != nil {
		fd.lis.drain()
	}
	unix.Close(fd.sysfd)
	if fd.lis != nil && fd.lis.unlink != "" {
		os.Remove(fd.lis.unlink)
	}
	fd.e.put()
}

// drainRecv takes the remaining results of a cancelled receive stream,
// giving back their buffers, until the kernel has ended it.
func drainRecv(e *engine, s *rio.Stream[rio.Buffer]) {
	for !(s.Ended() && s.Buffered() == 0) {
		b, err := s.Next()
		if err == io.EOF {
			return
		}
		if err == nil && b.N > 0 {
			e.br.Release(b.ID)
		}
	}
}

// addrs returns the local and remote addresses: those recorded at accept
// or connect, or for a socket whose addresses were not recorded, what the
// kernel says now.
func (fd *netFD) addrs() (laddr, raddr net.Addr) {
	fd.addrMu.Lock()
	defer fd.addrMu.Unlock()
	if fd.laddr == nil && fd.la.valid() {
		fd.laddr = fd.la.addr(fd.net)
	}
	if fd.raddr == nil && fd.ra.valid() {
		fd.raddr = fd.ra.addr(fd.net)
	}
	if fd.laddr == nil || fd.raddr == nil && !fd.unconnected {
		if fd.incref() {
			if fd.laddr == nil {
				if sa, err := unix.Getsockname(fd.sysfd); err == nil {
					fd.laddr = sockaddrToAddr(fd.net, sa)
				}
			}
			if fd.raddr == nil {
				if sa, err := unix.Getpeername(fd.sysfd); err == nil {
					fd.raddr = sockaddrToAddr(fd.net, sa)
				}
			}
			fd.decref()
		}
	}
	return fd.laddr, fd.raddr
}

// opError wraps err as package net does: io.EOF bare, everything else in a
// *net.OpError, system call failures as *os.SyscallError named after the
// system call package net would have made.
func (fd *netFD) opError(op string, err error) error {
	if err == nil || err == io.EOF {
		return err
	}
	var se *os.SyscallError
	if errors.As(err, &se) {
		name := se.Syscall
		switch name {
		case "recv":
			name = "read"
		case "send":
			name = "write"
		}
		err = &os.SyscallError{Syscall: name, Err: se.Err}
	}
	laddr, raddr := fd.addrs()
	return &net.OpError{Op: op, Net: fd.net, Source: laddr, Addr: raddr, Err: err}
}

func errnoOf(err error) syscall.Errno {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errno
	}
	return 0
}
