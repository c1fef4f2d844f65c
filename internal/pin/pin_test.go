package pin

import (
	"os/exec"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A child started on one CPU runs only there from its start (the kernel
// reports it as its Cpus_allowed_list), and the caller's thread gets its
// CPUs back.
func TestStartPins(t *testing.T) {
	cpus, err := CPUs()
	require.NoError(t, err)
	want := cpus[len(cpus)-1]
	cmd := exec.Command("cat")
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	require.NoError(t, Start(cmd, []int{want}))
	got := Allowed(cmd.Process.Pid)
	stdin.Close()
	cmd.Wait()
	assert.Equal(t, strconv.Itoa(want), got, "CPUs the child is allowed on")
	if now, err := CPUs(); assert.NoError(t, err, "CPUs after Start") {
		assert.Len(t, now, len(cpus), "CPUs after Start: %v, before %v", now, cpus)
	}
	// Unpinned, the child gets the caller's CPUs.
	cmd = exec.Command("cat")
	stdin, _ = cmd.StdinPipe()
	require.NoError(t, Start(cmd, nil))
	all := Allowed(cmd.Process.Pid)
	stdin.Close()
	cmd.Wait()
	assert.False(t, all == "?" || (len(cpus) > 1 && all == strconv.Itoa(want)), "unpinned child allowed on %q", all)
	assert.Equal(t, "?", Allowed(-1), "Allowed of no process")
}
