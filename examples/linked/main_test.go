package main

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/gorio/rio/internal/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gorio/rio"
)

// The test binary is the program when run by testutil.RunMain.
func TestMain(m *testing.M) { testutil.MainOrTests(m, main) }

func TestLinked(t *testing.T) {
	r, err := rio.New()
	if errors.Is(err, rio.ErrNotSupported) && os.Getenv("RIO_REQUIRE_URING") != "1" {
		t.Skip("io_uring unavailable:", err)
	}
	require.NoError(t, err)
	r.Close()

	path := filepath.Join(t.TempDir(), "out")
	out, stderr, err := testutil.RunMain(t, nil, "-file", path, "-timeout", "5s")
	require.NoError(t, err, stderr)
	for _, want := range []string{
		"write:  48 bytes, err=<nil>\n",
		"fsync:  err=<nil> (link timeout fired: false)\n",
		`read:   48 bytes, err=<nil> (link timeout fired: false): "written, synced and read back in one submission\n"`,
		"pipe read: err=ECANCELED after ",
		"(link timeout fired: true)\n",
		"linked write after it: err=ECANCELED\n",
	} {
		assert.Contains(t, out, want, "output lacks %q", want)
	}
	// The cancelled write never reached the file.
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, "written, synced and read back in one submission\n", string(data), "the file's contents")
}
