package file

import (
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"testing/fstest"

	"github.com/stretchr/testify/require"
)

// makeTree creates a small tree of files, directories and symbolic links
// under dir and returns the names of its files.
func makeTree(t testing.TB, dir string) []string {
	t.Helper()
	var files []string
	for _, d := range []string{"a", "a/b", "a/b/c", "empty", "d"} {
		require.NoError(t, os.MkdirAll(filepath.Join(dir, d), 0o755))
	}
	for i, f := range []string{"top.txt", "a/one", "a/b/two", "a/b/c/three", "d/x.go", "d/y.go", "d/.hidden"} {
		require.NoError(t, os.WriteFile(filepath.Join(dir, f), []byte(f+string(rune('A'+i))), 0o644))
		files = append(files, f)
	}
	require.NoError(t, os.Symlink("one", filepath.Join(dir, "a/link")))
	return files
}

func TestDirFSTestFS(t *testing.T) {
	checkLeaks(t)
	dir := t.TempDir()
	files := makeTree(t, dir)
	require.NoError(t, fstest.TestFS(DirFS(dir), append(files, "a/link")...))
	// The same checks pass for os.DirFS, so that a difference is ours.
	require.NoError(t, fstest.TestFS(os.DirFS(dir), files...))
	var _ fs.ReadLinkFS = DirFS(dir).(fs.ReadLinkFS)
}
