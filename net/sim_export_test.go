package rionet

// setRingSends switches every Write to a send on the ring (as
// RIONET_SEND=ring does), so that the simulated kernel's short sends and
// injected errors reach Write, and returns a function that restores the
// previous mode. Only the simulation tests use it, between connections:
// no Write may be running while it is called.
func setRingSends(v bool) (restore func()) {
	old := ringSends
	ringSends = v
	return func() { ringSends = old }
}

// SetRingSendsForTest exports setRingSends to the external test package.
var SetRingSendsForTest = setRingSends
