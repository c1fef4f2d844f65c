package rio

import "github.com/gorio/rio/internal/uring"

// Symlinkat is symlinkat(2) (Linux 5.15): it creates linkpath, relative to
// newdirfd, as a symbolic link to target. The ring holds its own copies of
// both strings.
func (r *Ring) Symlinkat(target string, newdirfd int, linkpath string) *Completion[struct{}] {
	var s uring.SQE
	return submit1(r, prepSymlinkat(newCompletion[struct{}](r), &s, target, newdirfd, linkpath), &s)
}

// Linkat is linkat(2) (Linux 5.15): it creates newpath, relative to
// newdirfd, as a hard link to oldpath, relative to olddirfd. flags may be
// unix.AT_SYMLINK_FOLLOW.
func (r *Ring) Linkat(olddirfd int, oldpath string, newdirfd int, newpath string, flags int) *Completion[struct{}] {
	var s uring.SQE
	return submit1(r, prepLinkat(newCompletion[struct{}](r), &s, olddirfd, oldpath, newdirfd, newpath, flags), &s)
}

// Symlinkat queues a Symlinkat.
func (b *Batch) Symlinkat(target string, newdirfd int, linkpath string) *Completion[struct{}] {
	return add(b, prepSymlinkat(b.none.next(), b.sqe(), target, newdirfd, linkpath))
}

// Linkat queues a Linkat.
func (b *Batch) Linkat(olddirfd int, oldpath string, newdirfd int, newpath string, flags int) *Completion[struct{}] {
	return add(b, prepLinkat(b.none.next(), b.sqe(), olddirfd, oldpath, newdirfd, newpath, flags))
}

func prepSymlinkat(c *Completion[struct{}], s *uring.SQE, target string, newdirfd int, linkpath string) *Completion[struct{}] {
	initOp(c, s, uring.OpSymlinkat, newdirfd)
	s.Addr = setPath(c, target, &c.obj)
	s.Off = setPath(c, linkpath, &c.extra().obj2)
	return c
}

// prepLinkat lays the SQE out as renameat's: the new directory in len,
// the new path in off, the flags in the op flags.
func prepLinkat(c *Completion[struct{}], s *uring.SQE, olddirfd int, oldpath string, newdirfd int, newpath string, flags int) *Completion[struct{}] {
	initOp(c, s, uring.OpLinkat, olddirfd)
	s.Addr = setPath(c, oldpath, &c.obj)
	s.Off = setPath(c, newpath, &c.extra().obj2)
	s.Len = uint32(int32(newdirfd))
	s.OpFlags = uint32(flags)
	return c
}
