// Command loophttp is an HTTP/1.1 "hello" server on rionet's event loops.
//
// It is a demonstration, not an HTTP server to deploy: its parser is its
// own and minimal (a request line, headers up to a blank line, a body
// only with Content-Length, which it skips; no chunked requests, no
// Expect: 100-continue, no limits beyond the loop's MaxReadBuffer), and
// every request gets the same response. It shows how a protocol sits on
// LoopServer: OnData parses as many whole requests as the data holds,
// queues a response for each (pipelined requests are answered in order),
// and returns how much it consumed, so that a request split over several
// receives is parsed when the rest arrives. Nothing is allocated per
// request.
//
//	go run ./examples/loophttp -addr 127.0.0.1:8081
//	curl http://127.0.0.1:8081/
//	wrk -t2 -c64 http://127.0.0.1:8081/
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	rionet "github.com/gorio/rio/net"
)

const body = "Hello, World!\n"

var (
	response = []byte("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: " +
		strconv.Itoa(len(body)) + "\r\n\r\n" + body)
	responseClose = []byte("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\nContent-Length: " +
		strconv.Itoa(len(body)) + "\r\n\r\n" + body)
	badRequest = []byte("HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
)

// serve is the handler: it answers every whole request in data and
// returns the bytes those requests took.
func serve(c *rionet.LoopConn, data []byte) int {
	used := 0
	for {
		n, close, ok := parse(data[used:])
		if n == 0 {
			return used // an incomplete request: wait for more
		}
		if !ok {
			c.Write(badRequest)
			c.Close()
			return len(data)
		}
		used += n
		if close {
			c.Write(responseClose)
			c.Close()
			return len(data)
		}
		c.Write(response)
	}
}

// parse parses one request at the start of b. It returns its length (0 if
// b does not hold a whole request yet), whether the client asked to close
// the connection, and whether the request is well formed.
func parse(b []byte) (n int, close, ok bool) {
	end := bytes.Index(b, []byte("\r\n\r\n"))
	if end < 0 {
		return 0, false, true
	}
	head := b[:end]
	line, rest, _ := bytes.Cut(head, []byte("\r\n"))
	// Method SP request-target SP HTTP-version
	sp1 := bytes.IndexByte(line, ' ')
	sp2 := bytes.LastIndexByte(line, ' ')
	if sp1 <= 0 || sp2 <= sp1+1 {
		return end + 4, true, false
	}
	version := line[sp2+1:]
	switch string(version) {
	case "HTTP/1.1":
	case "HTTP/1.0":
		close = true // no keep-alive for 1.0 in this demonstration
	default:
		return end + 4, true, false
	}
	length := 0
	for len(rest) > 0 {
		var h []byte
		h, rest, _ = bytes.Cut(rest, []byte("\r\n"))
		name, value, found := bytes.Cut(h, []byte(":"))
		if !found {
			return end + 4, true, false
		}
		value = bytes.TrimSpace(value)
		switch {
		case asciiEqualFold(name, "content-length"):
			l, valid := atoi(value)
			if !valid {
				return end + 4, true, false
			}
			length = l
		case asciiEqualFold(name, "transfer-encoding"):
			return end + 4, true, false // chunked requests are not supported
		case asciiEqualFold(name, "connection"):
			if asciiEqualFold(value, "close") {
				close = true
			}
		}
	}
	total := end + 4 + length
	if len(b) < total {
		return 0, false, true // the body is still arriving
	}
	return total, close, true
}

// atoi parses a decimal Content-Length of up to 9 digits.
func atoi(b []byte) (int, bool) {
	if len(b) == 0 || len(b) > 9 {
		return 0, false
	}
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

func asciiEqualFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range b {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}

func main() {
	addr := flag.String("addr", "127.0.0.1:8081", "address to listen on")
	flag.Parse()

	srv := &rionet.LoopServer{OnData: serve, IdleTimeout: 2 * time.Minute}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("listening on", ln.Addr())

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sig
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	}()
	if err := srv.Serve(ln); err != rionet.ErrServerClosed {
		log.Fatal(err)
	}
}
