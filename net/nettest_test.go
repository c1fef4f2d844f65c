package rionet_test

import (
	"net"
	"testing"

	"golang.org/x/net/nettest"
)

func makePipe(t *testing.T, network string) nettest.MakePipe {
	ln := listen(t, network)
	return func() (c1, c2 net.Conn, stop func(), err error) {
		c1, err = dialer.Dial(ln.Addr().Network(), ln.Addr().String())
		if err != nil {
			return nil, nil, nil, err
		}
		c2, err = ln.Accept()
		if err != nil {
			c1.Close()
			return nil, nil, nil, err
		}
		return c1, c2, func() { c1.Close(); c2.Close() }, nil
	}
}

func TestConnTCP(t *testing.T)  { nettest.TestConn(t, makePipe(t, "tcp")) }
func TestConnTCP6(t *testing.T) { nettest.TestConn(t, makePipe(t, "tcp6")) }
func TestConnUnix(t *testing.T) { nettest.TestConn(t, makePipe(t, "unix")) }
