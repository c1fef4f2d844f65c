package rionet_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gorio/rio"
	"github.com/gorio/rio/internal/sandbox"
	"github.com/gorio/rio/internal/testutil"
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

// Issue 11, item 3 (adapter side): every setup failure that leaves no
// full io_uring gives either a reduced form that works or package net,
// with the reason reachable (Reduced or Available), and with fallback off
// an error matching rio.ErrNotSupported or rio.ErrResourceLimit. Before
// the fix, under an RLIMIT_MEMLOCK of 64 KiB or 1 MiB, Listen and Dial
// failed with "io_uring_setup: resource limit" even with fallback on.
func TestSetupFailuresReduceOrFallBack(t *testing.T) {
	testutil.RunSetupChildren(t, childEnv, []testutil.SetupCase{
		// The default ring (1024 SQ, 65536 CQ entries) and 8 MiB of
		// receive buffers do not fit: a smaller ring, fewer buffers.
		{Spec: "memlock:65536", Want: "RING: true\nREDUCED: resource limit\nNOFALLBACK: nil\n"},
		{Spec: "memlock:1048576", Want: "RING: true\nREDUCED: resource limit\nNOFALLBACK: nil\n"},
		// Not even the smallest ring fits: package net.
		{Spec: "memlock:0", Want: "RING: false\nAVAILABLE: resource limit\nNOFALLBACK: resource limit\n"},
	}, sandbox.SeccompSpecs())
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

// setupChild applies the restriction spec ("memlock:BYTES" or
// "seccomp:CALL:ERRNO") and then uses the package as a program would:
// Listen, Dial, an echo, with fallback on; then Listen with NoFallback.
func setupChild(spec string) int {
	err := sandbox.Apply(spec)
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
		fmt.Println("REDUCED:", testutil.SetupClass(rionet.Reduced(nil)))
		fmt.Println("  why:", rionet.Reduced(nil))
	} else {
		fmt.Println("AVAILABLE:", testutil.SetupClass(rionet.Available(nil)))
		fmt.Println("  why:", rionet.Available(nil))
	}
	if err := echoThrough(ln, func(a string) (net.Conn, error) { return rionet.Dial("tcp", a) }); err != nil {
		fmt.Println("IO:", err)
		return 1
	}
	fmt.Println("IO: ok")
	lc := rionet.ListenConfig{NoFallback: true}
	ln2, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err == nil {
		ln2.Close()
	}
	fmt.Println("NOFALLBACK:", testutil.SetupClass(err))
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
