package rionet

import (
	"context"
	"io"
	"net"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gorio/rio"
	"github.com/gorio/rio/internal/testutil"
)

// TestFallback simulates a kernel without io_uring: Listen and Dial return
// package net's types, unless fallback is switched off.
func TestFallback(t *testing.T) {
	forceEngineErr = &rio.FeatureError{Feature: "io_uring", MinKernel: "5.1"}
	defer func() { forceEngineErr = nil }()

	t.Setenv("RIONET_NOFALLBACK", "")
	ln, err := Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	require.IsType(t, (*net.TCPListener)(nil), ln, "fallback listener")
	go func() {
		if c, err := ln.Accept(); err == nil {
			io.Copy(c, c)
			c.Close()
		}
	}()
	c, err := Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	require.IsType(t, (*net.TCPConn)(nil), c, "fallback conn")
	c.Close()

	// Switched off: the error says why, and matches rio.ErrNotSupported.
	lc := ListenConfig{NoFallback: true}
	_, err = lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	assert.ErrorIs(t, err, rio.ErrNotSupported, "Listen with NoFallback")
	d := Dialer{NoFallback: true}
	_, err = d.Dial("tcp", ln.Addr().String())
	assert.ErrorIs(t, err, rio.ErrNotSupported, "Dial with NoFallback")
	t.Setenv("RIONET_NOFALLBACK", "1")
	_, err = Listen("tcp", "127.0.0.1:0")
	assert.ErrorIs(t, err, rio.ErrNotSupported, "Listen with RIONET_NOFALLBACK=1")
}

// The fallback path of every constructor beyond Listen and Dial: with a
// kernel without io_uring, each returns package net's type (and passes
// Control on), RingOf says so, and Available and DefaultRing give the
// reason; with fallback switched off, each fails with that reason.
func TestFallbackConstructors(t *testing.T) {
	reason := &rio.FeatureError{Feature: "io_uring", MinKernel: "5.1"}
	forceEngineErr = reason
	defer func() { forceEngineErr = nil }()
	t.Setenv("RIONET_NOFALLBACK", "")

	assert.ErrorIs(t, Available(nil), rio.ErrNotSupported)
	_, err := DefaultRing()
	assert.ErrorIs(t, err, rio.ErrNotSupported)

	called := 0
	lc := ListenConfig{Control: func(network, address string, c syscall.RawConn) error {
		called++
		return nil
	}}
	pc, err := lc.ListenPacket(t.Context(), "udp4", "127.0.0.1:0")
	require.NoError(t, err)
	defer pc.Close()
	assert.IsType(t, &net.UDPConn{}, pc)
	assert.Equal(t, 1, called, "Control passed on to package net")
	assert.Nil(t, RingOf(pc))

	upc, err := ListenPacket("unixgram", filepath.Join(t.TempDir(), "g"))
	require.NoError(t, err)
	defer upc.Close()
	assert.IsType(t, &net.UnixConn{}, upc)

	d := Dialer{Control: lc.Control}
	c, err := d.Dial("udp", pc.LocalAddr().String())
	require.NoError(t, err)
	defer c.Close()
	assert.IsType(t, &net.UDPConn{}, c)
	assert.Equal(t, 2, called)

	ln, err := lc.Listen(t.Context(), "tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	assert.Equal(t, 3, called)
	assert.Nil(t, RingOf(ln))
	lf, err := ln.(*net.TCPListener).File()
	require.NoError(t, err)
	defer lf.Close()
	fl, err := FileListener(lf)
	require.NoError(t, err)
	defer fl.Close()
	assert.IsType(t, &net.TCPListener{}, fl)

	tc, err := net.Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	defer tc.Close()
	cf, err := tc.(*net.TCPConn).File()
	require.NoError(t, err)
	defer cf.Close()
	fc, err := FileConn(cf)
	require.NoError(t, err)
	defer fc.Close()
	assert.IsType(t, &net.TCPConn{}, fc)

	pf, err := pc.(*net.UDPConn).File()
	require.NoError(t, err)
	defer pf.Close()
	fpc, err := FilePacketConn(pf)
	require.NoError(t, err)
	defer fpc.Close()
	assert.IsType(t, &net.UDPConn{}, fpc)

	// Switched off: the reason, wrapped.
	nolc := ListenConfig{NoFallback: true}
	_, err = nolc.ListenPacket(t.Context(), "udp", "127.0.0.1:0")
	assert.ErrorIs(t, err, rio.ErrNotSupported)
	_, err = (&Dialer{NoFallback: true}).Dial("udp", pc.LocalAddr().String())
	assert.ErrorIs(t, err, rio.ErrNotSupported)
	t.Setenv("RIONET_NOFALLBACK", "1")
	_, err = ListenPacket("udp", "127.0.0.1:0")
	assert.ErrorIs(t, err, rio.ErrNotSupported)
	for name, f := range map[string]func() error{
		"FileListener":   func() error { _, err := FileListener(lf); return err },
		"FileConn":       func() error { _, err := FileConn(cf); return err },
		"FilePacketConn": func() error { _, err := FilePacketConn(pf); return err },
	} {
		err := f()
		assert.ErrorIs(t, err, rio.ErrNotSupported, name)
		var oe *net.OpError
		if assert.ErrorAs(t, err, &oe, name) {
			assert.Equal(t, "file", oe.Op, name)
		}
	}
}

// Without a forced failure, the package's own types say they run on the
// default ring, whose Stats count their operations.
func TestRingOfAndStats(t *testing.T) {
	r, err := DefaultRing()
	testutil.RequireRing(t, err)
	testutil.CheckLeaks(t)
	require.NoError(t, Available(nil))
	lc := ListenConfig{NoFallback: true}
	ln, err := lc.Listen(t.Context(), "tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	assert.Same(t, r, RingOf(ln))
	before := r.Stats().Submitted
	d := Dialer{NoFallback: true}
	c, err := d.Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	defer c.Close()
	assert.Same(t, r, RingOf(c))
	pc, err := lc.ListenPacket(t.Context(), "udp", "127.0.0.1:0")
	require.NoError(t, err)
	defer pc.Close()
	assert.Same(t, r, RingOf(pc))
	assert.Greater(t, r.Stats().Submitted, before, "the connect went through the default ring")
	assert.Nil(t, RingOf(&net.TCPConn{}))
	assert.Nil(t, RingOf(nil))

	own, err := rio.New()
	testutil.RequireRing(t, err)
	defer own.Close()
	require.NoError(t, Available(own))
	l2, err := (&ListenConfig{Ring: own, NoFallback: true}).Listen(t.Context(), "tcp", "127.0.0.1:0")
	require.NoError(t, err)
	assert.Same(t, own, RingOf(l2))
	l2.Close()
	require.NoError(t, Release(own))
}
