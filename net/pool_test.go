package rionet_test

import (
	"io"
	"testing"

	"github.com/gorio/rio"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	rionet "github.com/gorio/rio/net"
)

// TestRingSpillOver: past connsPerRing listeners and connections on the
// package's own rings, new ones go to a new ring (one ring's slots do not
// bound the number of connections), every connection works wherever it
// landed, and the extra rings close when their last connection does (the
// leak check).
func TestRingSpillOver(t *testing.T) {
	ln := listen(t, "tcp")
	require.Equal(t, 1, rionet.PoolRingsForTest())
	t.Cleanup(rionet.SetConnsPerRingForTest(3))

	const n = 6
	rings := map[*rio.Ring]int{rionet.RingOf(ln): 1}
	var clients, servers []*rionet.Conn
	for range n {
		c, s := pair(t, ln)
		clients, servers = append(clients, c), append(servers, s)
		rings[rionet.RingOf(c)]++
		rings[rionet.RingOf(s)]++
	}
	// 1 listener and 12 connections, 3 to a ring: 5 rings.
	assert.Len(t, rings, 5)
	assert.Equal(t, 5, rionet.PoolRingsForTest())
	for r, k := range rings {
		assert.LessOrEqual(t, k, 3, "ring %p", r)
	}
	for i := range n {
		msg := []byte{'a' + byte(i)}
		_, err := clients[i].Write(msg)
		require.NoError(t, err)
		got := make([]byte, 1)
		_, err = io.ReadFull(servers[i], got)
		require.NoError(t, err)
		_, err = servers[i].Write(got)
		require.NoError(t, err)
		_, err = io.ReadFull(clients[i], got)
		require.NoError(t, err)
		assert.Equal(t, msg, got)
	}
	for i := range n {
		require.NoError(t, clients[i].Close())
		require.NoError(t, servers[i].Close())
	}
	assert.Equal(t, 1, rionet.PoolRingsForTest())
}
