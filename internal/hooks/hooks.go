// Package hooks connects packages of this module that must not be connected
// through public API: it lets riotest run a rio.Ring over a simulated
// kernel.
package hooks

import "github.com/gorio/rio/internal/uring"

// WithKernel, set by package rio, returns a rio.Option that makes New use
// the Kernel made by newKernel instead of io_uring_setup. newKernel gets the
// requested SQ size and the parameters New would pass to io_uring_setup,
// and must fill in what the kernel would (CQEntries, Features, offsets).
var WithKernel func(newKernel func(entries uint32, p *uring.Params) (uring.Kernel, error)) any
