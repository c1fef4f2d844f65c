package main

// The rio side of the network workloads (TCP echo, HTTP hello): servers
// listening with rio's net adapter, github.com/gorio/rio/net. Kept in a file
// of its own so that a build without the adapter (delete this file) still
// runs the standard library's rows.

import rionet "github.com/gorio/rio/net"

func init() {
	listeners["rio"] = rionet.Listen
}
