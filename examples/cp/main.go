// Command cp copies a file with O_DIRECT IO, keeping many reads and writes
// in flight from one goroutine with file/'s asynchronous operations: a
// file.Batch starts many with one system call, and a file.Collector hands
// each back as soon as it completes.
//
//	go run ./examples/cp [-depth 32] [-chunk 131072] SRC DST
//
// The copy is a pipeline of up to depth slots, each with its own aligned
// buffer. A slot reads a chunk of SRC, then writes it to DST at the same
// offset, then reads the next chunk nobody has taken yet. The goroutine
// handles whichever operation completes first, then starts what that made
// possible for every slot that is ready, in one Batch. O_DIRECT bypasses the
// page cache, so the copy neither pollutes it nor leaves dirty pages
// behind, and the disk sees up to depth requests at a time.
//
// Like GNU cp, it refuses to copy a file onto itself (the same file through
// another name, a hard link or a symbolic link included), and it creates
// DST with SRC's permission bits (less the umask); an existing DST keeps
// its own.
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
	"io"
	"io/fs"
	"os"
	"syscall"
	"time"

	"github.com/gorio/rio/file"
)

func main() {
	depth := flag.Int("depth", 32, "most chunks in flight")
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
	st, err := copyFile(flag.Arg(0), flag.Arg(1), *depth, *chunk)
	if err != nil {
		fmt.Fprintln(os.Stderr, "cp:", err)
		os.Exit(1)
	}
	el := time.Since(start)
	mode := "O_DIRECT"
	if !st.direct {
		mode = "buffered"
	}
	fmt.Printf("copied %d bytes in %v (%.1f MiB/s), %s, %s of %d bytes, at most %d in flight\n",
		st.bytes, el.Round(time.Microsecond), float64(st.bytes)/el.Seconds()/(1<<20), mode,
		plural(st.chunks, "chunk"), *chunk, st.maxInFlight)
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

// stats is what a copy did.
type stats struct {
	bytes       int64
	chunks      int  // chunks copied
	maxInFlight int  // most operations in flight at once
	direct      bool // both files were opened with O_DIRECT
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

// slot is one chunk's buffer and the operation in flight on it. Its buffer
// belongs to the kernel from the start of the operation until Wait on it
// returns.
type slot struct {
	buf     []byte
	off     int64 // offset of the slot's current chunk
	want    int   // bytes of SRC in the chunk
	writing bool  // the operation in flight is the write
	op      *file.Op
}

func copyFile(srcName, dstName string, depth, chunk int) (st stats, err error) {
	src, srcDirect, err := open(srcName, os.O_RDONLY, 0)
	if err != nil {
		return st, err
	}
	defer src.Close()
	if src.Ring() == nil {
		return st, errors.New("io_uring is unavailable here (file/ fell back to the os package)")
	}
	si, err := src.Stat()
	if err != nil {
		return st, err
	}
	if !si.Mode().IsRegular() {
		return st, fmt.Errorf("%s: not a regular file", srcName)
	}
	// Open DST without truncating it: it may be SRC under another name.
	dst, dstDirect, err := open(dstName, os.O_WRONLY|os.O_CREATE, si.Mode().Perm())
	if err != nil {
		return st, err
	}
	defer dst.Close()
	di, err := dst.Stat()
	if err != nil {
		return st, err
	}
	if file.SameFile(si, di) {
		return st, fmt.Errorf("'%s' and '%s' are the same file", srcName, dstName)
	}
	if err := dst.Truncate(0); err != nil {
		return st, err
	}
	st.direct = srcDirect && dstDirect

	// Buffers, offsets and lengths must suit both files.
	sa, err := src.Alignment()
	if err != nil {
		return st, err
	}
	da, err := dst.Alignment()
	if err != nil {
		return st, err
	}
	memAlign, offAlign := max(sa.Memory, da.Memory), max(sa.Offset, da.Offset)
	if chunk%offAlign != 0 {
		return st, fmt.Errorf("chunk %d is not a multiple of the O_DIRECT alignment %d", chunk, offAlign)
	}
	size := si.Size()

	var (
		q        file.Collector[*slot] // the slots with an operation in flight
		b        file.Batch            // operations to start together
		queued   []*slot               // the slots of b's operations
		next     int64                 // the first offset no slot has taken yet
		firstErr error
	)
	// startRead queues a read of the next chunk on s, if there is one.
	startRead := func(s *slot) error {
		if next >= size {
			return nil
		}
		s.off, s.writing = next, false
		s.want = int(min(int64(chunk), size-next))
		next += int64(s.want)
		// Read a whole chunk even at the end: O_DIRECT lengths must be
		// aligned, and the kernel stops at end of file.
		op, err := b.ReadAt(src, s.buf, s.off)
		s.op = op
		queued = append(queued, s)
		return err
	}
	// startWrite queues the write of what s read, rounded up to the
	// alignment and zero-padded.
	startWrite := func(s *slot) error {
		wlen := (s.want + offAlign - 1) / offAlign * offAlign
		clear(s.buf[s.want:wlen])
		s.writing = true
		op, err := b.WriteAt(dst, s.buf[:wlen], s.off)
		s.op = op
		queued = append(queued, s)
		return err
	}
	// submit starts what was queued, with one system call.
	submit := func() error {
		err := b.Submit()
		for _, s := range queued {
			if aerr := q.Add(s.op, s); aerr != nil && err == nil {
				err = aerr
			}
		}
		queued = queued[:0]
		st.maxInFlight = max(st.maxInFlight, q.Len())
		return err
	}
	// done handles the completion of s's operation.
	done := func(s *slot) error {
		n, err := s.op.Wait() // the buffer is ours again once Wait returns
		if !s.writing && err == io.EOF {
			err = nil // the last chunk is short: n says how short
		}
		if err != nil {
			return err
		}
		switch {
		case !s.writing && n != s.want:
			return fmt.Errorf("%s: short read at %d (%d of %d bytes): did the file change?", srcName, s.off, n, s.want)
		case !s.writing:
			return startWrite(s)
		default:
			// The chunk is copied; the slot takes the next one, if any.
			st.bytes += int64(s.want)
			st.chunks++
			return startRead(s)
		}
	}

	for i := 0; i < depth && next < size; i++ {
		buf, err := file.AlignedBuffer(chunk, memAlign)
		if err != nil {
			return st, err
		}
		if err := startRead(&slot{buf: buf}); err != nil {
			return st, err
		}
	}
	firstErr = submit()
	for q.Len() > 0 {
		s, _ := q.Next()
		for ok := true; ok; s, ok = q.TryNext() {
			if err := done(s); err != nil && firstErr == nil {
				firstErr = err
			}
		}
		if firstErr != nil {
			// Drain: wait for everything in flight, start nothing new
			// (what was queued was never started: drop it).
			b, queued = file.Batch{}, queued[:0]
			continue
		}
		if err := submit(); err != nil && firstErr == nil {
			firstErr = err
		}
	}
	if firstErr != nil {
		return st, firstErr
	}
	// Cut the padding of the last chunk, and make the copy durable.
	if err := dst.Truncate(size); err != nil {
		return st, err
	}
	if err := dst.Sync(); err != nil {
		return st, err
	}
	return st, dst.Close()
}
