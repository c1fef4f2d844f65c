package file

import (
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"testing/fstest"
)

// makeTree creates a small tree of files, directories and symbolic links
// under dir and returns the names of its files.
func makeTree(t testing.TB, dir string) []string {
	t.Helper()
	var files []string
	for _, d := range []string{"a", "a/b", "a/b/c", "empty", "d"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for i, f := range []string{"top.txt", "a/one", "a/b/two", "a/b/c/three", "d/x.go", "d/y.go", "d/.hidden"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte(f+string(rune('A'+i))), 0o644); err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	if err := os.Symlink("one", filepath.Join(dir, "a/link")); err != nil {
		t.Fatal(err)
	}
	return files
}

func TestDirFSTestFS(t *testing.T) {
	checkLeaks(t)
	dir := t.TempDir()
	files := makeTree(t, dir)
	if err := fstest.TestFS(DirFS(dir), append(files, "a/link")...); err != nil {
		t.Fatal(err)
	}
	// The same checks pass for os.DirFS, so that a difference is ours.
	if err := fstest.TestFS(os.DirFS(dir), files...); err != nil {
		t.Fatal(err)
	}
	var _ fs.ReadLinkFS = DirFS(dir).(fs.ReadLinkFS)
}
