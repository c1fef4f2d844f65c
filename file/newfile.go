package file

import (
	"os"

	"golang.org/x/sys/unix"
)

// NewFile returns a File for descriptor fd, with the given name, as
// os.NewFile does, and nil if fd is not an open descriptor. The File owns
// fd from then on: Close closes it. Its IO goes through the shared Ring
// (where io_uring is unavailable, it delegates to os.NewFile's *os.File,
// unless SetFallback(false) was called; NewFile then returns nil). The
// File's position starts at the descriptor's offset; as with Open, the
// File keeps it, so the descriptor's own offset follows Seek but not Read
// and Write.
func NewFile(fd uintptr, name string) *File {
	ifd := int(fd)
	if ifd < 0 || uintptr(ifd) != fd {
		return nil
	}
	flag, err := unix.FcntlInt(fd, unix.F_GETFL, 0)
	if err != nil {
		return nil
	}
	r, err := defaultRingFn()
	if err != nil {
		if !fallback.Load() {
			return nil
		}
		return &File{name: name, osf: os.NewFile(fd, name), fd: -1}
	}
	f := newFile(r, ifd, name, flag)
	if f.direct {
		if f.align, err = f.statAlignment(); err != nil {
			f.align = defaultAlignment
		}
	}
	return f
}
