package testutil

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"testing"
)

// mainEnv makes a test binary run its package's main instead of its tests.
const mainEnv = "RIO_TEST_AS_MAIN"

// MainOrTests is a TestMain for a command's or example's tests: run by
// RunMain, the test binary is the program (it calls main with the
// arguments it was given and exits 0), otherwise it runs the tests.
func MainOrTests(m *testing.M, main func()) {
	if os.Getenv(mainEnv) == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// RunMain runs the test binary as the program, with args and the extra
// environment variables env, and returns what it wrote and how it exited.
// The package's TestMain must call MainOrTests.
func RunMain(t testing.TB, env []string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	return RunMainInput(t, nil, env, args...)
}

// RunMainInput is RunMain with stdin as the program's standard input (nil:
// none, /dev/null).
func RunMainInput(t testing.TB, stdin io.Reader, env []string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Stdin = stdin
	cmd.Env = append(append(os.Environ(), mainEnv+"=1"), env...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	return o.String(), e.String(), err
}
