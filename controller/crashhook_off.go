//go:build !crashtest

package main

// crashStep is nil in the service binary: see crashhook.go.
func crashStep() func(step, kind string) { return nil }
