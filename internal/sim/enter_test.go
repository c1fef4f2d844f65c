package sim

import (
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/gorio/rio/internal/uring"
)

// Like the kernel's io_uring_enter, an enter that submits fewer SQEs than
// asked for returns without waiting for completions: a single-issuer
// event loop that submits and waits with one call relies on it (it would
// otherwise wait for a completion of an SQE that is still in the SQ).
// Before this behaviour, the Enter below never returned.
func TestEnterShortSubmitDoesNotWait(t *testing.T) {
	p := uring.Params{Flags: uring.SetupCQSize | uring.SetupSingleIssuer | uring.SetupDeferTaskrun, CQEntries: 16}
	k, err := New(Config{Seed: 1, Faults: Faults{ShortSubmit: 1}}, 4, &p)
	require.NoError(t, err)
	rg := k.Rings()
	tail := atomic.LoadUint32(rg.SQTail)
	for i := uint32(0); i < 2; i++ {
		rg.SQEs[(tail+i)&rg.SQMask] = uring.SQE{Opcode: uring.OpNop, UserData: uint64(i + 1)}
	}
	atomic.StoreUint32(rg.SQTail, tail+2)
	n, errno := k.Enter(2, 2, uring.EnterGetEvents)
	require.Zero(t, errno)
	require.EqualValues(t, 1, n, "ShortSubmit 1 submits one of two NOPs")
	// The rest, and both completions.
	n, errno = k.Enter(1, 2, uring.EnterGetEvents)
	require.Zero(t, errno)
	require.EqualValues(t, 1, n)
	require.EqualValues(t, 2, atomic.LoadUint32(rg.CQTail)-atomic.LoadUint32(rg.CQHead))
	atomic.StoreUint32(rg.CQHead, atomic.LoadUint32(rg.CQTail))
	require.NoError(t, k.Close())
}
