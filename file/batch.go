package file

import "github.com/gorio/rio"

// Batch queues asynchronous reads and writes, on one File or several, so
// that Submit starts them together: with one io_uring_enter per Ring for up
// to Cap operations (rio.Batch.Cap), instead of one per operation. The
// operations are independent: each completes on its own, in any order (a
// Collector returns them in that order).
//
// The zero Batch is empty and ready to use. A Batch is not safe for
// concurrent use; it can be reused after Submit. The buffers of queued
// operations belong to the kernel from Submit until Wait on their Op has
// returned.
type Batch struct {
	ops   []*Op
	rings []ringBatch
}

type ringBatch struct {
	r *rio.Ring
	b *rio.Batch
}

// ReadAt queues a read of len(p) bytes of f at offset off, as
// File.ReadAtAsync, and returns its Op, which Submit starts. An operation
// that could not start is reported at once, as by ReadAtAsync, and not
// queued.
func (b *Batch) ReadAt(f *File, p []byte, off int64) (*Op, error) {
	return b.queue(f, false, p, off)
}

// WriteAt queues a write of p to f at offset off, as File.WriteAtAsync.
func (b *Batch) WriteAt(f *File, p []byte, off int64) (*Op, error) {
	return b.queue(f, true, p, off)
}

func (b *Batch) queue(f *File, write bool, p []byte, off int64) (*Op, error) {
	o, err := f.newOp(write, p, off)
	if err != nil {
		return nil, err
	}
	b.ops = append(b.ops, o)
	return o, nil
}

// Len returns the number of operations queued.
func (b *Batch) Len() int { return len(b.ops) }

// Submit starts every queued operation and empties the Batch. An operation
// whose File was closed after it was queued fails with fs.ErrClosed and is
// not started. Submit returns the first error of a group that could not be
// submitted (a closed Ring, say); the Ops of that group fail with it. Either
// way every Op's Wait returns its result.
func (b *Batch) Submit() error {
	ops := b.ops
	defer func() {
		clear(b.ops)
		b.ops = b.ops[:0]
	}()
	var first error
	for len(ops) > 0 {
		r := ops[0].f.ring
		rb := b.batchFor(r)
		// This Ring's operations, in order, in groups of Cap.
		var started []*Op
		rest := ops[:0:0]
		for _, o := range ops {
			if o.f.ring != r {
				rest = append(rest, o)
				continue
			}
			if !o.f.acquire() {
				// Its descriptor may be closed, even reused: start a NOP
				// in its place, which stands for it in a Collector.
				o.err0 = o.f.closedErr(o.opName())
				o.nop = rb.Nop()
			} else {
				if o.write {
					o.c = rb.WriteAt(o.f.fd, o.b, o.off)
				} else {
					o.c = rb.ReadAt(o.f.fd, o.b, o.off)
				}
				started = append(started, o)
			}
			if rb.Len() == rb.Cap() {
				if err := submitGroup(rb, started); err != nil && first == nil {
					first = err
				}
				started = started[:0]
			}
		}
		if rb.Len() > 0 {
			if err := submitGroup(rb, started); err != nil && first == nil {
				first = err
			}
		}
		ops = rest
	}
	return first
}

// submitGroup submits rb and hands the started operations to their Files,
// which Close waits for; the Files were acquired when the operations were
// queued in rb, and are released here.
func submitGroup(rb *rio.Batch, started []*Op) error {
	err := rb.Submit()
	for _, o := range started {
		o.f.track(o.c)
		o.f.release()
	}
	return err
}

func (b *Batch) batchFor(r *rio.Ring) *rio.Batch {
	for _, rb := range b.rings {
		if rb.r == r {
			return rb.b
		}
	}
	rb := r.NewBatch()
	b.rings = append(b.rings, ringBatch{r, rb})
	return rb
}
