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
