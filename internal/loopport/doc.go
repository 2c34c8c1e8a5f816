// Package loopport picks loopback TCP ports for the servers a program or
// a test starts and binds a moment later (CometBFT's peer and RPC
// addresses, written to a node's configuration first).
//
// A port found free by listening on port 0 comes from the system's
// ephemeral range, the range the kernel also hands to outgoing
// connections: between the check and the bind, a connection any process
// opens may take it, and the server then fails to start ("address already
// in use"). The ports this package picks lie below that range, where no
// outgoing connection is given a port, chosen at random and checked by
// listening on them.
package loopport
