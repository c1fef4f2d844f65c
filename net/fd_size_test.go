package rionet

import (
	"testing"
	"unsafe"

	"github.com/stretchr/testify/assert"
)

// A server keeps one netFD per connection, so its size is memory per idle
// connection (docs/net.md, "RSS"): 240 bytes is a size class of Go's
// allocator, and one byte more takes it to the next, 256 (as it was before
// rst moved into the flags' padding and curOff became an int32); a flag
// added at the end of the struct once took it to 288.
func TestNetFDSize(t *testing.T) {
	assert.LessOrEqual(t, unsafe.Sizeof(netFD{}), uintptr(240))
}
