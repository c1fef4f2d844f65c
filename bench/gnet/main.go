// Command gnet is the gnet v2 echo server that bench/loop compares rionet's
// event loops with. It lives in a module of its own so that rio's go.mod
// never gains gnet. It is gnet's own echo example in substance: multicore
// (one event loop per CPU), OnTraffic writes back what it reads.
//
//	cd bench/gnet && go build -o /tmp/gnet-echo . && /tmp/gnet-echo -addr 127.0.0.1:0
//
// It prints "listening ADDR" once it accepts, like bench/loop's other
// servers, and stops on SIGTERM.
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/panjf2000/gnet/v2"
	"github.com/panjf2000/gnet/v2/pkg/logging"
)

type echo struct {
	gnet.BuiltinEventEngine
	addr string
}

func (e *echo) OnBoot(gnet.Engine) gnet.Action {
	fmt.Println("listening", e.addr)
	return gnet.None
}

func (e *echo) OnTraffic(c gnet.Conn) gnet.Action {
	buf, _ := c.Next(-1)
	c.Write(buf)
	return gnet.None
}

// stderrLogger sends gnet's log to standard error: standard output is for
// the "listening" line, which bench/net's -x reads as the first line.
type stderrLogger struct{}

var _ logging.Logger = stderrLogger{}

func (stderrLogger) Debugf(string, ...any) {}
func (stderrLogger) Infof(f string, a ...any) {
	fmt.Fprintf(os.Stderr, "gnet: "+f+"\n", a...)
}
func (stderrLogger) Warnf(f string, a ...any)  { stderrLogger{}.Infof(f, a...) }
func (stderrLogger) Errorf(f string, a ...any) { stderrLogger{}.Infof(f, a...) }
func (stderrLogger) Fatalf(f string, a ...any) {
	stderrLogger{}.Infof(f, a...)
	os.Exit(1)
}

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "listen address")
	reuse := flag.Bool("reuseport", false, "SO_REUSEPORT listener per loop")
	loops := flag.Int("loops", 0, "event loops (0: one per CPU)")
	lock := flag.Bool("lock", false, "lock each loop to its OS thread")
	flag.Parse()

	// gnet takes an address, not a listener; pick the port here so that
	// it can be printed.
	a := *addr
	if host, port, err := net.SplitHostPort(a); err == nil && port == "0" {
		l, err := net.Listen("tcp", a)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		a = net.JoinHostPort(host, fmt.Sprint(l.Addr().(*net.TCPAddr).Port))
		l.Close()
	}
	proto := "tcp://" + a
	go func() {
		ch := make(chan os.Signal, 1)
		signal.Notify(ch, syscall.SIGTERM, syscall.SIGINT)
		<-ch
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		gnet.Stop(ctx, proto)
	}()
	opts := []gnet.Option{gnet.WithMulticore(*loops == 0), gnet.WithReusePort(*reuse), gnet.WithLockOSThread(*lock), gnet.WithLogger(stderrLogger{})}
	if *loops > 0 {
		opts = append(opts, gnet.WithNumEventLoop(*loops))
	}
	if err := gnet.Run(&echo{addr: a}, proto, opts...); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
