// Command cat concatenates files to standard output, reading them through
// io_uring with package file, a drop-in for *os.File.
//
//	go run ./examples/cat [FILE]...
//
// With no FILE, or where FILE is -, it reads standard input, as cat does:
// through file.NewFile, which makes a *file.File of a descriptor the
// program already has.
//
// file.Open is os.Open; the *file.File it returns is an io.Reader whose
// reads go through rio's shared Ring (or come straight from the page cache
// when the data is there). Where io_uring is unavailable, file falls back
// to the os package, so cat works either way; -require-uring makes that an
// error instead.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"syscall"

	"github.com/gorio/rio/file"
)

func main() {
	requireURing := flag.Bool("require-uring", false, "fail instead of falling back to the os package where io_uring is unavailable")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: cat [-require-uring] [FILE]...")
		flag.PrintDefaults()
	}
	flag.Parse()
	if *requireURing {
		file.SetFallback(false)
	}
	names := flag.Args()
	if len(names) == 0 {
		names = []string{"-"}
	}
	status := 0
	for _, name := range names {
		if err := cat(os.Stdout, name); err != nil {
			// Errors are *fs.PathError, as with os: "open NAME: no such file or directory".
			fmt.Fprintln(os.Stderr, "cat:", err)
			status = 1
		}
	}
	os.Exit(status)
}

// stdin is standard input as a File, which owns descriptor 0 from then on.
// It is never closed: a second "-" reads on from where the first stopped
// (at the end, for a pipe or terminal that was read to its end).
var stdin = file.NewFile(uintptr(syscall.Stdin), "/dev/stdin")

func cat(w io.Writer, name string) error {
	f := stdin
	if name != "-" {
		var err error
		if f, err = file.Open(name); err != nil {
			return err
		}
		defer f.Close()
	} else if f == nil {
		return errors.New("-: standard input is not open")
	}
	// A plain read loop: each Read is one read at the File's position,
	// which it advances; io.EOF comes bare at the end, as with os.File.
	buf := make([]byte, 64<<10)
	for {
		n, err := f.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return werr
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}
