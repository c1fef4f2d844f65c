package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gorio/rio/internal/testutil"

	"github.com/gorio/rio"
)

// The test binary is the program when run by testutil.RunMain.
func TestMain(m *testing.M) { testutil.MainOrTests(m, main) }

// A tiny run of every workload: the table, the JSON and the SVG come out.
func TestSmoke(t *testing.T) {
	if r, err := rio.New(); err != nil {
		if errors.Is(err, rio.ErrNotSupported) && os.Getenv("RIO_REQUIRE_URING") != "1" {
			t.Skip("io_uring unavailable:", err)
		}
		t.Fatal(err)
	} else {
		r.Close()
	}
	dir := t.TempDir()
	jsonOut, svgOut := filepath.Join(dir, "out.json"), filepath.Join(dir, "out.svg")
	cmd := exec.Command(os.Args[0], "-rounds", "2", "-dur", "100ms", "-file-mib", "4", "-dir", dir,
		"-conns", "1,4", "-http-conns", "4", "-depths", "2,4", "-hot-workers", "4",
		"-peers=false", "-fio=false", "-c=false", "-json", jsonOut, "-svg", svgOut)
	// Race-enabled binaries sleep 1s at exit unless told otherwise, and
	// every measurement is a child process.
	cmd.Env = append(os.Environ(), "RIO_TEST_AS_MAIN=1", "GORACE=atexit_sleep_ms=0 "+os.Getenv("GORACE"))
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	start := time.Now()
	if err := cmd.Run(); err != nil {
		t.Fatalf("%v\nstdout:\n%s\nstderr:\n%s", err, o.String(), e.String())
	}
	t.Logf("took %v\n%s", time.Since(start), o.String())
	out := o.String()
	for _, want := range []string{"workload", "NOP", "single", "batch32", "O_DIRECT 4K randread", "depth=4",
		"hot 4K randread", "sequential copy", "TCP echo", "conns=4", "HTTP hello", "rio file async", "net (epoll)", "base"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q", want)
		}
	}
	if !strings.Contains(e.String(), "round 2/2") {
		t.Errorf("no progress lines on stderr:\n%s", e.String())
	}
	var rep report
	b, err := os.ReadFile(jsonOut)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	impls := map[string]bool{}
	for _, r := range rep.Rows {
		impls[r.Workload+"/"+r.Impl] = true
		if len(r.Values) != 2 || r.Median <= 0 {
			t.Errorf("row %+v: want 2 positive values", r)
		}
		if r.Impl == r.Baseline && r.Ratio != 1 {
			t.Errorf("baseline row %+v: ratio %v", r, r.Ratio)
		}
	}
	for _, want := range []string{"nop/rio", "direct/os.File", "direct/rio file", "direct/rio file async", "hot/rio ring",
		"copy/rio file", "echo/net (epoll)", "http/net (epoll)", "echo/rio net", "http/rio net"} {
		if !impls[want] {
			t.Errorf("no %s rows in the JSON", want)
		}
	}
	svg, err := os.ReadFile(svgOut)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(svg, []byte("<svg")) || !bytes.Contains(svg, []byte("<polyline")) {
		t.Errorf("SVG looks wrong:\n%.300s", svg)
	}
	// No data files are left behind.
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), "riobench-data-") {
			t.Errorf("left %s behind", e.Name())
		}
	}
}

func TestBadFlags(t *testing.T) {
	for _, args := range [][]string{{"-workloads", "nope"}, {"-conns", "0"}, {"extra"}} {
		cmd := exec.Command(os.Args[0], args...)
		cmd.Env = append(os.Environ(), "RIO_TEST_AS_MAIN=1")
		if out, err := cmd.CombinedOutput(); err == nil {
			t.Errorf("%v: no error\n%s", args, out)
		}
	}
}

func TestMedianAndNice(t *testing.T) {
	if m := median([]float64{3, 1, 2}); m != 2 {
		t.Errorf("median = %v", m)
	}
	if m := median([]float64{4, 1, 3, 2}); m != 2.5 {
		t.Errorf("median = %v", m)
	}
	for in, want := range map[float64]float64{0.7: 1, 130e3: 200e3, 74e3: 100e3, 2.1e6: 2.5e6} {
		if got := niceCeil(in); got != want {
			t.Errorf("niceCeil(%v) = %v, want %v", in, got, want)
		}
	}
	if got, err := intList("256, 1,16"); err != nil || len(got) != 3 || got[0] != 1 || got[2] != 256 {
		t.Errorf("intList = %v, %v", got, err)
	}
}

func TestReadResponse(t *testing.T) {
	resp := "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\ncontent-length: 14\r\n\r\nHello, World!\n" +
		"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi"
	br := bufio.NewReader(strings.NewReader(resp))
	for i := 0; i < 2; i++ {
		if err := readResponse(br); err != nil {
			t.Fatal(err)
		}
	}
	if err := readResponse(bufio.NewReader(strings.NewReader("HTTP/1.1 500 Oops\r\n\r\n"))); !errors.Is(err, errBadResponse) {
		t.Errorf("500: %v", err)
	}
}
