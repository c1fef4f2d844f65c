package rio_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"syscall"
	"testing"

	"github.com/gorio/rio/riotest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/gorio/rio"
	"github.com/gorio/rio/internal/sim"
)

// Socket operations of the core over the simulated kernel: short sends,
// partial receives, ENOBUFS from a provided buffer ring, multishot
// receives that end early. The stream must arrive whole and in order.

func socketPair(t *testing.T) (int, int) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	require.NoError(t, err)
	t.Cleanup(func() { unix.Close(fds[0]); unix.Close(fds[1]) })
	return fds[0], fds[1]
}

func streamData() []byte {
	var b bytes.Buffer
	for i := 0; b.Len() < 20000; i++ {
		fmt.Fprintf(&b, "%d,", i)
	}
	return b.Bytes()
}

// sendAll sends b with Send in pieces, completing short sends and retrying
// EINTR and EAGAIN.
func sendAll(r *rio.Ring, fd int, b []byte) error {
	for len(b) > 0 {
		n, err := r.Send(fd, b[:min(len(b), 1000)], 0).Wait()
		if errors.Is(err, syscall.EINTR) || errors.Is(err, syscall.EAGAIN) {
			continue
		}
		if err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

// recvMultishot receives until end of stream with RecvMultishot, starting
// a new stream when one ends early (ENOBUFS, EINTR, EAGAIN). The broken
// variant takes an early end for end of stream.
func recvMultishot(t *testing.T, r *rio.Ring, fd int, nbuf int, broken bool) []byte {
	br, err := r.NewBufferRing(7, nbuf, 256)
	require.NoError(t, err)
	defer func() { assert.NoError(t, br.Close()) }()
	var got []byte
	for {
		s := r.RecvMultishot(fd, br, 0)
		for {
			b, err := s.Next()
			if err == io.EOF {
				break // ended early: start again
			}
			if err != nil {
				require.True(t, errors.Is(err, syscall.ENOBUFS) || errors.Is(err, syscall.EINTR) || errors.Is(err, syscall.EAGAIN), "RecvMultishot: %v", err)
				if broken {
					s.Cancel()
					for _, err := s.Next(); err != io.EOF; _, err = s.Next() {
					}
					return got
				}
				continue
			}
			if b.N == 0 {
				for _, err := s.Next(); err != io.EOF; _, err = s.Next() {
				}
				return got
			}
			got = append(got, br.Bytes(b.ID, b.N)...)
			br.Release(b.ID)
		}
	}
}

func TestSimSocketStream(t *testing.T) {
	riotest.ForSeeds(t, 6, func(t *testing.T, seed uint64) {
		f := allFaults()
		f.CancelRace = 0
		r, k := simRing(t, sim.Config{Seed: seed, Faults: f}, rio.WithEntries(8))
		a, b := socketPair(t)
		data := streamData()
		done := make(chan error, 1)
		go func() {
			err := sendAll(r, a, data)
			unix.Shutdown(a, unix.SHUT_WR)
			done <- err
		}()
		got := recvMultishot(t, r, b, 8, false) // runs dry: real ENOBUFS too
		require.NoError(t, <-done)
		require.Equal(t, len(data), len(got))
		require.True(t, bytes.Equal(data, got), "stream corrupted")
		assert.Positive(t, k.Stats().CQEs)
	})
}

// ENOBUFS acceptance at the public API: a receiver that takes a stream
// ended by ENOBUFS for the end of the data loses the rest.
func TestSimCatchesBrokenNoBufsHandling(t *testing.T) {
	run := func(seed uint64, f sim.Faults, broken bool) int {
		var n int
		t.Run(fmt.Sprintf("seed=%d/broken=%v", seed, broken), func(t *testing.T) {
			r, _ := simRing(t, sim.Config{Seed: seed, Faults: f}, rio.WithEntries(8))
			a, b := socketPair(t)
			data := streamData()
			go func() { sendAll(r, a, data); unix.Shutdown(a, unix.SHUT_WR) }()
			n = len(recvMultishot(t, r, b, 128, broken)) // never runs dry by itself
		})
		return n
	}
	f := sim.Faults{NoBufs: 0.5}
	want := len(streamData())
	caught := 0
	for seed := uint64(1); seed <= 6; seed++ {
		assert.Equal(t, want, run(seed, f, false), "correct receiver")
		assert.Equal(t, want, run(seed, sim.Faults{MaxDelay: 4}, true), "broken receiver without NoBufs")
		if run(seed, f, true) < want {
			caught++
		}
	}
	assert.Positive(t, caught, "the broken receiver lost nothing under NoBufs")
}
