package pin

import (
	"os/exec"
	"strconv"
	"testing"
)

// A child started on one CPU runs only there from its start (the kernel
// reports it as its Cpus_allowed_list), and the caller's thread gets its
// CPUs back.
func TestStartPins(t *testing.T) {
	cpus, err := CPUs()
	if err != nil {
		t.Fatal(err)
	}
	want := cpus[len(cpus)-1]
	cmd := exec.Command("cat")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := Start(cmd, []int{want}); err != nil {
		t.Fatal(err)
	}
	got := Allowed(cmd.Process.Pid)
	stdin.Close()
	cmd.Wait()
	if got != strconv.Itoa(want) {
		t.Errorf("child allowed on CPUs %q, want %d", got, want)
	}
	if now, err := CPUs(); err != nil || len(now) != len(cpus) {
		t.Errorf("CPUs after Start: %v (%v), before %v", now, err, cpus)
	}
	// Unpinned, the child gets the caller's CPUs.
	cmd = exec.Command("cat")
	stdin, _ = cmd.StdinPipe()
	if err := Start(cmd, nil); err != nil {
		t.Fatal(err)
	}
	all := Allowed(cmd.Process.Pid)
	stdin.Close()
	cmd.Wait()
	if all == "?" || (len(cpus) > 1 && all == strconv.Itoa(want)) {
		t.Errorf("unpinned child allowed on %q", all)
	}
	if Allowed(-1) != "?" {
		t.Error("Allowed of no process")
	}
}
