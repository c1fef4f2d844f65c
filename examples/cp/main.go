// Command cp copies a file with O_DIRECT IO, keeping many reads and writes
// in flight from one goroutine with file/'s asynchronous handles
// (ReadAtAsync, WriteAtAsync).
//
//	go run ./examples/cp [-depth 32] [-chunk 131072] SRC DST
//
// The copy is a pipeline of depth slots, each with its own aligned buffer.
// A slot reads a chunk of SRC, then writes it to DST at the same offset,
// then reads the next chunk nobody has taken yet. All slots are in flight
// at once; the goroutine only waits for the oldest one. O_DIRECT bypasses
// the page cache, so the copy neither pollutes it nor leaves dirty pages
// behind, and the disk sees up to depth requests at a time.
//
// O_DIRECT needs buffers, offsets and lengths aligned to the file's
// alignment (file.File.Alignment). The last chunk is written rounded up to
// it and DST is then truncated to SRC's size. On a file system without
// O_DIRECT (tmpfs before Linux 6.6, for one), cp says so and copies through
// the page cache instead.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"syscall"
	"time"

	"github.com/gorio/rio"
	"github.com/gorio/rio/file"
)

func main() {
	depth := flag.Int("depth", 32, "chunks in flight")
	chunk := flag.Int("chunk", 128<<10, "chunk size in bytes (a multiple of the file's O_DIRECT alignment)")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: cp [-depth N] [-chunk BYTES] SRC DST")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 2 || *depth < 1 || *chunk < 1 {
		flag.Usage()
		os.Exit(2)
	}
	start := time.Now()
	n, direct, err := copyFile(flag.Arg(0), flag.Arg(1), *depth, *chunk)
	if err != nil {
		fmt.Fprintln(os.Stderr, "cp:", err)
		os.Exit(1)
	}
	el := time.Since(start)
	mode := "O_DIRECT"
	if !direct {
		mode = "buffered"
	}
	fmt.Printf("copied %d bytes in %v (%.1f MiB/s), %s, %d chunks of %d bytes in flight\n",
		n, el.Round(time.Microsecond), float64(n)/el.Seconds()/(1<<20), mode, *depth, *chunk)
}

// open opens name with O_DIRECT if the file system supports it. The
// kernel refuses O_DIRECT with EINVAL where it does not.
func open(name string, flag int, perm fs.FileMode) (f *file.File, direct bool, err error) {
	f, err = file.OpenFile(name, flag|file.O_DIRECT, perm)
	if errors.Is(err, syscall.EINVAL) {
		fmt.Fprintf(os.Stderr, "cp: %s: no O_DIRECT on this file system, copying through the page cache\n", name)
		f, err = file.OpenFile(name, flag, perm)
		return f, false, err
	}
	return f, err == nil, err
}

func copyFile(srcName, dstName string, depth, chunk int) (copied int64, direct bool, err error) {
	src, srcDirect, err := open(srcName, os.O_RDONLY, 0)
	if err != nil {
		return 0, false, err
	}
	defer src.Close()
	if src.Ring() == nil {
		return 0, false, errors.New("io_uring is unavailable here (file/ fell back to the os package)")
	}
	dst, dstDirect, err := open(dstName, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return 0, false, err
	}
	defer dst.Close()

	// Buffers, offsets and lengths must suit both files.
	sa, err := src.Alignment()
	if err != nil {
		return 0, false, err
	}
	da, err := dst.Alignment()
	if err != nil {
		return 0, false, err
	}
	memAlign, offAlign := max(sa.Memory, da.Memory), max(sa.Offset, da.Offset)
	if chunk%offAlign != 0 {
		return 0, false, fmt.Errorf("chunk %d is not a multiple of the O_DIRECT alignment %d", chunk, offAlign)
	}
	fi, err := src.Stat()
	if err != nil {
		return 0, false, err
	}
	size := fi.Size()

	// One slot per chunk in flight. A slot's buffer belongs to the kernel
	// from ReadAtAsync/WriteAtAsync until Wait on its completion returns.
	type slot struct {
		buf     []byte
		off     int64                // offset of the slot's current chunk
		want    int                  // bytes the current operation must transfer
		writing bool                 // the operation in flight is the write
		c       *rio.Completion[int] // the operation in flight
	}
	var next int64 // the first offset no slot has taken yet
	startRead := func(s *slot) error {
		s.off, s.writing = next, false
		s.want = int(min(int64(chunk), size-next))
		next += int64(s.want)
		// Read a whole chunk even at the end: O_DIRECT lengths must be
		// aligned, and the kernel stops at end of file.
		c, err := src.ReadAtAsync(s.buf, s.off)
		s.c = c
		return err
	}

	// fifo holds the slots with an operation in flight, oldest first.
	var fifo []*slot
	for i := 0; i < depth && next < size; i++ {
		buf, err := file.AlignedBuffer(chunk, memAlign)
		if err != nil {
			return 0, false, err
		}
		s := &slot{buf: buf}
		if err := startRead(s); err != nil {
			return 0, false, err
		}
		fifo = append(fifo, s)
	}
	var firstErr error
	for len(fifo) > 0 {
		s := fifo[0]
		fifo = fifo[1:]
		n, err := s.c.Wait() // the buffer is ours again once Wait returns
		s.c = nil
		if firstErr != nil {
			continue // draining: wait for every operation still in flight
		}
		switch {
		case err != nil:
			firstErr = err
		case !s.writing && n != s.want:
			firstErr = fmt.Errorf("%s: short read at %d (%d of %d bytes): did the file change?", srcName, s.off, n, s.want)
		case !s.writing:
			// Write what was read, rounded up to the alignment, zero-padded.
			wlen := (s.want + offAlign - 1) / offAlign * offAlign
			clear(s.buf[s.want:wlen])
			s.writing, s.want = true, wlen
			if s.c, err = dst.WriteAtAsync(s.buf[:wlen], s.off); err != nil {
				firstErr = err
				continue
			}
			fifo = append(fifo, s)
		case n != s.want:
			firstErr = fmt.Errorf("%s: short write at %d (%d of %d bytes)", dstName, s.off, n, s.want)
		default:
			// The chunk is copied; the slot takes the next one, if any.
			copied += int64(min(int64(s.want), size-s.off))
			if next < size {
				if err := startRead(s); err != nil {
					firstErr = err
					continue
				}
				fifo = append(fifo, s)
			}
		}
	}
	if firstErr != nil {
		return copied, false, firstErr
	}
	// Cut the padding of the last chunk, and make the copy durable.
	if err := dst.Truncate(size); err != nil {
		return copied, false, err
	}
	if err := dst.Sync(); err != nil {
		return copied, false, err
	}
	return copied, srcDirect && dstDirect, dst.Close()
}
