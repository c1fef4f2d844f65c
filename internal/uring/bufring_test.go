package uring

import (
	"syscall"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestBufRingLayout(t *testing.T) {
	assert.EqualValues(t, 16, unsafe.Sizeof(BufRingEntry{}), "sizeof(struct io_uring_buf)")
	assert.EqualValues(t, 12, unsafe.Offsetof(BufRingEntry{}.Bid))
	assert.EqualValues(t, 14, unsafe.Offsetof(BufRingEntry{}.Resv), "the ring's tail overlays entry 0's resv")

	b, err := NewBufRing(4, 100, 3)
	require.NoError(t, err)
	defer b.Free()
	// Entry 0's bid and the tail share a word; writing one keeps the other.
	for i := 0; i < 9; i++ {
		b.Add(uint16(3 - i%4))
		b.Publish()
		assert.EqualValues(t, i+1, b.Published())
		e := b.entry(uint16(i) & 3)
		assert.EqualValues(t, 3-i%4, e.Bid, "bid of entry %d", i&3)
		assert.EqualValues(t, 100, e.Len)
		assert.Equal(t, uint64(uintptr(unsafe.Pointer(&b.Buf(uint16(3-i%4), 1)[0]))), e.Addr)
	}
	_, err = NewBufRing(3, 100, 0)
	assert.ErrorIs(t, err, syscall.EINVAL)
}
