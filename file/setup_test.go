package file

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"syscall"
	"testing"

	"github.com/gorio/rio/internal/sandbox"
	"github.com/gorio/rio/internal/testutil"
)

// Issue 11, item 3 (adapter side), as for rionet (see
// net/setup_test.go's TestSetupFailuresReduceOrFallBack): every setup
// failure that leaves no full io_uring gives either the ring-backed File
// (in a reduced form if need be, Reduced saying why) or the os fallback,
// with the reason reachable (DefaultRing's error), and with fallback off an
// error matching rio.ErrNotSupported or rio.ErrResourceLimit. A pipe's
// reads go to the stream rings, created on demand, which must manage too.
// Before the fix, under an RLIMIT_MEMLOCK of 16 KiB the package fell back
// to os (a smaller ring fits), and under 32 KiB the pipe's first read
// failed with ENOMEM: no ring for streams fitted next to the default ring.
func TestSetupFailuresReduceOrFallBack(t *testing.T) {
	testutil.RunSetupChildren(t, childEnv, []testutil.SetupCase{
		// The default ring does not fit: smaller shared rings.
		{Spec: "memlock:16384", Want: "RING: true\nREDUCED: resource limit\nNOFALLBACK: nil\n"},
		// The default ring fits, no ring for streams next to it: the
		// pipe's reads go to the default ring.
		{Spec: "memlock:32768", Want: "RING: true\nREDUCED: resource limit\nNOFALLBACK: nil\n"},
		// Not even the smallest ring fits: package os.
		{Spec: "memlock:0", Want: "RING: false\nAVAILABLE: resource limit\nNOFALLBACK: resource limit\n"},
	}, sandbox.SeccompSpecs())
}

// setupChild applies the restriction spec ("memlock:BYTES" or
// "seccomp:CALL:ERRNO"), then reads a file and a pipe through the package
// with fallback on, and opens a file with fallback off.
func setupChild(spec string) int {
	err := sandbox.Apply(spec)
	if err != nil {
		fmt.Println(err)
		return 2
	}
	const name = "/etc/passwd" // readable by nobody, whom a memlock child becomes
	f, err := Open(name)
	if err != nil {
		fmt.Println("OPEN:", err)
		return 1
	}
	defer f.Close()
	onRing := f.Ring() != nil
	fmt.Println("RING:", onRing)
	if err := childIO(f, name); err != nil {
		fmt.Println("IO:", err)
		return 1
	}
	fmt.Println("IO: ok")
	if onRing {
		fmt.Println("REDUCED:", testutil.SetupClass(Reduced()))
		fmt.Println("  why:", Reduced())
	} else {
		_, err := DefaultRing()
		fmt.Println("AVAILABLE:", testutil.SetupClass(err))
		fmt.Println("  why:", err)
	}
	SetFallback(false)
	g, err := Open(name)
	if err == nil {
		g.Close()
	}
	fmt.Println("NOFALLBACK:", testutil.SetupClass(err))
	fmt.Println("  why:", err)
	if onRing != (err == nil) {
		fmt.Println("SetFallback(false) disagrees with fallback")
		return 1
	}
	return 0
}

// childIO reads f, which is name, and a pipe, through the package.
func childIO(f *File, name string) error {
	got, err := io.ReadAll(f)
	if err != nil {
		return err
	}
	want, err := os.ReadFile(name)
	if err != nil {
		return err
	}
	if !bytes.Equal(got, want) {
		return fmt.Errorf("read %d bytes of %s, want %d", len(got), name, len(want))
	}
	var p [2]int
	if err := syscall.Pipe2(p[:], syscall.O_CLOEXEC); err != nil {
		return err
	}
	pr, pw := NewFile(uintptr(p[0]), "pipe-r"), NewFile(uintptr(p[1]), "pipe-w")
	defer pr.Close()
	go func() { pw.Write(want); pw.Close() }()
	got, err = io.ReadAll(pr)
	if err != nil {
		return fmt.Errorf("pipe: %w", err)
	}
	if !bytes.Equal(got, want) {
		return fmt.Errorf("read %d bytes of the pipe, want %d", len(got), len(want))
	}
	return nil
}
