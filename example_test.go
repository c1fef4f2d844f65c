package rio_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/gorio/rio"
)

func Example() {
	r, err := rio.New()
	if errors.Is(err, rio.ErrNotSupported) {
		log.Fatal("io_uring is not available here: ", err)
	} else if err != nil {
		log.Fatal(err)
	}
	defer r.Close()

	f, err := os.CreateTemp("", "rio-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.Remove(f.Name())
	defer f.Close()

	// WriteAt borrows the buffer until Wait returns.
	msg := []byte("hello from io_uring")
	if _, err := r.WriteAt(int(f.Fd()), msg, 0).Wait(); err != nil {
		log.Fatal(err)
	}
	buf := make([]byte, 64)
	n, err := r.ReadAt(int(f.Fd()), buf, 0).Wait()
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(string(buf[:n]))
	// Output: hello from io_uring
}

// Many reads in flight from one goroutine: submit them all, then wait.
func ExampleRing_ReadAt() {
	r, err := rio.New()
	if err != nil {
		log.Fatal(err)
	}
	defer r.Close()
	f, err := os.CreateTemp("", "rio-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	if _, err := f.WriteString("abcdefgh"); err != nil {
		log.Fatal(err)
	}

	bufs := make([][]byte, 4)
	reads := make([]*rio.Completion[int], 4)
	for i := range reads {
		bufs[i] = make([]byte, 2)
		reads[i] = r.ReadAt(int(f.Fd()), bufs[i], int64(2*i))
	}
	for i, c := range reads {
		n, err := c.Wait()
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%d:%s ", i, bufs[i][:n])
	}
	fmt.Println()
	// Output: 0:ab 1:cd 2:ef 3:gh
}

// A linked chain: write, then fsync, then read back, submitted atomically.
func ExampleBatch_Link() {
	r, err := rio.New()
	if err != nil {
		log.Fatal(err)
	}
	defer r.Close()
	f, err := os.CreateTemp("", "rio-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	fd := int(f.Fd())

	b := r.NewBatch()
	b.WriteAt(fd, []byte("durable"), 0)
	b.Link()
	b.Fsync(fd)
	b.Link()
	buf := make([]byte, 16)
	read := b.ReadAt(fd, buf, 0)
	if err := b.Submit(); err != nil {
		log.Fatal(err)
	}
	n, err := read.Wait()
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(string(buf[:n]))
	// Output: durable
}

// WaitContext gives up on a read that does not complete in time; the
// kernel cancels it.
func ExampleCompletion_WaitContext() {
	r, err := rio.New()
	if err != nil {
		log.Fatal(err)
	}
	defer r.Close()
	pr, pw, err := os.Pipe()
	if err != nil {
		log.Fatal(err)
	}
	defer pr.Close()
	defer pw.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	buf := make([]byte, 8)
	c := r.Read(int(pr.Fd()), buf)
	_, err = c.WaitContext(ctx)
	fmt.Println(err)
	_, err = c.Wait() // the buffer is ours again once Wait returns
	fmt.Println(err)
	// Output:
	// context deadline exceeded
	// read: operation canceled
}

// A Collector returns operations in the order they complete. Here three
// timeouts, submitted together in one Batch, longest first, come back
// shortest first.
func ExampleCollector() {
	r, err := rio.New()
	if err != nil {
		log.Fatal(err)
	}
	defer r.Close()
	var q rio.Collector[string]
	b := r.NewBatch()
	for _, d := range []time.Duration{30 * time.Millisecond, 20 * time.Millisecond, 10 * time.Millisecond} {
		if err := q.Add(b.Timeout(d), d.String()); err != nil {
			log.Fatal(err)
		}
	}
	if err := b.Submit(); err != nil {
		log.Fatal(err)
	}
	for name := range q.All() {
		fmt.Println(name)
	}
	// Output:
	// 10ms
	// 20ms
	// 30ms
}

// A loop that reuses its Batch's Completions: once every operation of a
// round has been waited for, Recycle lets the next round take their
// memory instead of allocating.
func ExampleBatch_Recycle() {
	r, err := rio.New()
	if err != nil {
		log.Fatal(err)
	}
	defer r.Close()
	b := r.NewBatch()
	cs := make([]*rio.Completion[struct{}], 8)
	done := 0
	for round := 0; round < 3; round++ {
		for i := range cs {
			cs[i] = b.Nop()
		}
		if err := b.Submit(); err != nil {
			log.Fatal(err)
		}
		for _, c := range cs {
			if _, err := c.Wait(); err != nil {
				log.Fatal(err)
			}
			done++
		}
		// cs must not be used from here on: its Completions are reused.
		if err := b.Recycle(); err != nil {
			log.Fatal(err)
		}
	}
	fmt.Println(done, "operations")
	// Output: 24 operations
}

// Release hands a waited Completion back to its Ring, whose next
// operation reuses it.
func ExampleCompletion_Release() {
	r, err := rio.New()
	if err != nil {
		log.Fatal(err)
	}
	defer r.Close()
	for i := 0; i < 3; i++ {
		c := r.Nop()
		if _, err := c.Wait(); err != nil {
			log.Fatal(err)
		}
		c.Release() // c must not be used after this
	}
	fmt.Println("done")
	// Output: done
}
