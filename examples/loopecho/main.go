// Command loopecho is a TCP echo server on rionet's event loops: every
// byte a client sends comes back. Unlike examples/echo, which serves each
// connection from a goroutine through net.Conn, it has no goroutine per
// connection: each loop (by default one per P but one, at least one)
// receives into buffers of its own and calls OnData, which queues the
// bytes to be sent back.
//
//	go run ./examples/loopecho -addr 127.0.0.1:7008
//	printf 'hello\n' | nc -q1 127.0.0.1 7008
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	rionet "github.com/gorio/rio/net"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:7008", "address to listen on")
	flag.Parse()

	srv := &rionet.LoopServer{
		// data is borrowed until OnData returns; Write copies it into
		// the connection's write queue, which the loop sends.
		OnData: func(c *rionet.LoopConn, data []byte) int {
			c.Write(data)
			return len(data)
		},
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("listening on", ln.Addr())

	// Shut down gracefully on SIGINT or SIGTERM: stop accepting, send
	// what is queued, close every connection.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sig
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	}()

	// Serve returns ErrServerClosed once shut down; anything else (such as
	// an error matching rio.ErrNotSupported, where io_uring is missing) is
	// a failure.
	if err := srv.Serve(ln); err != rionet.ErrServerClosed {
		log.Fatal(err)
	}
}
