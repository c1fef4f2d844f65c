package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gorio/rio"
)

// The test binary is the program: run with RIO_EXAMPLE_MAIN=1 it runs
// main with the arguments it was given.
func TestMain(m *testing.M) {
	if os.Getenv("RIO_EXAMPLE_MAIN") == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestLinked(t *testing.T) {
	r, err := rio.New()
	if errors.Is(err, rio.ErrNotSupported) && os.Getenv("RIO_REQUIRE_URING") != "1" {
		t.Skip("io_uring unavailable:", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	r.Close()

	path := filepath.Join(t.TempDir(), "out")
	cmd := exec.Command(os.Args[0], "-file", path, "-timeout", "5s")
	cmd.Env = append(os.Environ(), "RIO_EXAMPLE_MAIN=1")
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	if err := cmd.Run(); err != nil {
		t.Fatalf("%v: %s", err, e.String())
	}
	out := o.String()
	for _, want := range []string{
		"write:  48 bytes, err=<nil>\n",
		"fsync:  err=<nil> (link timeout fired: false)\n",
		`read:   48 bytes, err=<nil> (link timeout fired: false): "written, synced and read back in one submission\n"`,
		"pipe read: err=ECANCELED after ",
		"(link timeout fired: true)\n",
		"linked write after it: err=ECANCELED\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	// The cancelled write never reached the file.
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(data) != "written, synced and read back in one submission\n" {
		t.Errorf("file holds %q", data)
	}
}
