package rionet

import (
	"testing"
	"unsafe"

	"github.com/stretchr/testify/assert"
)

// A server keeps one netFD per connection, so its size is memory per idle
// connection (docs/net.md, "RSS"): 256 bytes is a size class of Go's
// allocator, and one byte more takes it to the next, 288. A flag added at
// the end of the struct did that once.
func TestNetFDSize(t *testing.T) {
	assert.LessOrEqual(t, unsafe.Sizeof(netFD{}), uintptr(256))
}
