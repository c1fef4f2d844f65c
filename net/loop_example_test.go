package rionet_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log"
	"net"

	rionet "github.com/gorio/rio/net"
)

// An echo server on the event loops: OnData gets the bytes received (valid
// until it returns) and queues them to be sent back.
func ExampleLoopServer() {
	srv := &rionet.LoopServer{
		OnData: func(c *rionet.LoopConn, data []byte) int {
			c.Write(data) // copies data into the connection's write queue
			return len(data)
		},
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()

	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		log.Fatal(err)
	}
	c.Write([]byte("ping"))
	buf := make([]byte, 4)
	io.ReadFull(c, buf)
	fmt.Println(string(buf))
	c.Close()

	srv.Shutdown(context.Background())
	fmt.Println(<-done)
	// Output:
	// ping
	// rionet: LoopServer closed
}

// A handler with slow work hands the connection to a goroutine: it takes
// ownership of the request's bytes (Retain), stops reading (PauseRead) and
// returns at once; the goroutine may block, writes the reply (Write waits
// there if the queue is full) and resumes reading.
func ExampleLoopConn_PauseRead() {
	srv := &rionet.LoopServer{
		OnData: func(c *rionet.LoopConn, data []byte) int {
			req := c.Retain()
			c.PauseRead()
			go func() {
				defer c.ResumeRead()
				defer req.Release()
				reply := bytes.ToUpper(req.Bytes()) // slow work would go here
				c.Write(reply)
			}()
			return len(data)
		},
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	go srv.Serve(ln)
	defer srv.Shutdown(context.Background())

	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("hello"))
	buf := make([]byte, 5)
	io.ReadFull(c, buf)
	fmt.Println(string(buf))
	// Output: HELLO
}
