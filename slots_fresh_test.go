package rio

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A new slot table does not write its free list: a ring of 65,536 slots
// would otherwise make 256 KiB resident at creation, whether or not it is
// ever used (docs/net.md, "RSS"). Slots still come out distinct, lowest
// first, until every user slot is taken, and released ones come back.
func TestSlotTableFreshSlots(t *testing.T) {
	var tb slotTable
	const n, reserve = 1 << 12, 8
	tb.init(n, reserve, -1)
	assert.LessOrEqual(t, len(tb.user), 256, "free list written at init")

	seen := make(map[uint32]bool)
	var got []uint32
	for i := 0; i < n-reserve; i++ {
		idx, ok := tb.acquire1(false)
		require.True(t, ok, "slot %d of %d", i, n-reserve)
		require.False(t, seen[idx], "slot %d handed out twice", idx)
		require.Less(t, idx, uint32(n-reserve), "a user slot from the reserve")
		seen[idx] = true
		got = append(got, idx)
	}
	assert.Equal(t, uint32(0), got[0], "lowest first")
	_, ok := tb.acquire1(false)
	assert.False(t, ok, "more user slots than there are")
	batch, ok := tb.acquire(nil, reserve, true)
	require.True(t, ok, "the reserve is untouched")
	assert.Len(t, batch, reserve)

	tb.release(got[:10]...)
	again, ok := tb.acquire(nil, 10, false)
	require.True(t, ok)
	assert.ElementsMatch(t, got[:10], again)

	// A batch larger than what refill moves at a time (refillGrain).
	var fresh slotTable
	fresh.init(n, reserve, -1)
	big, ok := fresh.acquire(nil, 1000, false)
	require.True(t, ok)
	assert.Len(t, big, 1000)
	uniq := make(map[uint32]bool)
	for _, i := range big {
		uniq[i] = true
	}
	assert.Len(t, uniq, 1000)
}
