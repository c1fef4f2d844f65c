package rionet

// SetConnsPerRingForTest sets how many listeners and connections one of
// the package's own rings takes before they spill over to another, and
// returns a function that restores it.
func SetConnsPerRingForTest(n int) (restore func()) {
	poolMu.Lock()
	defer poolMu.Unlock()
	old := connsPerRing
	connsPerRing = n
	return func() {
		poolMu.Lock()
		connsPerRing = old
		poolMu.Unlock()
	}
}

// PoolRingsForTest is the number of the package's own rings open now.
func PoolRingsForTest() int {
	poolMu.Lock()
	defer poolMu.Unlock()
	return len(pool)
}
