//go:build rionet

package main

// The rio side of the network workloads (TCP echo, HTTP hello): servers
// listening with rio's net adapter, github.com/gorio/rio/net.
//
// This file is built only with -tags rionet while the net adapter is not on
// main yet. Once net/ has landed, delete the //go:build line above and the
// "rio" rows run by default.

import rionet "github.com/gorio/rio/net"

func init() {
	listeners["rio"] = rionet.Listen
}
