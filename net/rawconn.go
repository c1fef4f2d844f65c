package rionet

import (
	"net"
	"os"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// rawConn is the syscall.RawConn of a Conn, Listener or PacketConn.
//
// Package net's sockets are non-blocking, and RawConn callbacks are written
// for that: they read or write until EAGAIN and return false to wait for
// readiness. rionet's sockets are in blocking mode (see newSocket), where
// such a callback would block its thread, deaf to deadlines and Close. The
// callback can make any system call, so a flag on rionet's side cannot
// help (MSG_DONTWAIT is for recv and send only); so Read and Write switch
// the socket to non-blocking mode (O_NONBLOCK) for the duration of each
// callback, under the read or write lock as package net takes it, and
// back to blocking afterwards. Between callbacks they wait for readiness
// with a poll on the ring, which the deadline and Close end. While the
// mode is switched, the ring's own operations on the socket are not
// affected on the kernels this was measured on (Linux 6.18 ignores
// O_NONBLOCK for operations it can poll); where one fails with EAGAIN
// instead, rionet retries it.
//
// Control calls f with the socket as it is: in blocking mode, but for a
// Listener's, which stays non-blocking as package net's does.
type rawConn struct {
	fd *netFD
	// owner is the Conn, Listener or PacketConn: a RawConn keeps it
	// reachable, so that its cleanup does not close the socket under it.
	owner any
}

var _ syscall.RawConn = (*rawConn)(nil)

func (c *rawConn) Control(f func(fd uintptr)) error {
	if !c.fd.incref() {
		return c.fd.controlError(net.ErrClosed)
	}
	defer c.fd.decref()
	f(uintptr(c.fd.sysfd))
	return nil
}

// Read calls f with the socket in non-blocking mode until f returns true,
// waiting until the socket is readable in between. The read deadline and
// Close end the wait. On a Conn, Read first stops the multishot receive,
// so that f sees data arriving from then on; data already received and not
// yet read stays for the next Conn.Read.
func (c *rawConn) Read(f func(fd uintptr) bool) error {
	fd := c.fd
	if !fd.incref() {
		return fd.opError("raw-read", net.ErrClosed)
	}
	defer fd.decref()
	fd.rmu.Lock()
	defer fd.rmu.Unlock()
	fd.pauseRecv()
	return c.loop("raw-read", true, unix.POLLIN, f)
}

// Write calls f with the socket in non-blocking mode until f returns true,
// waiting until the socket is writable in between. The write deadline and
// Close end the wait.
func (c *rawConn) Write(f func(fd uintptr) bool) error {
	fd := c.fd
	if !fd.incref() {
		return fd.opError("raw-write", net.ErrClosed)
	}
	defer fd.decref()
	fd.wmu.Lock()
	defer fd.wmu.Unlock()
	return c.loop("raw-write", false, unix.POLLOUT, f)
}

// loop calls f until it returns true, waiting for events in between. read
// says which deadline applies.
func (c *rawConn) loop(op string, read bool, events uint32, f func(fd uintptr) bool) error {
	fd := c.fd
	for {
		if err := fd.waitErr(read); err != nil {
			return fd.opError(op, err)
		}
		done, err := fd.callNonblock(f)
		if err != nil {
			return fd.opError(op, err)
		}
		if done {
			return nil
		}
		if err := fd.waitReady(read, events); err != nil {
			return fd.opError(op, err)
		}
	}
}

// callNonblock calls f with the socket in non-blocking mode, restoring
// blocking mode afterwards, also if f panics.
func (fd *netFD) callNonblock(f func(fd uintptr) bool) (done bool, err error) {
	if err := fd.setNonblock(true); err != nil {
		return false, err
	}
	defer func() {
		if rerr := fd.setNonblock(false); err == nil {
			err = rerr
		}
	}()
	return f(uintptr(fd.sysfd)), nil
}

// waitReady waits with a ring poll until the socket is ready for events,
// or the deadline (read or write) passes or fd closes (which waitErr then
// reports). It returns nil when the poll completed or was woken.
func (fd *netFD) waitReady(read bool, events uint32) error {
	d := &fd.deadlines().wd
	if read {
		d = &fd.deadlines().rd
	}
	wc := d.ctx()
	if err := fd.waitErr(read); err != nil {
		return err
	}
	p := fd.e.ring.Poll(fd.sysfd, events)
	if _, err := p.WaitContext(wc); err == errWake {
		p.Wait()
	} else if err != nil && errnoOf(err) != syscall.ECANCELED && !isTransient(err) {
		return err
	}
	return nil
}

// pauseRecv stops the multishot receive, with rmu held, so that the socket's
// data goes to whoever reads it directly (a RawConn callback). What the
// stream received stays queued in it, followed by its cancellation, and the
// next Conn.Read takes that and arms a new one.
func (fd *netFD) pauseRecv() {
	s := fd.stream.Load()
	if s == nil || s.Ended() {
		return
	}
	s.Cancel()
	s.WaitEnded(nil)
}

// Non-blocking mode is counted per socket, so that a Read and a Write
// callback at once (or a callback and a sendfile) leave the socket
// blocking only when the last of them is done. Switching is rare, so one
// lock serves every socket.
var (
	nbMu    sync.Mutex
	nbCount = map[*netFD]int{}
)

// setNonblock switches fd's socket into non-blocking mode (on) for one
// more user, or drops one (off), restoring blocking mode after the last.
func (fd *netFD) setNonblock(on bool) error {
	if fd.nonblock {
		return nil
	}
	nbMu.Lock()
	defer nbMu.Unlock()
	n := nbCount[fd]
	if on {
		if n == 0 {
			if err := unix.SetNonblock(fd.sysfd, true); err != nil {
				return os.NewSyscallError("setnonblock", err)
			}
		}
		nbCount[fd] = n + 1
		return nil
	}
	if n <= 1 {
		delete(nbCount, fd)
		if err := unix.SetNonblock(fd.sysfd, false); err != nil {
			return os.NewSyscallError("setnonblock", err)
		}
		return nil
	}
	nbCount[fd] = n - 1
	return nil
}

// controlError is RawConn.Control's error, shaped as package net's: the
// local address as Addr and no Source.
func (fd *netFD) controlError(err error) error {
	l, _ := fd.addrs()
	return &net.OpError{Op: "raw-control", Net: fd.net, Addr: l, Err: err}
}
