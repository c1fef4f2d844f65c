package rionet

import "sync/atomic"

// RecvStreamEndedForTest reports whether c's multishot receive has been
// armed and the kernel has ended it (its last result is queued), reaping
// what is ready (nobody else may, with nobody waiting).
func RecvStreamEndedForTest(c *Conn) bool {
	s := c.fd.stream.Load()
	if s == nil {
		return false
	}
	s.Err()
	return s.Ended()
}

// SendFileBytesForTest counts the bytes ReadFrom has sent without copying,
// from now until the returned function is called.
func SendFileBytesForTest() (n *atomic.Int64, stop func()) {
	n = new(atomic.Int64)
	testHookSendFile = func(w int64) { n.Add(w) }
	return n, func() { testHookSendFile = nil }
}

// SetUDPRingOnlyForTest makes PacketConns receive and send on the ring
// only, and returns a function that restores the mode.
func SetUDPRingOnlyForTest(v bool) (restore func()) {
	old := udpRingOnly
	udpRingOnly = v
	return func() { udpRingOnly = old }
}

// SetUDPMultishotForTest makes UDP PacketConns receive with a multishot
// recvmsg, and returns a function that restores
// the mode. Only between PacketConns: none may be receiving.
func SetUDPMultishotForTest(v bool) (restore func()) {
	old := udpMultishot
	udpMultishot = v
	return func() { udpMultishot = old }
}

// FDOfForTest returns c's socket, which keeps the socket (not c)
// reachable, and its descriptor number.
func FDOfForTest(c *Conn) (fd any, sysfd int) { return c.fd, c.fd.sysfd }

// FDStateForTest reports whether fd, from FDOfForTest, is closing, and how
// many references its methods hold.
func FDStateForTest(fd any) (closing bool, refs int) {
	f := fd.(*netFD)
	return f.life.Closing(), f.life.Refs()
}
