package rio

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// The model-based test runs seeded random sequences of file operations
// through the ring on one file and through os.File on another, and compares
// every observation and the final contents.

type fileOp struct {
	Kind string
	Off  int64
	Len  int
	Data []byte `cmp:"-"`
}

type observation struct {
	Op   string
	N    int
	Err  string // errno name, or ""
	Data string // bytes read (a string: go-cmp compares those at once)
	Size int64  // file size after the op
}

func errName(err error) string {
	if err == nil {
		return ""
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errno.Error()
	}
	return err.Error()
}

func genProgram(rng *rand.Rand, n int) []fileOp {
	ops := make([]fileOp, n)
	for i := range ops {
		off := rng.Int64N(64 << 10)
		if rng.IntN(4) == 0 {
			off = rng.Int64N(4096)
		}
		l := rng.IntN(16 << 10)
		switch k := rng.IntN(100); {
		case k < 35:
			data := make([]byte, l)
			for j := range data {
				data[j] = byte(rng.Uint32())
			}
			ops[i] = fileOp{Kind: "write", Off: off, Len: l, Data: data}
		case k < 74:
			ops[i] = fileOp{Kind: "read", Off: off, Len: l}
		case k < 81:
			ops[i] = fileOp{Kind: "readpastEOF", Len: l}
		case k < 83:
			ops[i] = fileOp{Kind: "fsync"}
		case k < 85:
			ops[i] = fileOp{Kind: "fdatasync"}
		case k < 92:
			ops[i] = fileOp{Kind: "fallocate", Off: off, Len: l + 1}
		default:
			ops[i] = fileOp{Kind: "truncate", Off: rng.Int64N(80 << 10)}
		}
	}
	return ops
}

func size(t *testing.T, f *os.File) int64 {
	st, err := f.Stat()
	require.NoError(t, err)
	return st.Size()
}

func runOS(t *testing.T, f *os.File, prog []fileOp) []observation {
	var obs []observation
	for _, op := range prog {
		o := observation{Op: op.Kind}
		var err error
		switch op.Kind {
		case "write":
			o.N, err = f.WriteAt(op.Data, op.Off)
		case "read", "readpastEOF":
			off := op.Off
			if op.Kind == "readpastEOF" {
				off = size(t, f) + 10
			}
			buf := make([]byte, op.Len)
			o.N, err = f.ReadAt(buf, off)
			o.Data = string(buf[:o.N])
			if errors.Is(err, io.EOF) {
				err = nil // pread returns short counts, not EOF
			}
		case "fsync":
			err = f.Sync()
		case "fdatasync":
			err = unix.Fdatasync(int(f.Fd()))
		case "fallocate":
			err = unix.Fallocate(int(f.Fd()), 0, op.Off, int64(op.Len))
		case "truncate":
			err = f.Truncate(op.Off)
		}
		o.Err = errName(err)
		o.Size = size(t, f)
		obs = append(obs, o)
	}
	return obs
}

func runRing(t *testing.T, r *Ring, f *os.File, prog []fileOp) []observation {
	fd := int(f.Fd())
	var obs []observation
	for _, op := range prog {
		o := observation{Op: op.Kind}
		var err error
		switch op.Kind {
		case "write":
			// Short writes are legal; loop like os.File does.
			for o.N < len(op.Data) && err == nil {
				var n int
				n, err = r.WriteAt(fd, op.Data[o.N:], op.Off+int64(o.N)).Wait()
				o.N += n
			}
		case "read", "readpastEOF":
			off := op.Off
			if op.Kind == "readpastEOF" {
				off = size(t, f) + 10
			}
			buf := make([]byte, op.Len)
			for o.N < len(buf) {
				var n int
				n, err = r.ReadAt(fd, buf[o.N:], off+int64(o.N)).Wait()
				if n == 0 || err != nil {
					break
				}
				o.N += n
			}
			o.Data = string(buf[:o.N])
		case "fsync":
			_, err = r.Fsync(fd).Wait()
		case "fdatasync":
			_, err = r.Fdatasync(fd).Wait()
		case "fallocate":
			_, err = r.Fallocate(fd, 0, op.Off, int64(op.Len)).Wait()
		case "truncate":
			if r.Supported("FTRUNCATE") == nil {
				_, err = r.Ftruncate(fd, op.Off).Wait()
			} else {
				err = f.Truncate(op.Off)
			}
		}
		o.Err = errName(err)
		o.Size = size(t, f)
		obs = append(obs, o)
	}
	return obs
}

func TestModelFileOps(t *testing.T) {
	r := newTestRing(t, WithEntries(16))
	seeds := []uint64{1, 2, 3, 42, uint64(time.Now().UnixNano())}
	n := 300
	if testing.Short() {
		n = 60
	}
	for _, seed := range seeds {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
			prog := genProgram(rng, n)
			a, b := tempFile(t, nil), tempFile(t, nil)
			want := runOS(t, a, prog)
			got := runRing(t, r, b, prog)
			require.Equal(t, want, got, "seed %d: ring differs from os.File", seed)
			wa, err := os.ReadFile(a.Name())
			require.NoError(t, err)
			wb, err := os.ReadFile(b.Name())
			require.NoError(t, err)
			require.True(t, bytes.Equal(wa, wb), "seed %d: final contents differ", seed)
		})
	}
}
