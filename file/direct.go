package file

import (
	"fmt"
	"io/fs"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// O_DIRECT is the open flag for direct IO, which bypasses the page cache:
// syscall.O_DIRECT, for OpenFile.
const O_DIRECT = syscall.O_DIRECT

// Alignment is what O_DIRECT IO on a file requires: every buffer must
// start at a multiple of Memory, and every offset and length must be a
// multiple of Offset (ReadOffset for reads).
type Alignment struct {
	Memory     int // alignment of buffer addresses, in bytes
	Offset     int // alignment of file offsets and lengths, in bytes
	ReadOffset int // alignment of offsets and lengths for reads; at most Offset
}

// defaultAlignment is assumed when the kernel does not report the DIO
// alignment (before Linux 6.1, or a filesystem that does not fill it in):
// a page satisfies every common block device.
var defaultAlignment = Alignment{Memory: 4096, Offset: 4096, ReadOffset: 4096}

// Alignment returns the alignment O_DIRECT IO on the file requires, from
// statx's STATX_DIOALIGN and STATX_DIO_READ_ALIGN fields (Linux 6.1 and
// 6.14) where the kernel reports them, and 4096 bytes for everything
// otherwise. A File opened with O_DIRECT enforces it.
func (f *File) Alignment() (Alignment, error) {
	if f == nil {
		return Alignment{}, fs.ErrInvalid
	}
	if f.direct {
		return f.align, nil
	}
	if f.osf != nil {
		var st unix.Statx_t
		fd := f.osf.Fd()
		if fd == ^uintptr(0) {
			return Alignment{}, f.closedErr("stat")
		}
		if err := unix.Statx(int(fd), "", unix.AT_EMPTY_PATH, unix.STATX_DIOALIGN|unix.STATX_DIO_READ_ALIGN, &st); err != nil {
			return Alignment{}, f.wrapErr("stat", err)
		}
		return alignmentOf(&st), nil
	}
	if !f.acquire() {
		return Alignment{}, f.closedErr("stat")
	}
	defer f.release()
	a, err := f.statAlignment()
	if err != nil {
		return Alignment{}, f.wrapErr("stat", err)
	}
	return a, nil
}

func (f *File) statAlignment() (Alignment, error) {
	var st unix.Statx_t
	if err := f.statx(unix.STATX_DIOALIGN|unix.STATX_DIO_READ_ALIGN, &st); err != nil {
		return Alignment{}, errnoOf(err)
	}
	return alignmentOf(&st), nil
}

func alignmentOf(st *unix.Statx_t) Alignment {
	if st.Mask&unix.STATX_DIOALIGN == 0 || st.Dio_mem_align == 0 || st.Dio_offset_align == 0 {
		return defaultAlignment
	}
	a := Alignment{
		Memory:     int(st.Dio_mem_align),
		Offset:     int(st.Dio_offset_align),
		ReadOffset: int(st.Dio_offset_align),
	}
	if st.Mask&unix.STATX_DIO_READ_ALIGN != 0 && st.Dio_read_offset_align != 0 && int(st.Dio_read_offset_align) < a.ReadOffset {
		a.ReadOffset = int(st.Dio_read_offset_align)
	}
	return a
}

// AlignedBuffer returns a zeroed buffer of size bytes whose first byte is
// at a multiple of align, a power of two (use Alignment().Memory, or 4096
// for any file). The buffer is ordinary Go memory, owned by the caller and
// freed by the garbage collector once unreferenced. It fails if align is
// not a positive power of two or size is negative.
func AlignedBuffer(size, align int) ([]byte, error) {
	if align <= 0 || align&(align-1) != 0 {
		return nil, fmt.Errorf("file.AlignedBuffer: alignment %d is not a positive power of two: %w", align, syscall.EINVAL)
	}
	if size < 0 {
		return nil, fmt.Errorf("file.AlignedBuffer: negative size %d: %w", size, syscall.EINVAL)
	}
	b := make([]byte, size+align-1)
	skip := 0
	if rem := int(uintptr(unsafe.Pointer(unsafe.SliceData(b))) & uintptr(align-1)); rem != 0 {
		skip = align - rem
	}
	return b[skip : skip+size : skip+size], nil
}

// AlignmentError reports a buffer, offset or length that does not meet
// O_DIRECT's alignment. It is the Err of an *fs.PathError, and matches
// syscall.EINVAL, which the kernel would have returned.
type AlignmentError struct {
	What  string // "buffer address", "offset" or "length"
	Value int64  // the misaligned value
	Align int    // the alignment required
}

// Error says which value is misaligned and the alignment it needs.
func (e *AlignmentError) Error() string {
	if e.What == "buffer address" {
		return fmt.Sprintf("O_DIRECT %s %#x is not a multiple of %d", e.What, e.Value, e.Align)
	}
	return fmt.Sprintf("O_DIRECT %s %d is not a multiple of %d", e.What, e.Value, e.Align)
}

// Unwrap returns syscall.EINVAL.
func (e *AlignmentError) Unwrap() error { return syscall.EINVAL }

// checkDirect checks b (and off, if hasOff) against the File's O_DIRECT
// alignment for a read or a write.
func (f *File) checkDirect(b []byte, off int64, hasOff, write bool) error {
	offAlign := f.align.ReadOffset
	if write {
		offAlign = f.align.Offset
	}
	return checkAlign(f.align.Memory, offAlign, b, off, hasOff)
}

func checkAlign(mem, offAlign int, b []byte, off int64, hasOff bool) error {
	if len(b) > 0 {
		if addr := uintptr(unsafe.Pointer(unsafe.SliceData(b))); addr&uintptr(mem-1) != 0 {
			return &AlignmentError{What: "buffer address", Value: int64(addr), Align: mem}
		}
	}
	if hasOff && off&int64(offAlign-1) != 0 {
		return &AlignmentError{What: "offset", Value: off, Align: offAlign}
	}
	if len(b)&(offAlign-1) != 0 {
		return &AlignmentError{What: "length", Value: int64(len(b)), Align: offAlign}
	}
	return nil
}
