package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"time"
)

// localNet is riobench's own network harness (netchild.go), for a
// checkout whose bench/net does not print JSON results: the echo
// scenarios with the same connections, message sizes and CPUs as
// bench/net's, and the HTTP hello with riobench's own keep-alive client
// instead of wrk. It measures req/s only. The idle scenario needs
// bench/net.
func (b *bench) localNet(scen []netScenario) rowSource {
	dur := b.o.dur
	src := &altSource{rounds: b.o.rounds, each: dur + 400*time.Millisecond, timeout: 3*dur + 90*time.Second}
	var impls []string
	for _, n := range []string{"std", "rio"} {
		if _, ok := listeners[n]; ok {
			impls = append(impls, n)
		}
	}
	for _, sc := range scen {
		switch sc.workload {
		case "echo":
		case "http":
			sc.param = fmt.Sprintf("conns=%d client=riobench", sc.conns)
		default:
			b.r.note("network scenario %s: needs bench/net with JSON output", sc.name)
			continue
		}
		src.gs = append(src.gs, netGroup(sc, "riobench"))
		u := altUnit{workload: sc.workload, param: sc.param}
		for _, n := range impls {
			srv := spec{Role: sc.workload + "-server", Impl: n, MaxLife: 3*dur + time.Minute}
			cli := spec{Role: sc.workload + "-client", Dur: dur, Conns: sc.conns, Msg: sc.msg}
			u.impls = append(u.impls, impl{implLabel(n), b.netPair(srv, sc.srvCPU, cli, sc.cliCPU)})
		}
		src.units = append(src.units, u)
	}
	if len(src.units) == 0 {
		return nil
	}
	return src
}

// netPair starts a server child, then a client child against it.
func (b *bench) netPair(srv spec, srvCPU []int, cli spec, cliCPU []int) func(ctx context.Context) ([]sample, error) {
	return func(ctx context.Context) ([]sample, error) {
		arg, _ := json.Marshal(srv)
		cmd := exec.CommandContext(ctx, b.self, "child", string(arg))
		stdin, err := cmd.StdinPipe()
		if err != nil {
			return nil, err
		}
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			return nil, err
		}
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		cmd.WaitDelay = 5 * time.Second
		if err := startOn(cmd, srvCPU); err != nil {
			return nil, err
		}
		defer func() {
			stdin.Close()
			done := make(chan struct{})
			go func() { cmd.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				cmd.Process.Kill()
				<-done
			}
		}()
		addr := make(chan string, 1)
		go func() {
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				if a, ok := strings.CutPrefix(sc.Text(), "ADDR "); ok {
					addr <- a
				}
			}
			io.Copy(io.Discard, stdout)
		}()
		select {
		case cli.Addr = <-addr:
		case <-time.After(10 * time.Second):
			return nil, fmt.Errorf("server did not start: %s", firstLine(stderr.Bytes(), errors.New("timeout")))
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		carg, _ := json.Marshal(cli)
		res, err := b.child(exec.CommandContext(ctx, b.self, "child", string(carg)), cliCPU)
		if err != nil && stderr.Len() > 0 {
			err = fmt.Errorf("%v (server: %s)", err, firstLine(stderr.Bytes(), nil))
		}
		return res, err
	}
}
