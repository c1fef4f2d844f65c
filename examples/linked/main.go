// Command linked submits a linked chain of io_uring operations with one
// system call: a write, an fsync limited by a link timeout, and a read back,
// each starting only once the one before it has succeeded. It then shows a
// chain whose first operation overruns its link timeout, and how the kernel
// cancels the rest of that chain.
//
//	go run ./examples/linked [-timeout 2s] [-file PATH]
//
// A rio.Batch queues operations and submits them together: no other
// goroutine's operation can land inside the chain. Link makes the operation
// queued last a predecessor of the next one; LinkTimeout limits the
// operation queued last to a duration (the kernel cancels it with ECANCELED
// when it runs out) and reports whether it fired.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"syscall"
	"time"

	"github.com/gorio/rio"
)

func main() {
	timeout := flag.Duration("timeout", 2*time.Second, "link timeout for the fsync and the read of the first chain")
	path := flag.String("file", "", "file to write (default: a temporary file, removed at exit)")
	flag.Parse()
	if err := run(*path, *timeout); err != nil {
		fmt.Fprintln(os.Stderr, "linked:", err)
		os.Exit(1)
	}
}

func run(path string, timeout time.Duration) error {
	ring, err := rio.New()
	if err != nil {
		return err // matches rio.ErrNotSupported where io_uring is unavailable
	}
	defer ring.Close()

	var f *os.File
	if path == "" {
		f, err = os.CreateTemp("", "linked-")
		if err == nil {
			defer os.Remove(f.Name())
		}
	} else {
		f, err = os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	}
	if err != nil {
		return err
	}
	defer f.Close()
	fd := int(f.Fd())

	// Chain 1: write -> fsync (limited by a link timeout) -> read.
	msg := []byte("written, synced and read back in one submission\n")
	buf := make([]byte, 128)
	b := ring.NewBatch()
	write := b.WriteAt(fd, msg, 0)
	b.Link() // the fsync starts once the write has succeeded
	sync := b.Fsync(fd)
	syncTimeout := b.LinkTimeout(timeout) // cancel the fsync if it takes longer
	b.Link()                              // the read starts once the fsync has succeeded
	read := b.ReadAt(fd, buf, 0)
	readTimeout := b.LinkTimeout(timeout)
	// One io_uring_enter submits all five SQEs. From here until each Wait
	// returns, msg and buf belong to the kernel: don't touch them.
	if err := b.Submit(); err != nil {
		return err
	}
	n, err := write.Wait()
	fmt.Printf("write:  %d bytes, err=%v\n", n, err)
	_, err = sync.Wait()
	fired, _ := syncTimeout.Wait()
	fmt.Printf("fsync:  err=%v (link timeout fired: %v)\n", err, fired)
	n, err = read.Wait()
	fired, _ = readTimeout.Wait()
	fmt.Printf("read:   %d bytes, err=%v (link timeout fired: %v): %q\n", n, err, fired, buf[:n])
	if err != nil {
		return err
	}

	// Chain 2: a read from an empty pipe, which never completes, limited to
	// 50ms, linked to a write that therefore never runs.
	pr, pw, err := os.Pipe()
	if err != nil {
		return err
	}
	defer pr.Close()
	defer pw.Close()
	stuck := b.Read(int(pr.Fd()), buf)
	stuckTimeout := b.LinkTimeout(50 * time.Millisecond)
	b.Link()
	after := b.WriteAt(fd, []byte("never written"), 0)
	start := time.Now()
	if err := b.Submit(); err != nil {
		return err
	}
	_, err = stuck.Wait()
	fired, _ = stuckTimeout.Wait()
	fmt.Printf("pipe read: err=%v after %v (link timeout fired: %v)\n",
		errName(err), time.Since(start).Round(10*time.Millisecond), fired)
	_, err = after.Wait()
	fmt.Printf("linked write after it: err=%v\n", errName(err))
	return nil
}

// errName shortens the ECANCELED the kernel reports for cancelled
// operations (an *os.SyscallError wrapping the errno).
func errName(err error) string {
	if errors.Is(err, syscall.ECANCELED) {
		return "ECANCELED"
	}
	return fmt.Sprint(err)
}
