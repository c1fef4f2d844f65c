package file

import (
	"io"
	"io/fs"
	"os"
	"runtime"
	"slices"
	"sync"
	"syscall"

	"github.com/gorio/rio"
	"github.com/gorio/rio/internal/shortcall"
	"golang.org/x/sys/unix"
)

// ReadFile reads the named file and returns its contents, as os.ReadFile
// does: a successful call returns a nil error, not io.EOF, and errors are
// *fs.PathError with Op "open" or "read".
//
// The file is opened and closed through the ring. A regular file is read
// as a File reads: what the page cache holds with preadv2(RWF_NOWAIT),
// which never waits for the disk, the rest through the ring. Other files
// (pipes, devices) are read with a File's Read. Unlike os.ReadFile, it
// takes a regular file's size from fstat as the end when it has read that
// much, instead of reading once more to see end of file: a file growing
// while ReadFile reads it may be returned without the growth.
func ReadFile(name string) ([]byte, error) {
	r, useOS, err := pathRing()
	if useOS {
		return os.ReadFile(name)
	}
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	fd, err := openAt(r, unix.AT_FDCWD, name, unix.O_RDONLY, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	var st unix.Stat_t
	if unix.Fstat(fd, &st) != nil {
		st = unix.Stat_t{}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		f := newFile(r, fd, name, os.O_RDONLY)
		defer f.Close()
		return readFileContents(st.Size, false, f.Read)
	}
	defer closeRaw(r, fd)
	if parts := min(runtime.GOMAXPROCS(0), maxParts); st.Size >= parallelMin && parts > 1 && int64(int(st.Size)) == st.Size {
		return readParallel(r, fd, name, int(st.Size), parts)
	}
	fr := fileReader{r: r, fd: fd, name: name, nowait: true}
	return readFileContents(st.Size, st.Size > 0, fr.read)
}

// A big regular file is read in parts, one per P (up to maxParts), from as
// many goroutines: copying from the page cache, and the page faults on the
// new buffer, then use every core, where one read(2) uses one. Each part
// is read as a File reads, RWF_NOWAIT first and the ring for the rest, in
// pieces of 4 MiB made without the scheduler's system call bookkeeping
// (shortcall.CopySyscall6), so that the goroutines keep their Ps and no
// thread is started meanwhile.
const (
	parallelMin = 64 << 20
	maxParts    = 4
)

// readParallel reads size bytes of fd in parts. If a part ends early (the
// file shrank) or fails, the result is what precedes it, with its error,
// as a sequential read would have returned.
func readParallel(r *rio.Ring, fd int, name string, size, parts int) ([]byte, error) {
	data := make([]byte, size)
	per := (size/parts + 1<<21 - 1) &^ (1<<21 - 1) // 2 MiB multiples
	got := make([]int, parts)
	errs := make([]error, parts)
	var wg sync.WaitGroup
	for i := range parts {
		start, end := min(i*per, size), min((i+1)*per, size)
		read := func() {
			fr := fileReader{r: r, fd: fd, name: name, off: int64(start), nowait: true, piece: true}
			for got[i] < end-start {
				n, err := fr.read(data[start+got[i] : min(end, start+got[i]+shortcall.CopyMax)])
				got[i] += n
				if err != nil {
					errs[i] = err
					return
				}
			}
		}
		if i == parts-1 {
			read()
		} else {
			wg.Go(read)
		}
	}
	wg.Wait()
	n := 0
	for i := range parts {
		n += got[i]
		if start, end := min(i*per, size), min((i+1)*per, size); got[i] < end-start {
			err := errs[i]
			if err == io.EOF {
				err = nil
			}
			return data[:n], err
		}
	}
	return data, nil
}

// readFileContents is os's: it reads with read until an error or io.EOF,
// into a buffer of statSize+1 bytes (at least 512), grown as needed. If
// sizeKnown, statSize bytes read are the end.
func readFileContents(statSize int64, sizeKnown bool, read func([]byte) (int, error)) ([]byte, error) {
	zeroSize := statSize == 0
	var size int
	if int64(int(statSize)) == statSize {
		size = int(statSize)
	}
	size++ // one byte for the final read at end of file
	const minBuf = 512
	if size < minBuf {
		size = minBuf // Linux's /proc files claim 0 bytes and need big reads
	}
	data := make([]byte, 0, size)
	for {
		n, err := read(data[len(data):cap(data)])
		data = data[:len(data)+n]
		if err != nil {
			if err == io.EOF {
				err = nil
			}
			return data, err
		}
		if sizeKnown && int64(len(data)) == statSize {
			return data, nil
		}
		capRemain := cap(data) - len(data)
		if capRemain == 0 || (zeroSize && capRemain < minBuf) {
			data = slices.Grow(data, minBuf)
		}
	}
}

// fileReader reads a regular file from offset 0 on, as File.Read does.
type fileReader struct {
	r      *rio.Ring
	fd     int
	name   string
	off    int64
	nowait bool // try preadv2(RWF_NOWAIT) first
	piece  bool // reads are pieces of a parallel ReadFile: raw
}

func (fr *fileReader) read(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	for {
		if fr.nowait {
			var n int
			var errno syscall.Errno
			if fr.piece {
				n, errno = preadNowaitPiece(fr.fd, b, fr.off)
			} else {
				n, errno = preadNowait(fr.fd, b, fr.off)
			}
			switch errno {
			case 0:
				if n == 0 {
					return 0, io.EOF
				}
				fr.off += int64(n)
				return n, nil
			case syscall.EINTR:
				continue
			case syscall.EAGAIN:
				// Not cached: through the ring.
			default:
				// No RWF_NOWAIT here, or an error, which the ring reports.
				fr.nowait = false
			}
		}
		n, err := fr.r.ReadAt(fr.fd, b, fr.off).Wait()
		if err != nil {
			if e := errnoOf(err); e == syscall.EINTR || e == syscall.EAGAIN {
				continue
			}
			return 0, &fs.PathError{Op: "read", Path: fr.name, Err: errnoOf(err)}
		}
		if n == 0 {
			return 0, io.EOF
		}
		fr.off += int64(n)
		return n, nil
	}
}
