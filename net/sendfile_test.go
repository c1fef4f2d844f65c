package rionet_test

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	rionet "github.com/gorio/rio/net"
)

var _ io.ReaderFrom = (*rionet.Conn)(nil)

// dataFile writes n random bytes to a file and returns it open, with its
// contents.
func dataFile(t *testing.T, n int) (*os.File, []byte) {
	t.Helper()
	want := make([]byte, n)
	rand.Read(want)
	path := filepath.Join(t.TempDir(), "data")
	require.NoError(t, os.WriteFile(path, want, 0o600))
	f, err := os.Open(path)
	require.NoError(t, err)
	t.Cleanup(func() { f.Close() })
	return f, want
}

// receive reads c to the end in the background; the channel gives what it
// read.
func receive(c net.Conn) <-chan []byte {
	ch := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(c)
		ch <- b
	}()
	return ch
}

// io.Copy from a file, whole (through os.File.WriteTo) and a range (an
// io.LimitedReader, as http.ServeContent copies): the bytes arrive exact,
// the file position moves by what was sent, and rionet sends without
// copying.
func TestReadFromFile(t *testing.T) {
	compare(t, func(t *testing.T, s stack, tr *transcript) {
		f, want := dataFile(t, 3<<20+17)
		c, srv := tcpPair(t, s, "tcp4")
		got := receive(c)
		sent, stop := rionet.SendFileBytesForTest()
		defer stop()

		n, err := io.Copy(srv, f)
		tr.add("Copy whole %d %v", n, err)
		pos, _ := f.Seek(0, io.SeekCurrent)
		tr.add("position %d", pos)
		_, err = f.Seek(1000, io.SeekStart)
		require.NoError(t, err)
		n, err = io.CopyN(srv, f, 123456)
		tr.add("CopyN %d %v", n, err)
		pos, _ = f.Seek(0, io.SeekCurrent)
		tr.add("position %d", pos)
		// Past the end: what there is, and io.EOF from CopyN.
		_, err = f.Seek(int64(len(want)-10), io.SeekStart)
		require.NoError(t, err)
		n, err = io.CopyN(srv, f, 100)
		tr.add("CopyN past the end %d %v", n, err)
		require.NoError(t, srv.(interface{ CloseWrite() error }).CloseWrite())

		all := append(append(append([]byte{}, want...), want[1000:1000+123456]...), want[len(want)-10:]...)
		b := <-got
		tr.add("received %d bytes, exact=%v", len(b), bytes.Equal(all, b))
		if s.name == "rionet" {
			assert.Equal(t, int64(len(all)), sent.Load(), "every byte sent without a copy")
		}
	})
}

// Readers other than files are copied, and a Conn's ReadFrom does not
// call itself (io.Copy would, through a plain wrapper).
func TestReadFromOthers(t *testing.T) {
	ensureRing(t)
	checkLeaks(t)
	c, srv := tcpPair(t, rioStack, "tcp4")
	got := receive(c)
	sent, stop := rionet.SendFileBytesForTest()
	defer stop()
	want := bytes.Repeat([]byte("not a file "), 50000)

	n, err := srv.(io.ReaderFrom).ReadFrom(bytes.NewReader(want))
	require.NoError(t, err)
	assert.Equal(t, int64(len(want)), n)
	n, err = io.Copy(srv, struct{ io.Reader }{strings.NewReader("plain")})
	require.NoError(t, err)
	assert.Equal(t, int64(5), n)
	// A pipe is a file, but not a regular one: copied.
	pr, pw, err := os.Pipe()
	require.NoError(t, err)
	go func() {
		pw.Write([]byte("piped"))
		pw.Close()
	}()
	n, err = io.Copy(srv, pr)
	pr.Close()
	require.NoError(t, err)
	assert.Equal(t, int64(5), n)

	// A rionet Conn as the source: a proxy, through its WriteTo.
	c2, srv2 := tcpPair(t, rioStack, "tcp4")
	go func() {
		c2.Write(want)
		c2.Close()
	}()
	n, err = io.Copy(srv, srv2)
	require.NoError(t, err)
	assert.Equal(t, int64(len(want)), n)
	srv.(interface{ CloseWrite() error }).CloseWrite()
	b := <-got
	assert.True(t, bytes.Equal(append(append(append([]byte{}, want...), "plainpiped"...), want...), b), "received %d bytes", len(b))
	assert.Zero(t, sent.Load(), "nothing went through sendfile")
}

// The write deadline ends a ReadFrom that waits for room, with the count
// of what was sent and the file position there; Close ends it too.
func TestReadFromDeadline(t *testing.T) {
	compare(t, func(t *testing.T, s stack, tr *transcript) {
		f, _ := dataFile(t, 64<<20)
		c, srv := tcpPair(t, s, "tcp4")
		tr.name(c.LocalAddr(), "C")
		tr.name(srv.LocalAddr(), "S")
		tr.nameString(f.Name(), "FILE")
		// Nobody reads: the socket fills up.
		require.NoError(t, srv.SetWriteDeadline(time.Now().Add(100*time.Millisecond)))
		n, err := io.Copy(srv, f)
		tr.err("Copy past the deadline", err)
		pos, _ := f.Seek(0, io.SeekCurrent)
		tr.add("sent some=%v not all=%v position=sent %v", n > 0, n < 64<<20, pos == n)

		require.NoError(t, srv.SetWriteDeadline(time.Time{}))
		done := make(chan error, 1)
		go func() {
			_, err := io.Copy(srv, f)
			done <- err
		}()
		time.Sleep(50 * time.Millisecond)
		require.NoError(t, srv.Close())
		tr.err("Copy when closed", <-done)

		// Through an io.LimitedReader, as http.ServeContent copies:
		// package net's TCPConn.ReadFrom.
		c2, srv2 := tcpPair(t, s, "tcp4")
		tr.name(c2.LocalAddr(), "C2")
		tr.name(srv2.LocalAddr(), "S2")
		require.NoError(t, srv2.SetWriteDeadline(time.Now().Add(100*time.Millisecond)))
		n, err = io.CopyN(srv2, f, 32<<20)
		tr.err("CopyN past the deadline", err)
		tr.add("sent some=%v", n > 0)
	})
}

// http.ServeFile on a rionet listener: whole files, a range, several
// ranges, HEAD, as package net serves them; rionet sends the bodies
// without copying.
func TestServeFile(t *testing.T) {
	compare(t, func(t *testing.T, s stack, tr *transcript) {
		f, want := dataFile(t, 1<<20+3)
		f.Close()
		ln, err := s.listen(t.Context(), opts{}, "tcp4", "127.0.0.1:0")
		require.NoError(t, err)
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.ServeFile(w, r, f.Name())
		})}
		go srv.Serve(ln)
		defer srv.Close()
		sent, stop := rionet.SendFileBytesForTest()
		defer stop()
		tr.name(ln.Addr(), "SRV")
		tr2 := &http.Transport{DisableCompression: true}
		defer tr2.CloseIdleConnections()
		client := &http.Client{Transport: tr2}
		get := func(method, rng string) (*http.Response, []byte) {
			req, err := http.NewRequest(method, "http://"+ln.Addr().String()+"/data", nil)
			require.NoError(t, err)
			if rng != "" {
				req.Header.Set("Range", rng)
			}
			resp, err := client.Do(req)
			require.NoError(t, err)
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			require.NoError(t, err)
			return resp, body
		}
		resp, body := get("GET", "")
		tr.add("GET %d len=%s exact=%v", resp.StatusCode, resp.Header.Get("Content-Length"), bytes.Equal(want, body))
		resp, body = get("GET", "bytes=1000-1999")
		tr.add("GET range %d %s exact=%v", resp.StatusCode, resp.Header.Get("Content-Range"), bytes.Equal(want[1000:2000], body))
		resp, body = get("GET", fmt.Sprintf("bytes=%d-", len(want)-5))
		tr.add("GET tail %d %s exact=%v", resp.StatusCode, resp.Header.Get("Content-Range"), bytes.Equal(want[len(want)-5:], body))
		resp, body = get("GET", "bytes=0-9,100-109")
		tr.add("GET two ranges %d %s has both=%v", resp.StatusCode, strings.Split(resp.Header.Get("Content-Type"), ";")[0],
			bytes.Contains(body, want[0:10]) && bytes.Contains(body, want[100:110]))
		resp, body = get("HEAD", "")
		tr.add("HEAD %d len=%s body=%d", resp.StatusCode, resp.Header.Get("Content-Length"), len(body))
		resp, _ = get("GET", "bytes=99999999-")
		tr.add("GET bad range %d", resp.StatusCode)
		if s.name == "rionet" {
			// net/http copies the first 512 bytes itself (to sniff
			// the type) and the multipart body through a writer
			// of its own; the rest goes without a copy.
			assert.GreaterOrEqual(t, sent.Load(), int64(len(want)-512), "sent without copying")
		}
	})
}
