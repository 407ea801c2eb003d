//go:build crashtest

package main

import (
	"os"
	"strings"
	"syscall"
)

// crashStep, in a binary built with -tags crashtest, kills the process
// with SIGKILL when the publisher passes the step and kind named by
// CUNXIANG_CRASH_AT ("signed:broadcast"): the crash tests restart it and
// check that every accepted change still reaches the boxes exactly once.
// The service binary is built without it.
func crashStep() func(step, kind string) {
	at := os.Getenv("CUNXIANG_CRASH_AT")
	if at == "" {
		return nil
	}
	return func(step, kind string) {
		if step+":"+kind == at || strings.HasPrefix(at, step+":") && strings.TrimPrefix(at, step+":") == "*" {
			syscall.Kill(os.Getpid(), syscall.SIGKILL)
		}
	}
}
