package api

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Envelope is what travels on a command topic: the command's exact JSON
// bytes and the controller's Ed25519 signature over them. Signing bytes,
// not a re-encoding, means verification never depends on how JSON is
// formatted.
type Envelope struct {
	Payload []byte `json:"payload"`
	Sig     []byte `json:"sig"`
}

// Reasons a box refuses a command. They are reported to the controller.
var (
	ErrMalformed   = errors.New("malformed command")
	ErrBadSig      = errors.New("signature does not verify")
	ErrExpired     = errors.New("command expired")
	ErrNotYetValid = errors.New("command issued in the future")
	ErrWrongTarget = errors.New("command was signed for another group")
)

// MaxClockSkew is how far in the future issued_at may be on the verifier's
// (controller-corrected) clock before a command is refused.
const MaxClockSkew = 5 * time.Minute

// NewCommandID returns a random 128-bit command id.
func NewCommandID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	return hex.EncodeToString(b[:])
}

// Sign encodes and signs a command.
func Sign(key ed25519.PrivateKey, c Command) ([]byte, error) {
	c.V = Version
	if err := c.Check(); err != nil {
		return nil, fmt.Errorf("sign: %w", err)
	}
	payload, err := json.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("sign: %w", err)
	}
	return json.Marshal(Envelope{Payload: payload, Sig: ed25519.Sign(key, payload)})
}

// Verify checks an envelope received on topic: the signature, the shape,
// that the command was signed for the group of that topic, and its validity
// window at now (the verifier's best estimate of controller time). It never
// panics on hostile input.
func Verify(pub ed25519.PublicKey, t Topics, topic string, data []byte, now time.Time) (Command, error) {
	var env Envelope
	var c Command
	if err := json.Unmarshal(data, &env); err != nil || len(env.Payload) == 0 {
		return c, fmt.Errorf("%w: not an envelope", ErrMalformed)
	}
	if len(pub) != ed25519.PublicKeySize || len(env.Sig) != ed25519.SignatureSize || !ed25519.Verify(pub, env.Payload, env.Sig) {
		return c, ErrBadSig
	}
	if err := json.Unmarshal(env.Payload, &c); err != nil {
		return c, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if err := c.Check(); err != nil {
		return c, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if g, ok := t.GroupOfCommandTopic(topic); !ok || g != c.Target {
		return c, fmt.Errorf("%w: signed for %q, received on %q", ErrWrongTarget, c.Target, topic)
	}
	if !now.Before(c.ExpiresAt) {
		return c, fmt.Errorf("%w at %s", ErrExpired, c.ExpiresAt.Format(time.RFC3339))
	}
	if c.IssuedAt.After(now.Add(MaxClockSkew)) {
		return c, fmt.Errorf("%w: issued %s", ErrNotYetValid, c.IssuedAt.Format(time.RFC3339))
	}
	return c, nil
}
