//go:build !race

package rionet_test

// raceBuild reports whether the race detector is on: it makes goroutine
// stacks larger.
const raceBuild = false
