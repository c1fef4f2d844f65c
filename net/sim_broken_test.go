package rionet_test

import (
	"fmt"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	rionet "github.com/gorio/rio/net"
	"github.com/gorio/rio/riotest"
)

// Acceptance for issue 5 at the net adapter: a deliberately broken writer
// (a test-only adapter that sends each chunk once on the ring and takes
// the send for complete, ignoring short sends) fails the byte-exactness
// check under ShortIO, while the real Conn.Write (with ring sends) passes
// with the same seed and faults, and the broken writer passes without
// ShortIO.
func TestSimCatchesBrokenNetWriter(t *testing.T) {
	restore := rionet.SetRingSendsForTest(true)
	defer restore()
	short := riotest.Faults{ShortIO: 0.5, MaxDelay: 4}
	calm := riotest.Faults{MaxDelay: 4}
	run := func(seed uint64, f riotest.Faults, broken bool) (got, want int) {
		t.Run(fmt.Sprintf("seed=%d/shortIO=%v/broken=%v", seed, f.ShortIO > 0, broken), func(t *testing.T) {
			s := newSimNet(t, seed, f, "unix")
			client, server := s.pair()
			rng := rand.New(rand.NewPCG(seed, 1))
			data := randBytes(rng, 64<<10)
			want = len(data)
			read := make(chan []byte, 1)
			go func() { b, _ := io.ReadAll(server); read <- b }()
			if broken {
				fd := connFD(t, client)
				for rest := data; len(rest) > 0; {
					k := min(len(rest), 1+rng.IntN(4096))
					_, err := s.r.Send(fd, rest[:k], unix.MSG_NOSIGNAL).Wait()
					require.NoError(t, err, "Send")
					rest = rest[k:] // the bug: n < k is ignored
				}
			} else {
				require.NoError(t, writeChunks(client, data, rng, 4096))
			}
			client.CloseWrite()
			b := await(t, read, hang, "peer reads")
			got = len(b)
			if !broken || f.ShortIO == 0 {
				sameBytes(t, "stream", b, data)
			}
		})
		return got, want
	}
	caught := 0
	for seed := uint64(1); seed <= 4; seed++ {
		run(seed, short, false)
		run(seed, calm, true)
		if got, want := run(seed, short, true); got != want {
			caught++
		}
	}
	assert.NotZero(t, caught, "the writer that ignores short sends lost nothing under ShortIO")
}
