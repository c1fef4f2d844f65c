// Package prog generates random programs of file operations, runs them
// through a rio.Ring, over the real kernel or a simulated one, and runs them
// against an in-memory model of the files. The observations of both, and the
// files' final contents, must be equal whatever the kernel does: the Runner
// completes short writes and reads, retries EINTR and EAGAIN, and repairs
// chains that a short or failed link broke, as a correct adapter must.
//
// Broken variants of the Runner (see Broken) leave one of those out; tests
// use them to show that each fault class of the simulated kernel catches
// the bug it is meant to catch.
//
// rio's own model tests and fuzzers use it; it lives beside riotest, not
// under internal/, because it drives a rio.Ring, and nothing under
// internal/ imports package rio (the layering is adapters, then rio, then
// internal).
package prog

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"syscall"

	"github.com/gorio/rio"
	"golang.org/x/sys/unix"
)

// Kind is the kind of an operation of a program.
type Kind uint8

// The operations a program is made of.
const (
	Write        Kind = iota // WriteAt of Parts[0]
	Read                     // ReadAt of Len bytes at Off
	Writev                   // WritevAt of Parts, consecutive from Off
	Readv                    // ReadvAt of Len bytes at Off, into three buffers
	Fsync                    // Fsync
	Fdatasync                // Fdatasync
	Fallocate                // Fallocate mode 0 of Len bytes at Off
	Truncate                 // Ftruncate to Len
	Stat                     // Statx of the size
	Nop                      // Nop
	LinkedWrites             // WriteAt of each Part, linked in order, then a linked Fsync
	BatchWrites              // WriteAt of each Part (disjoint), in one Batch
	DrainRead                // WriteAt of Parts[0], then a drained ReadAt of Len at Off
	NumKinds
)

var kindNames = [...]string{"write", "read", "writev", "readv", "fsync", "fdatasync", "fallocate",
	"truncate", "stat", "nop", "linked-writes", "batch-writes", "drain-read"}

// String returns the kind's short name, as programs print it.
func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("kind%d", k)
}

// Part is data written at an offset.
type Part struct {
	Off  int64
	Data []byte
}

// Op is one operation of a program, on file File.
type Op struct {
	Kind  Kind
	File  int
	Off   int64
	Len   int64
	Parts []Part
}

// Obs is what an operation was observed to do.
type Obs struct {
	Kind string
	N    int64  // bytes transferred (all writes of the op together), or the size Stat saw
	Err  string // errno name, or ""
	Data string // bytes read
	Size int64  // file size after the operation
}

// Limits of generated programs, small enough for fast tests.
const (
	maxOff = 48 << 10
	maxLen = 12 << 10
)

// Gen returns a random program of n operations on nfiles files.
func Gen(rng *rand.Rand, nfiles, n int) []Op {
	prog := make([]Op, n)
	data := func(l int) []byte {
		b := make([]byte, l)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	off := func() int64 {
		if rng.IntN(3) == 0 {
			return rng.Int64N(4096)
		}
		return rng.Int64N(maxOff)
	}
	for i := range prog {
		op := Op{Kind: Kind(rng.IntN(int(NumKinds))), File: rng.IntN(nfiles), Off: off(), Len: 1 + rng.Int64N(maxLen)}
		switch op.Kind {
		case Write, DrainRead:
			op.Parts = []Part{{Off: off(), Data: data(1 + rng.IntN(maxLen))}}
		case Writev:
			for j := rng.IntN(4); j >= 0; j-- {
				op.Parts = append(op.Parts, Part{Data: data(rng.IntN(maxLen / 2))})
			}
		case LinkedWrites:
			for j := rng.IntN(3); j >= 0; j-- {
				op.Parts = append(op.Parts, Part{Off: off(), Data: data(1 + rng.IntN(maxLen/2))})
			}
		case BatchWrites:
			// Disjoint, so that their order does not matter.
			at := rng.Int64N(4096)
			for j := rng.IntN(4); j >= 0; j-- {
				l := 1 + rng.IntN(maxLen/4)
				op.Parts = append(op.Parts, Part{Off: at, Data: data(l)})
				at += int64(l) + rng.Int64N(4096)
			}
			rng.Shuffle(len(op.Parts), func(a, b int) { op.Parts[a], op.Parts[b] = op.Parts[b], op.Parts[a] })
		case Truncate:
			op.Len = rng.Int64N(maxOff + maxLen)
		}
		prog[i] = op
	}
	return prog
}

// Decode turns arbitrary bytes (from a fuzzer) into a program on nfiles
// files: every input is a valid program.
func Decode(b []byte, nfiles int) []Op {
	rd := func(n int) uint64 {
		var v uint64
		for i := 0; i < n; i++ {
			v <<= 8
			if len(b) > 0 {
				v |= uint64(b[0])
				b = b[1:]
			}
		}
		return v
	}
	data := func(l int, fill byte) []byte {
		d := make([]byte, l)
		for i := range d {
			d[i] = fill + byte(i*7)
		}
		return d
	}
	var prog []Op
	for len(b) > 0 && len(prog) < 64 {
		h := rd(1)
		op := Op{Kind: Kind(h % uint64(NumKinds)), File: int(h>>5) % nfiles}
		op.Off = int64(rd(2) % maxOff)
		op.Len = int64(1 + rd(2)%maxLen)
		nparts := int(1 + rd(1)%3)
		fill := byte(rd(1))
		switch op.Kind {
		case Write, DrainRead:
			op.Parts = []Part{{Off: op.Off, Data: data(int(op.Len), fill)}}
		case Writev:
			for j := 0; j < nparts; j++ {
				op.Parts = append(op.Parts, Part{Data: data(int(op.Len)/nparts, fill+byte(j))})
			}
		case LinkedWrites:
			for j := 0; j < nparts; j++ {
				op.Parts = append(op.Parts, Part{Off: (op.Off + int64(j)*1000) % maxOff, Data: data(int(op.Len)/nparts+1, fill+byte(j))})
			}
		case BatchWrites:
			at := op.Off
			for j := 0; j < nparts; j++ {
				l := int(op.Len)/nparts + 1
				op.Parts = append(op.Parts, Part{Off: at, Data: data(l, fill+byte(j))})
				at += int64(l) + 17
			}
		case Truncate:
			op.Len = op.Off
		}
		prog = append(prog, op)
	}
	return prog
}

// ErrName names an error for observations: the errno's name, or the text.
func ErrName(err error) string {
	if err == nil {
		return ""
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return unix.ErrnoName(errno)
	}
	return err.Error()
}

// Model runs prog against in-memory files and returns the observations and
// the files' final contents.
func Model(nfiles int, prog []Op) ([]Obs, [][]byte) {
	files := make([][]byte, nfiles)
	write := func(f int, off int64, d []byte) {
		if len(d) == 0 {
			return // writing nothing does not extend a file, even past its end
		}
		if end := off + int64(len(d)); end > int64(len(files[f])) {
			files[f] = append(files[f], make([]byte, end-int64(len(files[f])))...)
		}
		copy(files[f][off:], d)
	}
	read := func(f int, off, l int64) string {
		if off >= int64(len(files[f])) {
			return ""
		}
		return string(files[f][off:min(off+l, int64(len(files[f])))])
	}
	var obs []Obs
	for _, op := range prog {
		o := Obs{Kind: op.Kind.String()}
		f := op.File
		switch op.Kind {
		case Write, Writev, LinkedWrites, BatchWrites, DrainRead:
			at := op.Off
			for _, p := range op.Parts {
				if op.Kind == Writev {
					write(f, at, p.Data)
					at += int64(len(p.Data))
				} else {
					write(f, p.Off, p.Data)
				}
				o.N += int64(len(p.Data))
			}
			if op.Kind == DrainRead {
				o.Data = read(f, op.Off, op.Len)
			}
		case Read, Readv:
			o.Data = read(f, op.Off, op.Len)
			o.N = int64(len(o.Data))
		case Fallocate:
			if end := op.Off + op.Len; end > int64(len(files[f])) {
				files[f] = append(files[f], make([]byte, end-int64(len(files[f])))...)
			}
		case Truncate:
			if op.Len <= int64(len(files[f])) {
				files[f] = files[f][:op.Len]
			} else {
				files[f] = append(files[f], make([]byte, op.Len-int64(len(files[f])))...)
			}
		case Stat:
			o.N = int64(len(files[f]))
		}
		o.Size = int64(len(files[f]))
		obs = append(obs, o)
	}
	return obs, files
}

// Broken selects deliberately broken behaviours of the Runner.
type Broken struct {
	// IgnoreShortWrite takes a write's first result for the whole write.
	IgnoreShortWrite bool
	// IgnoreShortRead takes a read's first result as all there is.
	IgnoreShortRead bool
	// NoRetry reports EINTR and EAGAIN instead of retrying.
	NoRetry bool
	// IgnoreLinkCancel assumes that the operations after a link succeeded
	// if the first one did: it does not check them for ECANCELED.
	IgnoreLinkCancel bool
}

// Runner runs programs through a Ring on real files.
type Runner struct {
	Ring   *rio.Ring
	Files  []*os.File
	Broken Broken
}

func retryable(err error) bool {
	return errors.Is(err, syscall.EINTR) || errors.Is(err, syscall.EAGAIN)
}

// again reports whether to retry after err.
func (x *Runner) again(err error) bool { return !x.Broken.NoRetry && retryable(err) }

// writeAll writes d at off, completing short writes. first is the result
// of a write of d already submitted, if any.
func (x *Runner) writeAll(fd int, d []byte, off int64, first *rio.Completion[int]) (int64, error) {
	var done int64
	for {
		c := first
		first = nil
		if c == nil {
			c = x.Ring.WriteAt(fd, d[done:], off+done)
		}
		n, err := c.Wait()
		if err != nil {
			if x.again(err) {
				continue
			}
			return done, err
		}
		if x.Broken.IgnoreShortWrite {
			return int64(len(d)), nil
		}
		done += int64(n)
		if done >= int64(len(d)) {
			return done, nil
		}
		if n == 0 {
			return done, syscall.EIO
		}
	}
}

// readFull reads l bytes at off, completing short reads, up to end of file.
func (x *Runner) readFull(fd int, l, off int64, first func(b []byte) *rio.Completion[int]) ([]byte, error) {
	buf := make([]byte, l)
	var done int64
	for done < l {
		var c *rio.Completion[int]
		if first != nil {
			c, first = first(buf), nil
		} else {
			c = x.Ring.ReadAt(fd, buf[done:], off+done)
		}
		n, err := c.Wait()
		if err != nil {
			if x.again(err) {
				continue
			}
			return buf[:done], err
		}
		done += int64(n)
		if n == 0 || x.Broken.IgnoreShortRead {
			break
		}
	}
	return buf[:done], nil
}

// do waits for c, retrying it with again() on EINTR and EAGAIN.
func (x *Runner) do(submit func() *rio.Completion[struct{}]) error {
	for {
		_, err := submit().Wait()
		if err != nil && x.again(err) {
			continue
		}
		return err
	}
}

// Run runs prog and returns its observations.
func (x *Runner) Run(prog []Op) []Obs {
	var obs []Obs
	for _, op := range prog {
		obs = append(obs, x.run(op))
	}
	return obs
}

func (x *Runner) run(op Op) Obs {
	r := x.Ring
	f := x.Files[op.File]
	fd := int(f.Fd())
	o := Obs{Kind: op.Kind.String()}
	var err error
	switch op.Kind {
	case Write:
		o.N, err = x.writeAll(fd, op.Parts[0].Data, op.Parts[0].Off, nil)
	case Writev:
		bufs := make([][]byte, len(op.Parts))
		for i, p := range op.Parts {
			bufs[i] = p.Data
		}
		o.N, err = x.writev(fd, bufs, op.Off)
	case Read:
		var d []byte
		d, err = x.readFull(fd, op.Len, op.Off, nil)
		o.Data, o.N = string(d), int64(len(d))
	case Readv:
		var d []byte
		d, err = x.readFull(fd, op.Len, op.Off, func(b []byte) *rio.Completion[int] {
			a, c := len(b)/3, 2*len(b)/3
			return r.ReadvAt(fd, [][]byte{b[:a], b[a:c], b[c:]}, op.Off)
		})
		o.Data, o.N = string(d), int64(len(d))
	case Fsync:
		err = x.do(func() *rio.Completion[struct{}] { return r.Fsync(fd) })
	case Fdatasync:
		err = x.do(func() *rio.Completion[struct{}] { return r.Fdatasync(fd) })
	case Fallocate:
		err = x.do(func() *rio.Completion[struct{}] { return r.Fallocate(fd, 0, op.Off, op.Len) })
	case Truncate:
		if r.Supported("FTRUNCATE") == nil {
			err = x.do(func() *rio.Completion[struct{}] { return r.Ftruncate(fd, op.Len) })
		} else {
			err = f.Truncate(op.Len)
		}
	case Stat:
		var st unix.Statx_t
		err = x.do(func() *rio.Completion[struct{}] {
			return r.Statx(fd, "", unix.AT_EMPTY_PATH, unix.STATX_SIZE, &st)
		})
		o.N = int64(st.Size)
	case Nop:
		err = x.do(r.Nop)
	case LinkedWrites:
		o.N, err = x.linkedWrites(fd, op.Parts)
	case BatchWrites:
		o.N, err = x.batchWrites(fd, op.Parts)
	case DrainRead:
		o.N, o.Data, err = x.drainRead(fd, op)
	}
	o.Err = ErrName(err)
	st, serr := f.Stat()
	if serr == nil {
		o.Size = st.Size()
	}
	return o
}

// writev writes bufs at off with one WritevAt, completing a short write
// with WriteAt.
func (x *Runner) writev(fd int, bufs [][]byte, off int64) (int64, error) {
	var all []byte
	for _, b := range bufs {
		all = append(all, b...)
	}
	if len(all) == 0 {
		_, err := x.Ring.WritevAt(fd, bufs, off).Wait()
		for err != nil && x.again(err) {
			_, err = x.Ring.WritevAt(fd, bufs, off).Wait()
		}
		return 0, err
	}
	for {
		n, err := x.Ring.WritevAt(fd, bufs, off).Wait()
		if err != nil && x.again(err) {
			continue
		}
		if err != nil {
			return 0, err
		}
		if x.Broken.IgnoreShortWrite {
			return int64(len(all)), nil
		}
		rest, err := x.writeAll(fd, all[n:], off+int64(n), nil)
		return int64(n) + rest, err
	}
}

// linkedWrites writes the parts in order with one chain, write -> write ->
// ... -> fsync, and repairs what a broken link cancelled.
func (x *Runner) linkedWrites(fd int, parts []Part) (int64, error) {
	b := x.Ring.NewBatch()
	cs := make([]*rio.Completion[int], len(parts))
	for i, p := range parts {
		cs[i] = b.WriteAt(fd, p.Data, p.Off)
		b.Link()
	}
	sync := b.Fsync(fd)
	if err := b.Submit(); err != nil {
		return 0, err
	}
	var total int64
	broken := false
	for i, p := range parts {
		if broken {
			_, err := cs[i].Wait()
			if x.Broken.IgnoreLinkCancel {
				total += int64(len(p.Data)) // assumes it ran
				continue
			}
			// Cancelled by the broken link: write it now, in order.
			if err != nil && !errors.Is(err, syscall.ECANCELED) && !x.again(err) {
				return total, err
			}
			if err == nil {
				return total, fmt.Errorf("write %d ran after a broken link", i)
			}
			n, err := x.writeAll(fd, p.Data, p.Off, nil)
			total += n
			if err != nil {
				return total, err
			}
			continue
		}
		n, err := cs[i].Wait()
		if err != nil && !x.again(err) {
			return total, err
		}
		if err != nil || n < len(p.Data) {
			// A short or failed write broke the chain.
			broken = true
			done := int64(max(n, 0))
			if err != nil {
				done = 0
			}
			rest, werr := x.writeAll(fd, p.Data[done:], p.Off+done, nil)
			total += done + rest
			if werr != nil {
				return total, werr
			}
			continue
		}
		total += int64(n)
	}
	_, err := sync.Wait()
	if broken && x.Broken.IgnoreLinkCancel {
		return total, nil
	}
	if broken || (err != nil && x.again(err)) {
		if err == nil && broken {
			return total, errors.New("fsync ran after a broken link")
		}
		err = x.do(func() *rio.Completion[struct{}] { return x.Ring.Fsync(fd) })
	}
	return total, err
}

// batchWrites writes disjoint parts with one Batch, then completes each.
func (x *Runner) batchWrites(fd int, parts []Part) (int64, error) {
	b := x.Ring.NewBatch()
	cs := make([]*rio.Completion[int], len(parts))
	for i, p := range parts {
		cs[i] = b.WriteAt(fd, p.Data, p.Off)
	}
	if err := b.Submit(); err != nil {
		return 0, err
	}
	var total int64
	var first error
	for i, p := range parts {
		n, err := x.writeAll(fd, p.Data, p.Off, cs[i])
		total += n
		if err != nil && first == nil {
			first = err
		}
	}
	return total, first
}

// drainRead writes Parts[0], then reads with IOSQE_IO_DRAIN, which must see
// the write if it was whole.
func (x *Runner) drainRead(fd int, op Op) (int64, string, error) {
	p := op.Parts[0]
	w := x.Ring.WriteAt(fd, p.Data, p.Off)
	b := x.Ring.NewBatch()
	buf := make([]byte, op.Len)
	rd := b.ReadAt(fd, buf, op.Off)
	b.Drain()
	if err := b.Submit(); err != nil {
		return 0, "", err
	}
	n0, werr := w.Wait()
	m, rerr := rd.Wait()
	whole := werr == nil && n0 == len(p.Data)
	var n int64
	switch {
	case whole || x.Broken.IgnoreShortWrite && werr == nil:
		n = int64(len(p.Data))
	case werr == nil:
		rest, err := x.writeAll(fd, p.Data[n0:], p.Off+int64(n0), nil)
		n = int64(n0) + rest
		werr = err
	case x.again(werr):
		n, werr = x.writeAll(fd, p.Data, p.Off, nil)
	}
	if werr != nil {
		return n, "", werr
	}
	if whole && rerr == nil {
		// The drained read ran after the whole write: what it read is
		// current; complete it if it was short.
		d := buf[:m]
		if m > 0 && int64(m) < op.Len && !x.Broken.IgnoreShortRead {
			more, err := x.readFull(fd, op.Len-int64(m), op.Off+int64(m), nil)
			d = append(d, more...)
			rerr = err
		}
		return n, string(d), rerr
	}
	if rerr != nil && !x.again(rerr) {
		return n, "", rerr
	}
	d, err := x.readFull(fd, op.Len, op.Off, nil)
	return n, string(d), err
}
