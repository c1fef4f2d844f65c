package file_test

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log"
	"os"
	"path/filepath"

	"github.com/gorio/rio/file"
)

func Example() {
	dir, err := os.MkdirTemp("", "example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	name := filepath.Join(dir, "hello.txt")

	f, err := file.Create(name)
	if err != nil {
		log.Fatal(err)
	}
	if _, err := f.Write([]byte("hello, io_uring\n")); err != nil {
		log.Fatal(err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		log.Fatal(err)
	}
	data, err := io.ReadAll(f)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Print(string(data))
	if err := f.Close(); err != nil {
		log.Fatal(err)
	}

	_, err = f.Read(make([]byte, 1))
	fmt.Println(errors.Is(err, fs.ErrClosed))
	_, err = file.Open(filepath.Join(dir, "missing"))
	fmt.Println(errors.Is(err, fs.ErrNotExist))
	// Output:
	// hello, io_uring
	// true
	// true
}

// ReadAtAsync keeps several reads in flight from one goroutine.
func ExampleFile_ReadAtAsync() {
	dir, err := os.MkdirTemp("", "example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	name := filepath.Join(dir, "data")
	if err := os.WriteFile(name, []byte("aaaabbbbccccdddd"), 0o644); err != nil {
		log.Fatal(err)
	}
	f, err := file.Open(name)
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()

	bufs := make([][]byte, 4)
	var waits []func() (int, error)
	for i := range bufs {
		bufs[i] = make([]byte, 4)
		c, err := f.ReadAtAsync(bufs[i], int64(4*i))
		if err != nil {
			log.Fatal(err)
		}
		waits = append(waits, c.Wait)
	}
	for i, wait := range waits {
		n, err := wait() // bufs[i] is the kernel's until this returns
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(string(bufs[i][:n]))
	}
	// Output:
	// aaaa
	// bbbb
	// cccc
	// dddd
}

// O_DIRECT needs aligned buffers, offsets and lengths; Alignment says
// which, and AlignedBuffer allocates.
func ExampleAlignedBuffer() {
	dir, err := os.MkdirTemp("", "example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	f, err := file.OpenFile(filepath.Join(dir, "direct"), os.O_RDWR|os.O_CREATE|file.O_DIRECT, 0o644)
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()
	a, err := f.Alignment()
	if err != nil {
		log.Fatal(err)
	}
	buf, err := file.AlignedBuffer(a.Offset, a.Memory)
	if err != nil {
		log.Fatal(err)
	}
	copy(buf, "direct")
	n, err := f.WriteAt(buf, 0)
	fmt.Println(n == len(buf), err)

	_, err = f.WriteAt(buf[:100], 0) // a misaligned length
	var ae *file.AlignmentError
	fmt.Println(errors.As(err, &ae), ae.What)
	// Output:
	// true <nil>
	// true length
}

// A Batch starts many reads with one system call; a Collector hands each
// back as soon as it completes, under a key of the caller's choosing.
func ExampleBatch() {
	dir, err := os.MkdirTemp("", "example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	name := filepath.Join(dir, "data")
	if err := os.WriteFile(name, []byte("aaaabbbbccccdddd"), 0o644); err != nil {
		log.Fatal(err)
	}
	f, err := file.Open(name)
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()

	var b file.Batch
	bufs := make([][]byte, 4)
	ops := make([]*file.Op, 4)
	for i := range bufs {
		bufs[i] = make([]byte, 4)
		if ops[i], err = b.ReadAt(f, bufs[i], int64(4*i)); err != nil {
			log.Fatal(err)
		}
	}
	if err := b.Submit(); err != nil { // all four, one io_uring_enter
		log.Fatal(err)
	}
	var q file.Collector[int]
	for i, op := range ops {
		if err := q.Add(op, i); err != nil {
			log.Fatal(err)
		}
	}
	got := make([]string, 4)
	for i := range q.All() { // in the order they complete
		if _, err := ops[i].Wait(); err != nil { // bufs[i] is ours again
			log.Fatal(err)
		}
		got[i] = string(bufs[i])
	}
	fmt.Println(got)

	// At the end of the file, Wait returns io.EOF, as ReadAt does.
	op, err := f.ReadAtAsync(make([]byte, 8), 12)
	if err != nil {
		log.Fatal(err)
	}
	n, err := op.Wait()
	fmt.Println(n, err)
	// Output:
	// [aaaa bbbb cccc dddd]
	// 4 EOF
}

// DirFS is os.DirFS through the ring: an fs.FS for fs.WalkDir, fs.ReadFile,
// fstest and the rest.
func ExampleDirFS() {
	dir, err := os.MkdirTemp("", "example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	if err := file.MkdirAll(filepath.Join(dir, "a/b"), 0o755); err != nil {
		log.Fatal(err)
	}
	if err := file.WriteFile(filepath.Join(dir, "a/b/hello.txt"), []byte("hello"), 0o644); err != nil {
		log.Fatal(err)
	}
	fsys := file.DirFS(dir)
	err = fs.WalkDir(fsys, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fmt.Println(path, d.IsDir())
		return nil
	})
	if err != nil {
		log.Fatal(err)
	}
	data, err := fs.ReadFile(fsys, "a/b/hello.txt")
	fmt.Println(string(data), err)
	_, err = fs.ReadFile(fsys, "../outside")
	fmt.Println(err)
	// Output:
	// . true
	// a true
	// a/b true
	// a/b/hello.txt false
	// hello <nil>
	// readfile ../outside: invalid argument
}
