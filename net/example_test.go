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

// A UDP echo: ListenPacket gives a net.PacketConn, Dial("udp") a connected
// one that is also a net.Conn, as with package net.
func ExampleListenPacket() {
	pc, err := rionet.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	defer pc.Close()
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			pc.WriteTo(buf[:n], from)
		}
	}()

	c, err := rionet.Dial("udp", pc.LocalAddr().String())
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("datagram"))
	buf := make([]byte, 1500)
	n, _ := c.Read(buf)
	fmt.Println(string(buf[:n]))
	// Output: datagram
}

// RingOf tells whether what a constructor returned runs on io_uring, and
// Available why not, where the package fell back to package net.
func ExampleRingOf() {
	ln, err := rionet.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	defer ln.Close()
	onRing := rionet.RingOf(ln) != nil
	if !onRing {
		log.Printf("package net, because: %v", rionet.Available(nil))
	}
	fmt.Println("on io_uring exactly when it is available:", onRing == (rionet.Available(nil) == nil))
	// Output: on io_uring exactly when it is available: true
}
