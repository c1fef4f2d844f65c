package rio

import (
	"fmt"
	"math"
	"runtime"
	"syscall"
	"unsafe"

	"github.com/gorio/rio/internal/uring"
	"golang.org/x/sys/unix"
)

// RegisterBuffers registers bufs with the kernel for ReadFixedAt and
// WriteFixedAt, which then skip mapping their pages per operation. The ring
// keeps the buffers referenced and pinned until UnregisterBuffers or Close;
// the caller keeps using them, as fixed operations' data, but must not let
// them go. Only one set is registered at a time.
func (r *Ring) RegisterBuffers(bufs [][]byte) error {
	if !r.usable() {
		return errBadRing
	}
	if len(bufs) == 0 || len(bufs) > math.MaxUint16 {
		return argError("RegisterBuffers", fmt.Errorf("%d buffers: %w", len(bufs), syscall.EINVAL))
	}
	iov := make([]unix.Iovec, len(bufs))
	var pin runtime.Pinner
	for i, b := range bufs {
		if len(b) == 0 {
			pin.Unpin()
			return argError("RegisterBuffers", fmt.Errorf("buffer %d is empty: %w", i, syscall.EINVAL))
		}
		pin.Pin(unsafe.SliceData(b))
		iov[i].Base = unsafe.SliceData(b)
		iov[i].SetLen(len(b))
	}
	r.regMu.Lock()
	defer r.regMu.Unlock()
	if err := r.liveLocked(); err != nil {
		pin.Unpin()
		return err
	}
	_, err := r.k.Register(uring.RegisterBuffers, unsafe.Pointer(&iov[0]), uint32(len(iov)))
	runtime.KeepAlive(iov)
	if err != nil {
		pin.Unpin()
		return err
	}
	r.regBufs = bufs
	r.regPin = pin
	return nil
}

// UnregisterBuffers drops the registered buffers. Fixed operations still in
// flight keep their own reference to the pages they use.
func (r *Ring) UnregisterBuffers() error {
	if !r.usable() {
		return errBadRing
	}
	r.regMu.Lock()
	defer r.regMu.Unlock()
	if err := r.liveLocked(); err != nil {
		return err
	}
	if _, err := r.k.Register(uring.UnregisterBuffers, nil, 0); err != nil {
		return err
	}
	r.regBufs = nil
	r.regPin.Unpin()
	return nil
}

// RegisterFiles installs fds in the ring's registered file table; entry i is
// then FixedFile(i) for any operation. A -1 leaves a slot empty for
// UpdateFiles. The kernel holds its own reference to each file, so the
// caller may close its descriptors.
func (r *Ring) RegisterFiles(fds []int) error {
	if len(fds) == 0 {
		return argError("RegisterFiles", fmt.Errorf("no files: %w", syscall.EINVAL))
	}
	arr := make([]int32, len(fds))
	for i, fd := range fds {
		arr[i] = int32(fd)
	}
	if !r.usable() {
		return errBadRing
	}
	r.regMu.Lock()
	defer r.regMu.Unlock()
	if err := r.liveLocked(); err != nil {
		return err
	}
	_, err := r.k.Register(uring.RegisterFiles, unsafe.Pointer(&arr[0]), uint32(len(arr)))
	runtime.KeepAlive(arr)
	return err
}

// UpdateFiles replaces entries off, off+1, ... of the registered file table
// with fds (-1 empties an entry).
func (r *Ring) UpdateFiles(off int, fds []int) error {
	if len(fds) == 0 || off < 0 {
		return argError("UpdateFiles", fmt.Errorf("offset %d, %d files: %w", off, len(fds), syscall.EINVAL))
	}
	arr := make([]int32, len(fds))
	for i, fd := range fds {
		arr[i] = int32(fd)
	}
	up := uring.FilesUpdate{Offset: uint32(off), Fds: uring.SliceAddr(arr)}
	if !r.usable() {
		return errBadRing
	}
	r.regMu.Lock()
	defer r.regMu.Unlock()
	if err := r.liveLocked(); err != nil {
		return err
	}
	_, err := r.k.Register(uring.RegisterFilesUpdate, unsafe.Pointer(&up), uint32(len(arr)))
	runtime.KeepAlive(arr)
	return err
}

// UnregisterFiles empties the registered file table.
func (r *Ring) UnregisterFiles() error {
	if !r.usable() {
		return errBadRing
	}
	r.regMu.Lock()
	defer r.regMu.Unlock()
	if err := r.liveLocked(); err != nil {
		return err
	}
	_, err := r.k.Register(uring.UnregisterFiles, nil, 0)
	return err
}

func (r *Ring) liveLocked() error {
	if r.closedA.Load() {
		return ErrClosed
	}
	return nil
}
