//go:build !bench

package main

import (
	"context"
	"fmt"
	"os"
)

// runBench explains where the benchmark went: it is not in the service
// binary (see bench.go).
func runBench(_ context.Context, cmd string, _ []string) int {
	fmt.Fprintf(os.Stderr, "controller %s: the benchmark is not linked into the service; run it with: go run -tags bench ./controller bench [-quick] ...\n", cmd)
	return 2
}
