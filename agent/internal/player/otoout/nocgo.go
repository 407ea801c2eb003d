//go:build !cgo

package otoout

import (
	"errors"

	"github.com/cunxiang/cunxiang/agent/internal/player"
)

// DefaultOutput is the output a build without cgo uses unless told otherwise.
const DefaultOutput = "aplay"

// Open refuses: oto/v2 needs cgo on Linux (it links libasound), so a
// CGO_ENABLED=0 agent cannot offer it; aplay plays the same PCM through
// the same ALSA devices.
func Open(player.Options) (player.Output, error) {
	return nil, errors.New("output oto is not available: this agent was built without cgo; use --output aplay (ALSA's aplay, from alsa-utils)")
}
