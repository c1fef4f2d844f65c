package file

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/gorio/rio"
)

// requireCancelFd skips t (or fails it under RIO_REQUIRE_URING=1) without
// cancellation by descriptor (Linux 5.19).
func requireCancelFd(t *testing.T, r *rio.Ring) {
	t.Helper()
	skipUnsupported(t, r.Supported("ASYNC_CANCEL"))
	if _, err := r.CancelFd(-1).Wait(); errors.Is(err, syscall.EINVAL) {
		skipUnsupported(t, &rio.FeatureError{Feature: "IORING_ASYNC_CANCEL_FD", MinKernel: "5.19", Err: err})
	}
}

// fifo creates a FIFO in t's temporary directory.
func fifo(t *testing.T) string {
	t.Helper()
	name := filepath.Join(t.TempDir(), "fifo")
	require.NoError(t, unix.Mkfifo(name, 0o600))
	return name
}

// Issue 11, item 2: on a WithEntries(4) ring whose every user slot is held
// by blocked reads of FIFOs, Close of each File returns: its cancellation
// takes a slot kept for cancellations instead of one only the reads it
// cancels could free. Before the fix, the first Close deadlocked.
func TestCloseFIFOReadersOnFullRing(t *testing.T) {
	checkLeaks(t)
	r := newRing(t, rio.WithEntries(4))
	requireCancelFd(t, r)
	const n = 8 // more readers than the ring has slots (7): some wait in its queue
	files := make([]*File, n)
	errc := make(chan error, n)
	for i := range files {
		// Open them all first: an Open on the full ring would wait for a
		// slot too.
		f, err := OpenFileRing(r, fifo(t), os.O_RDWR, 0) // O_RDWR: no wait for a writer
		require.NoError(t, err)
		files[i] = f
	}
	for _, f := range files {
		go func() {
			_, err := f.Read(make([]byte, 8))
			errc <- err
		}()
	}
	for r.Stats().InFlight+r.Stats().Queued < n {
		time.Sleep(time.Millisecond) // let the reads block (not a timing assertion)
	}
	for _, f := range files {
		// within runs the function on a goroutine of its own: assert, and
		// stop the test from here.
		var ok bool
		if !within(t, 20*time.Second, "Close of a FIFO reader on a full ring", func() { ok = assert.NoError(t, f.Close()) }) || !ok {
			t.FailNow()
		}
	}
	for range files {
		err := <-errc
		assert.ErrorIs(t, err, fs.ErrClosed)
	}
}

// Issue 11, item 2: blocked FIFO reads, more than a ring holds, do not
// make unrelated Opens, reads and Closes wait: the reads of streams go to
// rings of their own, one added whenever those are full. Before the fix,
// 448 blocked reads (the shared ring's capacity) made the next Open block.
func TestSharedRingsGrow(t *testing.T) {
	first := sharedRing(t)
	requireCancelFd(t, first)
	const capacity = 448 // 512 CQ entries less the 64 kept for cancellations
	n := capacity + 16
	files := make([]*File, n)
	errc := make(chan error, n)
	for i := range files {
		f, err := OpenFile(fifo(t), os.O_RDWR, 0) // O_RDWR: no wait for a writer
		require.NoError(t, err)
		files[i] = f
		go func() {
			_, err := f.Read(make([]byte, 8))
			errc <- err
		}()
	}
	inFlight := func() (n int) {
		for _, r := range streamRings.load() {
			n += r.Stats().InFlight
		}
		return n
	}
	for inFlight() < n {
		time.Sleep(time.Millisecond) // let the reads block (not a timing assertion)
	}
	assert.Greater(t, len(streamRings.load()), 1, "the rings for streams grew")
	assert.Zero(t, first.Stats().InFlight, "no read of a stream holds a slot of DefaultRing")
	data := []byte("unrelated")
	name := writeTemp(t, data)
	// within runs these functions on a goroutine of its own: they assert
	// and return, and the test stops from here if they failed.
	var ok bool
	if !within(t, 20*time.Second, "an unrelated Open, read and Close", func() {
		f, err := Open(name)
		if !assert.NoError(t, err) {
			return
		}
		defer f.Close()
		got := make([]byte, len(data))
		_, err = f.ReadAt(got, 0)
		if !assert.NoError(t, err) {
			return
		}
		assert.Equal(t, data, got)
		ok = assert.NoError(t, f.Close())
	}) || !ok {
		t.FailNow()
	}
	ok = false
	if !within(t, 20*time.Second, "Close of the FIFO readers", func() {
		for _, f := range files {
			if !assert.NoError(t, f.Close()) {
				return
			}
		}
		ok = true
	}) || !ok {
		t.FailNow()
	}
	for range files {
		assert.ErrorIs(t, <-errc, fs.ErrClosed)
	}
}

// Issue 11, item 7: every method of a zero File fails with an error
// matching EINVAL (or fs.ErrClosed), as those of a nil *os.File do, and
// none touches fd 0.
// Before the fix, Close and Stat panicked.
func TestZeroFile(t *testing.T) {
	v := reflect.ValueOf(&File{})
	for i := 0; i < v.NumMethod(); i++ {
		m := v.Type().Method(i)
		fn := v.Method(i)
		args := make([]reflect.Value, fn.Type().NumIn())
		for j := range args {
			args[j] = reflect.Zero(fn.Type().In(j))
		}
		switch m.Name {
		case "ReadFrom":
			args[0] = reflect.ValueOf(io.Reader(&zeroReader{}))
		case "WriteTo":
			args[0] = reflect.ValueOf(io.Writer(io.Discard))
		case "Read", "Write", "ReadAt", "WriteAt", "ReadAtAsync", "WriteAtAsync":
			args[0] = reflect.ValueOf(make([]byte, 1))
		}
		var out []reflect.Value
		func() {
			defer func() {
				if p := recover(); p != nil {
					assert.Failf(t, "panic", "%s panicked: %v", m.Name, p)
				}
			}()
			out = fn.Call(args)
		}()
		for _, o := range out {
			if err, ok := o.Interface().(error); ok {
				assert.True(t, errors.Is(err, syscall.EINVAL) || errors.Is(err, fs.ErrClosed), "%s: %v, want an error matching EINVAL or fs.ErrClosed", m.Name, err)
			}
		}
		if m.Name == "Fd" {
			assert.Equal(t, ^uintptr(0), out[0].Interface(), "Fd of a zero File")
		}
	}
}

type zeroReader struct{}

func (zeroReader) Read(b []byte) (int, error) { return 0, io.EOF }
