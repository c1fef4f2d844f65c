package rionet_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	rionet "github.com/gorio/rio/net"
)

// A stack is package net or rionet behind one set of constructors, so that
// a test body can run against both and its results be compared: the same
// inputs, the same results and error shapes.
type stack struct {
	name         string
	listen       func(ctx context.Context, o opts, network, address string) (net.Listener, error)
	listenPacket func(ctx context.Context, o opts, network, address string) (net.PacketConn, error)
	dial         func(ctx context.Context, o opts, network, address string) (net.Conn, error)
	fileListener func(*os.File) (net.Listener, error)
	fileConn     func(*os.File) (net.Conn, error)
	filePacket   func(*os.File) (net.PacketConn, error)
}

// opts are the ListenConfig and Dialer options both stacks have.
type opts struct {
	control         func(network, address string, c syscall.RawConn) error
	keepAlive       time.Duration
	keepAliveConfig net.KeepAliveConfig
	localAddr       net.Addr
}

var stdStack = stack{
	name: "net",
	listen: func(ctx context.Context, o opts, network, address string) (net.Listener, error) {
		lc := net.ListenConfig{Control: o.control, KeepAlive: o.keepAlive, KeepAliveConfig: o.keepAliveConfig}
		return lc.Listen(ctx, network, address)
	},
	listenPacket: func(ctx context.Context, o opts, network, address string) (net.PacketConn, error) {
		lc := net.ListenConfig{Control: o.control}
		return lc.ListenPacket(ctx, network, address)
	},
	dial: func(ctx context.Context, o opts, network, address string) (net.Conn, error) {
		d := net.Dialer{Control: o.control, KeepAlive: o.keepAlive, KeepAliveConfig: o.keepAliveConfig, LocalAddr: o.localAddr}
		return d.DialContext(ctx, network, address)
	},
	fileListener: net.FileListener,
	fileConn:     net.FileConn,
	filePacket:   net.FilePacketConn,
}

var rioStack = stack{
	name: "rionet",
	listen: func(ctx context.Context, o opts, network, address string) (net.Listener, error) {
		lc := rionet.ListenConfig{Control: o.control, KeepAlive: o.keepAlive, KeepAliveConfig: o.keepAliveConfig, NoFallback: true}
		return lc.Listen(ctx, network, address)
	},
	listenPacket: func(ctx context.Context, o opts, network, address string) (net.PacketConn, error) {
		lc := rionet.ListenConfig{Control: o.control, NoFallback: true}
		return lc.ListenPacket(ctx, network, address)
	},
	dial: func(ctx context.Context, o opts, network, address string) (net.Conn, error) {
		d := rionet.Dialer{Control: o.control, KeepAlive: o.keepAlive, KeepAliveConfig: o.keepAliveConfig, LocalAddr: o.localAddr, NoFallback: true}
		return d.DialContext(ctx, network, address)
	},
	fileListener: rionet.FileListener,
	fileConn:     rionet.FileConn,
	filePacket:   rionet.FilePacketConn,
}

// compare runs body against package net and rionet, each in a subtest,
// and fails t if their transcripts differ. body records what it observes
// with tr.add (results, and errors through tr.err, which describes their
// shape); it must check that rionet's values are rionet's own (not a
// fallback) where that matters. Leaks are checked for both.
func compare(t *testing.T, body func(t *testing.T, s stack, tr *transcript)) {
	t.Helper()
	var got [2]*transcript
	for i, s := range []stack{stdStack, rioStack} {
		t.Run(s.name, func(t *testing.T) {
			if s.name == "rionet" {
				ensureRing(t)
			}
			checkLeaks(t)
			tr := &transcript{}
			body(t, s, tr)
			got[i] = tr
			if testing.Verbose() {
				t.Logf("transcript:\n%s", strings.Join(tr.lines, "\n"))
			}
		})
	}
	if got[0] != nil && got[1] != nil {
		assert.Equal(t, got[0].lines, got[1].lines, "rionet differs from package net (-expected: net, +actual: rionet)")
	}
}

// ensureRing creates the default ring before a leak baseline (it lives for
// the whole process), or skips where io_uring is unavailable.
func ensureRing(t testing.TB) {
	t.Helper()
	_, err := rionet.DefaultRing()
	requireURing(t, err)
}

// transcript is what a compare body observed.
type transcript struct {
	lines []string
	subst []string // old, new pairs: addresses replaced by names
}

func (tr *transcript) add(format string, args ...any) {
	s := fmt.Sprintf(format, args...)
	for i := 0; i < len(tr.subst); i += 2 {
		s = strings.ReplaceAll(s, tr.subst[i], tr.subst[i+1])
	}
	tr.lines = append(tr.lines, s)
}

// name makes the transcript call the address a by name, so that ports and
// paths that differ from run to run compare equal. Longer addresses are
// replaced first.
func (tr *transcript) name(a net.Addr, name string) {
	if a == nil || a.String() == "" {
		return
	}
	tr.nameString(a.String(), name)
}

// nameString is name for an address as a string.
func (tr *transcript) nameString(a, name string) {
	tr.subst = append(tr.subst, a, name)
	// Longest first, so that "127.0.0.1:1234" is not cut by "127.0.0.1:1".
	for i := len(tr.subst) - 2; i >= 2 && len(tr.subst[i]) > len(tr.subst[i-2]); i -= 2 {
		tr.subst[i], tr.subst[i-2] = tr.subst[i-2], tr.subst[i]
		tr.subst[i+1], tr.subst[i-1] = tr.subst[i-1], tr.subst[i+1]
	}
}

// err records op's error by its shape: the chain of wrapper types with
// their fields (Op, Net, Source, Addr of a *net.OpError, Syscall of an
// *os.SyscallError), down to the errno or sentinel, and the message.
func (tr *transcript) err(op string, err error) {
	tr.add("%s: %s", op, shape(err))
}

func shape(err error) string {
	if err == nil {
		return "<nil>"
	}
	var parts []string
	for e := err; e != nil; e = errors.Unwrap(e) {
		switch e := e.(type) {
		case *net.OpError:
			parts = append(parts, fmt.Sprintf("OpError{%s %s src=%s addr=%s}", e.Op, e.Net, addrShape(e.Source), addrShape(e.Addr)))
		case *os.SyscallError:
			parts = append(parts, "SyscallError{"+e.Syscall+"}")
		case syscall.Errno:
			parts = append(parts, "errno "+e.Error())
		default:
			parts = append(parts, fmt.Sprintf("%T(%v)", e, e))
		}
	}
	timeout := false
	var ne net.Error
	if errors.As(err, &ne) {
		timeout = ne.Timeout()
	}
	return fmt.Sprintf("%s timeout=%v %q", strings.Join(parts, " > "), timeout, err.Error())
}

func addrShape(a net.Addr) string {
	if a == nil || reflect.ValueOf(a).Kind() == reflect.Pointer && reflect.ValueOf(a).IsNil() {
		return "nil"
	}
	// An unexported type of either package compares by its name alone.
	return strings.Replace(fmt.Sprintf("%T(%s)", a, a), "rionet.", "net.", 1)
}
