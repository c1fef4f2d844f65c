//go:build race

package rio

import (
	"runtime"
	"unsafe"
)

// In race-enabled builds, the kernel's access to an operation's buffers is
// modelled as an access by a goroutine of its own, started at submission.
// It starts with the submitter's view of memory, so what the caller did
// before submitting is ordered before it; whatever the caller does to the
// buffers after submitting is not, and the race detector reports it. The
// reaper waits for that goroutine before it publishes the result, so what
// the caller does after Wait returns is ordered after it.
func raceSubmit(o *op) {
	var bufs [][]byte
	if o.x != nil {
		bufs = o.x.bufs
	}
	if o.bufp == nil && len(bufs) == 0 {
		return
	}
	done := make(chan struct{})
	o.extra().raceDone = done
	buf, write := o.buf(), o.kernelWrites
	go func() {
		access := runtime.RaceReadRange
		if write {
			access = runtime.RaceWriteRange
		}
		if len(buf) > 0 {
			access(unsafe.Pointer(unsafe.SliceData(buf)), len(buf))
		}
		for _, b := range bufs {
			if len(b) > 0 {
				access(unsafe.Pointer(unsafe.SliceData(b)), len(b))
			}
		}
		close(done)
	}()
}

func raceComplete(o *op) {
	if o.x != nil && o.x.raceDone != nil {
		<-o.x.raceDone
		o.x.raceDone = nil
	}
}

const raceEnabled = true
