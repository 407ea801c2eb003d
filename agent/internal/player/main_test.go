package player_test

import (
	"os"
	"testing"
)

// TestMain lets a test re-run this binary as a helper process (oto opens
// the sound device once per process, so each capture needs its own).
func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		os.Exit(child())
	}
	os.Exit(m.Run())
}
