// Package sema is the runtime's semaphore, which sync uses to park and
// wake goroutines: a uint32 count that Acquire waits on and Release
// raises. It parks at once, without the spinning of sync.Mutex's slow
// path, and allocates nothing beside the count. It gives the race
// detector no ordering: callers order memory with a lock of their own.
//
// The two functions are reached with go:linkname. The runtime defines
// them for package sync and marks both "Do not remove or change the type
// signature" because packages outside the standard library use them
// (go.dev/issue/67401), so the linker's linkname check accepts them. If a
// Go release ever withdrew them, this package (and so the build) would
// fail, and a Stream would go back to a channel as its wait token.
package sema

import _ "unsafe" // go:linkname

// Acquire waits until *addr > 0, then decrements it.
//
//go:linkname Acquire sync.runtime_Semacquire
func Acquire(addr *uint32)

//go:linkname release sync.runtime_Semrelease
func release(addr *uint32, handoff bool, skipframes int)

// Release increments *addr and wakes a goroutine waiting in Acquire, if
// one is.
func Release(addr *uint32) { release(addr, false, 0) }
