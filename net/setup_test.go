package rionet_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gorio/rio"
	"github.com/gorio/rio/internal/sandbox"
	rionet "github.com/gorio/rio/net"
)

// childEnv names what a re-executed test binary runs instead of the tests.
const childEnv = "RIONET_TEST_CHILD"

func TestMain(m *testing.M) {
	if spec := os.Getenv(childEnv); spec != "" {
		os.Exit(setupChild(spec))
	}
	os.Exit(m.Run())
}

// runSetupChild runs this test binary as a child restricted by spec (see
// setupChild), with fallback allowed, and returns its output.
func runSetupChild(t *testing.T, spec string) string {
	t.Helper()
	// A hang fails the test: the bound is generous, not a timing assertion.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "RIONET_NOFALLBACK=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, childEnv+"="+spec)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "child %s:\n%s", spec, out)
	return string(out)
}

// Issue 11, item 3 (adapter side): every setup failure that leaves no
// full io_uring gives either a reduced form that works or package net,
// with the reason reachable (Reduced or Available), and with fallback off
// an error matching rio.ErrNotSupported or rio.ErrResourceLimit. Before
// the fix, under an RLIMIT_MEMLOCK of 64 KiB or 1 MiB, Listen and Dial
// failed with "io_uring_setup: resource limit" even with fallback on.
func TestSetupFailuresReduceOrFallBack(t *testing.T) {
	for _, c := range []struct {
		spec string
		want string // the lines the child must print
	}{
		// The default ring (1024 SQ, 65536 CQ entries) and 8 MiB of
		// receive buffers do not fit: a smaller ring, fewer buffers.
		{"memlock:65536", "RING: true\nREDUCED: resource limit\nNOFALLBACK: nil\n"},
		{"memlock:1048576", "RING: true\nREDUCED: resource limit\nNOFALLBACK: nil\n"},
		// Not even the smallest ring fits: package net.
		{"memlock:0", "RING: false\nAVAILABLE: resource limit\nNOFALLBACK: resource limit\n"},
		{"seccomp:setup:" + strconv.Itoa(int(syscall.EPERM)), "RING: false\nAVAILABLE: not supported\nNOFALLBACK: not supported\n"},
		{"seccomp:setup:" + strconv.Itoa(int(syscall.ENOSYS)), "RING: false\nAVAILABLE: not supported\nNOFALLBACK: not supported\n"},
		{"seccomp:register:" + strconv.Itoa(int(syscall.EPERM)), "RING: false\nAVAILABLE: not supported\nNOFALLBACK: not supported\n"},
		{"seccomp:register:" + strconv.Itoa(int(syscall.ENOSYS)), "RING: false\nAVAILABLE: not supported\nNOFALLBACK: not supported\n"},
		{"seccomp:enter:" + strconv.Itoa(int(syscall.EPERM)), "RING: false\nAVAILABLE: not supported\nNOFALLBACK: not supported\n"},
		{"seccomp:enter:" + strconv.Itoa(int(syscall.ENOSYS)), "RING: false\nAVAILABLE: not supported\nNOFALLBACK: not supported\n"},
	} {
		t.Run(strings.ReplaceAll(c.spec, ":", "="), func(t *testing.T) {
			out := runSetupChild(t, c.spec)
			assert.Equal(t, c.want, classes(out), "child output:\n%s", out)
			assert.Contains(t, out, "ECHO: ok", "child output:\n%s", out)
		})
	}
}

// Issue 11, item 3: a Ring of the caller's on which BufferGroup is taken
// (EEXIST from the registration) still works, every Read receiving
// directly, and Reduced says why. Before the fix, Listen failed with
// EEXIST.
func TestBufferGroupTakenReduces(t *testing.T) {
	checkLeaks(t)
	r, err := rio.New()
	requireURing(t, err)
	defer r.Close()
	br, err := r.NewBufferRing(rionet.BufferGroup, 8, 4096)
	requireURing(t, err)
	defer br.Close()
	lc := rionet.ListenConfig{Ring: r, NoFallback: true}
	ln, err := lc.Listen(t.Context(), "tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	assert.Same(t, r, rionet.RingOf(ln))
	d := rionet.Dialer{Ring: r, NoFallback: true}
	require.NoError(t, echoThrough(ln, func(a string) (net.Conn, error) { return d.Dial("tcp", a) }))
	assert.ErrorIs(t, rionet.Reduced(r), syscall.EEXIST)
	require.NoError(t, ln.Close())
	require.NoError(t, rionet.Release(r))
}

// classes returns the lines of the child's output that name classes
// (everything but the "  why:" details).
func classes(out string) string {
	var b strings.Builder
	for _, l := range strings.SplitAfter(out, "\n") {
		if strings.HasPrefix(l, "RING:") || strings.HasPrefix(l, "REDUCED:") || strings.HasPrefix(l, "AVAILABLE:") || strings.HasPrefix(l, "NOFALLBACK:") {
			b.WriteString(l)
		}
	}
	return b.String()
}

// errClass names the class of a setup error for the parent to compare.
func errClass(err error) string {
	switch {
	case err == nil:
		return "nil"
	case errors.Is(err, rio.ErrResourceLimit) && !errors.Is(err, rio.ErrNotSupported):
		return "resource limit"
	case errors.Is(err, rio.ErrNotSupported):
		return "not supported"
	}
	return "other: " + err.Error()
}

// setupChild applies the restriction spec ("memlock:BYTES" or
// "seccomp:CALL:ERRNO") and then uses the package as a program would:
// Listen, Dial, an echo, with fallback on; then Listen with NoFallback.
func setupChild(spec string) int {
	parts := strings.Split(spec, ":")
	var err error
	switch {
	case parts[0] == "memlock" && len(parts) == 2:
		var n uint64
		if n, err = strconv.ParseUint(parts[1], 10, 64); err == nil {
			err = sandbox.LimitMemlock(n)
		}
	case parts[0] == "seccomp" && len(parts) == 3:
		var errno int
		if errno, err = strconv.Atoi(parts[2]); err == nil {
			err = sandbox.BlockSyscall(sandbox.Calls[parts[1]], uint32(errno))
		}
	default:
		err = fmt.Errorf("bad spec %q", spec)
	}
	if err != nil {
		fmt.Println(err)
		return 2
	}
	ln, err := rionet.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Println("LISTEN:", err)
		return 1
	}
	defer ln.Close()
	onRing := rionet.RingOf(ln) != nil
	fmt.Println("RING:", onRing)
	if onRing {
		fmt.Println("REDUCED:", errClass(rionet.Reduced(nil)))
		fmt.Println("  why:", rionet.Reduced(nil))
	} else {
		fmt.Println("AVAILABLE:", errClass(rionet.Available(nil)))
		fmt.Println("  why:", rionet.Available(nil))
	}
	if err := echoThrough(ln, func(a string) (net.Conn, error) { return rionet.Dial("tcp", a) }); err != nil {
		fmt.Println("ECHO:", err)
		return 1
	}
	fmt.Println("ECHO: ok")
	lc := rionet.ListenConfig{NoFallback: true}
	ln2, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err == nil {
		ln2.Close()
	}
	fmt.Println("NOFALLBACK:", errClass(err))
	fmt.Println("  why:", err)
	if onRing != (err == nil) {
		fmt.Println("NoFallback disagrees with fallback")
		return 1
	}
	return 0
}

// echoThrough dials ln, sends a message through a server goroutine that echoes
// it, and checks what comes back.
func echoThrough(ln net.Listener, dial func(addr string) (net.Conn, error)) error {
	done := make(chan error, 1)
	go func() {
		s, err := ln.Accept()
		if err != nil {
			done <- err
			return
		}
		defer s.Close()
		_, err = io.Copy(s, s)
		done <- err
	}()
	c, err := dial(ln.Addr().String())
	if err != nil {
		return err
	}
	msg := strings.Repeat("echo through a restricted process ", 1000)
	go func() { io.WriteString(c, msg); c.(interface{ CloseWrite() error }).CloseWrite() }()
	got, err := io.ReadAll(c)
	c.Close()
	if err != nil {
		return err
	}
	if string(got) != msg {
		return fmt.Errorf("echoed %d bytes, want %d", len(got), len(msg))
	}
	return <-done
}
