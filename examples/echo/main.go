// Command echo is a TCP echo server on io_uring: every byte a client sends
// comes back. It differs from a server on package net by one line, the
// call to rionet.Listen.
//
//	go run ./examples/echo -addr 127.0.0.1:7007
//	printf 'hello\n' | nc -q1 127.0.0.1 7007
package main

import (
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"os/signal"
	"syscall"

	rionet "github.com/gorio/rio/net"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:7007", "address to listen on")
	flag.Parse()

	// The one line that differs from package net: rionet.Listen instead of
	// net.Listen. Where io_uring is unavailable it falls back to package
	// net (set RIONET_NOFALLBACK=1 to make that an error instead).
	ln, err := rionet.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("listening on", ln.Addr())

	// Close the listener on SIGINT or SIGTERM: Accept then returns an error
	// wrapping net.ErrClosed and main returns.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sig
		ln.Close()
	}()

	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			// io.Copy uses the Conn's WriteTo, which hands the received
			// data to Write straight from the shared receive buffers.
			io.Copy(c, c)
		}()
	}
}
