package riotest_test

import (
	"fmt"
	"os"

	"github.com/gorio/rio"
	"github.com/gorio/rio/riotest"
)

// A simulated kernel that makes every read and write short: code that
// writes through the ring must complete short writes itself.
func Example() {
	k := riotest.NewKernel(riotest.Config{Seed: 1, Faults: riotest.Faults{ShortIO: 1}})
	r, err := rio.New(k.Option())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer r.Close()

	f, err := os.CreateTemp("", "riotest-example")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.Remove(f.Name())
	defer f.Close()

	data := []byte("hello, short writes")
	n, err := r.WriteAt(int(f.Fd()), data, 0).Wait()
	fmt.Println("first write short:", err == nil && n < len(data))
	for n < len(data) && err == nil {
		var m int
		m, err = r.WriteAt(int(f.Fd()), data[n:], int64(n)).Wait()
		n += m
	}
	got, _ := os.ReadFile(f.Name())
	fmt.Println(string(got))
	fmt.Println("short writes injected:", k.Stats().ShortIO > 0)
	// Output:
	// first write short: true
	// hello, short writes
	// short writes injected: true
}
