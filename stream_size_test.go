package rio

import (
	"testing"
	"unsafe"

	"github.com/stretchr/testify/assert"
)

// A server keeps one Stream per idle connection (rionet's multishot
// receive), so its size is the adapter's memory per connection: with an
// opExtra inside it a Stream took 224 bytes (docs/net.md, "RSS"). 128 is a
// size class of Go's allocator, the op (64 bytes) and the stream's own
// fields.
func TestStreamSize(t *testing.T) {
	assert.LessOrEqual(t, unsafe.Sizeof(Stream[Buffer]{}), uintptr(128), "Stream[Buffer]")
	assert.LessOrEqual(t, unsafe.Sizeof(op{}), uintptr(64), "op")
}

// A Stream's op finds its hook without an opExtra: the CQEs of a
// multishot operation go to the stream.
func TestStreamHookWithoutExtra(t *testing.T) {
	s := newStream(func(res int32, flags uint32) int32 { return res })
	assert.Nil(t, s.op.x, "a new Stream allocates no opExtra")
	h, ok := s.op.hook().(*streamCore)
	assert.True(t, ok)
	assert.Same(t, &s.streamCore, h)
}
