package rionet_test

import (
	"fmt"
	"io"
	"log"
	"net/http"

	rionet "github.com/gorio/rio/net"
)

// A server switches to io_uring by listening with rionet; the rest is the
// usual net.Listener and net.Conn code.
func Example() {
	ln, err := rionet.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		io.Copy(c, c) // echo
	}()

	c, err := rionet.Dial("tcp", ln.Addr().String())
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("ping"))
	buf := make([]byte, 4)
	io.ReadFull(c, buf)
	fmt.Println(string(buf))
	// Output: ping
}

// net/http works unchanged on both sides: a server on a rionet Listener,
// and a client whose Transport dials with a rionet Dialer.
func ExampleDialer() {
	ln, err := rionet.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "hello over io_uring")
	})}
	go srv.Serve(ln)
	defer srv.Close()

	d := &rionet.Dialer{}
	tr := &http.Transport{DialContext: d.DialContext}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Get("http://" + ln.Addr().String() + "/")
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	fmt.Println(resp.Status, string(body))
	// Output: 200 OK hello over io_uring
}
