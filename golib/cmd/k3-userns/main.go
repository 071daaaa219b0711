// Command k3-userns is k3-core's helper inside a user namespace: the library
// (package userns) starts it in a new user and mount namespace, where it is
// root over the user's subordinate IDs, to do the work an ordinary user
// cannot do from the multi-threaded Node process.
//
// Usage: k3-userns SUBCOMMAND [ARGS]
//
//	id    print, as JSON, the IDs, ID maps, capabilities and namespaces it sees
//	tree  do one piece of file work on the store's unpacked trees (package treeops)
package main

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/k3-core/k3-core/golib/treeops"
	"github.com/k3-core/k3-core/golib/userns"
)

func main() {
	userns.FinishEntry()
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: k3-userns SUBCOMMAND [ARGS]")
		os.Exit(2)
	}
	switch os.Args[1] {
	case "id":
		json.NewEncoder(os.Stdout).Encode(userns.ReadSelf())
	case treeops.SubCommand:
		os.Exit(treeops.Serve())
	default:
		fmt.Fprintf(os.Stderr, "k3-userns: unknown subcommand %q\n", os.Args[1])
		os.Exit(2)
	}
}
