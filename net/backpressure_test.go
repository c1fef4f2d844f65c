package rionet_test

import (
	"bytes"
	"io"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	rionet "github.com/gorio/rio/net"
)

// TestSharedBuffersRunDry has many connections receive data their readers
// do not read, more than the shared buffer ring holds. Connections that do
// read must keep working (receiving directly when the ring is dry), and
// every stalled connection must later read its data whole and in order.
func TestSharedBuffersRunDry(t *testing.T) {
	ln := listen(t, "tcp")
	const (
		stalled = 160
		size    = 80 << 10 // more than one connection's 64 KiB limit
	)
	type pairT struct{ c, s *rionet.Conn }
	pairs := make([]pairT, stalled)
	for i := range pairs {
		c, s := pair(t, ln)
		pairs[i] = pairT{c, s}
		// One Read arms the multishot receive; then the reader stalls.
		_, err := c.Write([]byte{byte(i)})
		require.NoError(t, err)
		b := make([]byte, 1)
		_, err = io.ReadFull(s, b)
		require.NoError(t, err)
	}
	payload := func(i int) []byte {
		p := make([]byte, size)
		for j := range p {
			p[j] = byte(i + j/4096)
		}
		return p
	}
	var wg sync.WaitGroup
	for i, p := range pairs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := p.c.Write(payload(i))
			assert.NoError(t, err)
		}()
	}

	// Meanwhile a fresh connection echoes normally.
	c, s := pair(t, ln)
	for range 20 {
		_, err := c.Write([]byte("ping"))
		require.NoError(t, err)
		got := make([]byte, 4)
		_, err = io.ReadFull(s, got)
		require.NoError(t, err)
		assert.Equal(t, "ping", string(got))
	}

	// Now every stalled reader reads its data.
	for i, p := range pairs {
		got := make([]byte, size)
		_, err := io.ReadFull(p.s, got)
		require.NoError(t, err)
		require.True(t, bytes.Equal(got, payload(i)), "connection %d: data differs", i)
	}
	wg.Wait()
}
