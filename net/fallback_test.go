package rionet

import (
	"context"
	"errors"
	"io"
	"net"
	"testing"

	"github.com/gorio/rio"
)

// TestFallback simulates a kernel without io_uring: Listen and Dial return
// package net's types, unless fallback is switched off.
func TestFallback(t *testing.T) {
	forceEngineErr = &rio.FeatureError{Feature: "io_uring", MinKernel: "5.1"}
	defer func() { forceEngineErr = nil }()

	t.Setenv("RIONET_NOFALLBACK", "")
	ln, err := Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if _, ok := ln.(*net.TCPListener); !ok {
		t.Fatalf("fallback listener is %T, want *net.TCPListener", ln)
	}
	go func() {
		if c, err := ln.Accept(); err == nil {
			io.Copy(c, c)
			c.Close()
		}
	}()
	c, err := Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := c.(*net.TCPConn); !ok {
		t.Fatalf("fallback conn is %T, want *net.TCPConn", c)
	}
	c.Close()

	// Switched off: the error says why, and matches rio.ErrNotSupported.
	lc := ListenConfig{NoFallback: true}
	if _, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0"); !errors.Is(err, rio.ErrNotSupported) {
		t.Errorf("Listen with NoFallback: %v, want rio.ErrNotSupported", err)
	}
	d := Dialer{NoFallback: true}
	if _, err := d.Dial("tcp", ln.Addr().String()); !errors.Is(err, rio.ErrNotSupported) {
		t.Errorf("Dial with NoFallback: %v, want rio.ErrNotSupported", err)
	}
	t.Setenv("RIONET_NOFALLBACK", "1")
	if _, err := Listen("tcp", "127.0.0.1:0"); !errors.Is(err, rio.ErrNotSupported) {
		t.Errorf("Listen with RIONET_NOFALLBACK=1: %v, want rio.ErrNotSupported", err)
	}
}
