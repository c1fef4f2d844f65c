// Command issuer is an experiment, not part of rio: a minimal echo server
// on a raw io_uring whose only issuer is one goroutine locked to its OS
// thread. It answers one question for package rionet (docs/net.md): does
// that design, the one io_uring's authors recommend for networking, hand
// received data to per-connection goroutines more cheaply than Go's
// netpoller does, once the library's own overhead is taken away?
//
// The issuer thread creates the ring, submits everything (one multishot
// receive per connection into a shared provided-buffer ring), waits in
// io_uring_enter(GETEVENTS) and wakes each connection's goroutine through a
// channel; the goroutine echoes with a direct sendto (a raw system call,
// as rionet makes it) and gives the buffer back. Accepting goes through package net; the accepted sockets are
// handed to the issuer through an eventfd it polls.
//
//	-mode defer   IORING_SETUP_SINGLE_ISSUER|DEFER_TASKRUN: receive work
//	              runs only when the issuer enters the kernel
//	-mode coop    IORING_SETUP_COOP_TASKRUN|TASKRUN_FLAG
//	-block        wait after handing off the P at once
//	              (runtime.entersyscallblock), so that goroutines the issuer
//	              readied do not wait for sysmon to retake its P
//
// It prints "listening ADDR" like bench/net's servers, so the same client
// drives it:
//
//	go build -o /tmp/issuer ./bench/issuer && go build -o /tmp/nb ./bench/net
//	/tmp/issuer -mode defer -block &   # prints listening 127.0.0.1:PORT
//	/tmp/nb echo-client -addr 127.0.0.1:PORT -conns 256 -size 64 -dur 3s
//
// Connections are never closed and their sockets are never released: it
// is a measurement, not a server.
package main

import (
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"

	"github.com/gorio/rio/internal/uring"
	"golang.org/x/sys/unix"
)

const (
	bufSize  = 4096
	bufCount = 4096
	group    = 7
)

type item struct {
	bid uint16
	n   int32
}

type conn struct {
	fd    int
	mu    sync.Mutex
	q     []item
	dead  bool
	ready chan struct{}
}

var (
	mode  = flag.String("mode", "defer", "defer | coop")
	addr  = flag.String("addr", "127.0.0.1:0", "")
	block = flag.Bool("block", false, "issuer waits in io_uring_enter after handing off its P (runtime.entersyscallblock)")

	ringFd int
	rg     *uring.Rings
	brRing []byte
	bufs   []byte
	brMu   sync.Mutex
	brTail uint16

	conns   []*conn
	connsMu sync.Mutex
	newc    = make(chan *conn, 1024)
	kickFd  int
)

func release(bid uint16) {
	brMu.Lock()
	e := brTail & (bufCount - 1)
	ent := brRing[int(e)*16:]
	*(*uint64)(unsafe.Pointer(&ent[0])) = uint64(uintptr(unsafe.Pointer(&bufs[int(bid)*bufSize])))
	*(*uint32)(unsafe.Pointer(&ent[8])) = bufSize
	if e == 0 {
		w := (*uint32)(unsafe.Pointer(&brRing[12]))
		atomic.StoreUint32(w, atomic.LoadUint32(w)&0xffff0000|uint32(bid))
	} else {
		*(*uint16)(unsafe.Pointer(&ent[12])) = bid
	}
	brTail++
	w := (*uint32)(unsafe.Pointer(&brRing[12]))
	atomic.StoreUint32(w, atomic.LoadUint32(w)&0xffff|uint32(brTail)<<16)
	brMu.Unlock()
}

var sqTail uint32

func getSQE() *uring.SQE {
	s := &rg.SQEs[sqTail&rg.SQMask]
	*s = uring.SQE{}
	sqTail++
	return s
}

func armRecv(idx int, fd int) {
	s := getSQE()
	s.Opcode = uring.OpRecv
	s.Fd = int32(fd)
	s.IOPrio = uring.RecvMultishot
	s.Flags = uring.SQEBufferSelect
	s.BufIndex = group
	s.UserData = uint64(idx) + 16
}

func armKick() {
	s := getSQE()
	s.Opcode = uring.OpPollAdd
	s.Fd = int32(kickFd)
	s.OpFlags = unix.POLLIN
	s.Len = uring.PollAddMulti
	s.UserData = 1
}

func issuer(setupDone chan error) {
	runtime.LockOSThread()
	var p uring.Params
	if *mode == "defer" {
		p.Flags = uring.SetupSingleIssuer | uring.SetupDeferTaskrun
	} else {
		p.Flags = uring.SetupCoopTaskrun | uring.SetupTaskrunFlag
	}
	p.Flags |= uring.SetupCQSize
	p.CQEntries = 65536
	fd, err := uring.Setup(1024, &p)
	if err != nil {
		setupDone <- err
		return
	}
	ringFd = fd
	rg, err = uring.Map(fd, &p)
	if err != nil {
		setupDone <- err
		return
	}
	brRing, _ = unix.Mmap(-1, 0, bufCount*16, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANONYMOUS|unix.MAP_PRIVATE)
	bufs, _ = unix.Mmap(-1, 0, bufCount*bufSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANONYMOUS|unix.MAP_PRIVATE)
	reg := uring.BufReg{RingAddr: uint64(uintptr(unsafe.Pointer(&brRing[0]))), RingEntries: bufCount, Bgid: group}
	if _, err := uring.Register(fd, uring.RegisterPbufRing, unsafe.Pointer(&reg), 1); err != nil {
		setupDone <- err
		return
	}
	for i := 0; i < bufCount; i++ {
		release(uint16(i))
	}
	kickFd, _ = unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	armKick()
	setupDone <- nil
	var ebuf [8]byte
	for {
		toSubmit := sqTail - atomic.LoadUint32(rg.SQHead)
		uring.StoreRelease(rg.SQTail, sqTail)
		var errno syscall.Errno
		if *block {
			errno = enterBlock(uintptr(fd), uintptr(toSubmit))
		} else {
			_, errno = uring.Enter(fd, toSubmit, 1, uring.EnterGetEvents)
		}
		if errno != 0 && errno != syscall.EINTR && errno != syscall.EAGAIN && errno != syscall.EBUSY {
			fmt.Fprintln(os.Stderr, "enter:", errno)
			os.Exit(1)
		}
		head := atomic.LoadUint32(rg.CQHead)
		tail := uring.LoadAcquire(rg.CQTail)
		for ; head != tail; head++ {
			c := rg.CQEs[head&rg.CQMask]
			switch {
			case c.UserData == 1:
				unix.Read(kickFd, ebuf[:])
				if c.Flags&uring.CQEFMore == 0 {
					armKick()
				}
				for more := true; more; {
					select {
					case nc := <-newc:
						connsMu.Lock()
						conns = append(conns, nc)
						idx := len(conns) - 1
						connsMu.Unlock()
						armRecv(idx, nc.fd)
					default:
						more = false
					}
				}
			case c.UserData >= 16:
				idx := int(c.UserData - 16)
				connsMu.Lock()
				cn := conns[idx]
				connsMu.Unlock()
				if c.Res > 0 {
					cn.mu.Lock()
					cn.q = append(cn.q, item{uint16(c.Flags >> uring.CQEBufferShift), c.Res})
					cn.mu.Unlock()
				} else if c.Res == 0 || c.Res != -int32(syscall.ENOBUFS) {
					cn.mu.Lock()
					cn.dead = true
					cn.mu.Unlock()
				}
				if c.Flags&uring.CQEFMore == 0 && c.Res == -int32(syscall.ENOBUFS) {
					armRecv(idx, cn.fd)
				}
				select {
				case cn.ready <- struct{}{}:
				default:
				}
			}
		}
		uring.StoreRelease(rg.CQHead, head)
	}
}

func serve(c *conn) {
	var local []item
	for {
		<-c.ready
		c.mu.Lock()
		local, c.q = c.q, local[:0]
		dead := c.dead
		c.mu.Unlock()
		for _, it := range local {
			b := bufs[int(it.bid)*bufSize : int(it.bid)*bufSize+int(it.n)]
			unix.RawSyscall6(unix.SYS_SENDTO, uintptr(c.fd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)), unix.MSG_DONTWAIT|unix.MSG_NOSIGNAL, 0, 0)
			release(it.bid)
		}
		if dead {
			return
		}
	}
}

func main() {
	flag.Parse()
	done := make(chan error)
	go issuer(done)
	if err := <-done; err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println("listening", ln.Addr())
	go func() {
		ch := make(chan os.Signal, 1)
		signal.Notify(ch, syscall.SIGTERM, syscall.SIGINT)
		<-ch
		os.Exit(0)
	}()
	one := []byte{1, 0, 0, 0, 0, 0, 0, 0}
	for {
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		f, _ := nc.(*net.TCPConn).File()
		nc.Close()
		c := &conn{fd: int(f.Fd()), ready: make(chan struct{}, 1)}
		files = append(files, f) // keeps the descriptor open
		go serve(c)
		newc <- c
		unix.Write(kickFd, one)
	}
}

// files holds the accepted sockets' *os.File, whose finalizers would
// otherwise close the descriptors.
var files []*os.File

// The runtime exports these two for packages that make blocking system
// calls themselves (go.dev/issue/67401).

//go:linkname entersyscallblock runtime.entersyscallblock
func entersyscallblock()

//go:linkname exitsyscall runtime.exitsyscall
func exitsyscall()

// enterBlock waits in io_uring_enter for one completion after handing the
// P off; nosplit because the stack may not grow between the two calls.
//
//go:nosplit
func enterBlock(fd, toSubmit uintptr) syscall.Errno {
	entersyscallblock()
	_, _, e := syscall.RawSyscall6(unix.SYS_IO_URING_ENTER, fd, toSubmit, 1, uring.EnterGetEvents, 0, 0)
	exitsyscall()
	return e
}
