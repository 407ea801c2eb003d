// Package identity enrolls a box with its controller and keeps what it got
// in return (MQTT credentials and the controller's command-signing key) in
// <data>/identity.json, readable by the agent's user only. The enrollment
// token is used once; later starts need only the file.
package identity

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/cunxiang/cunxiang/api"
)

// FileName is the identity file inside the data directory.
const FileName = "identity.json"

// Identity is a box's enrollment, as stored.
type Identity struct {
	api.EnrollResponse
	EnrolledAt time.Time `json:"enrolled_at"`
}

// PublicKey is the controller's command-signing key.
func (id Identity) PublicKey() ed25519.PublicKey { return ed25519.PublicKey(id.SigningKey) }

func (id Identity) check() error {
	if !api.ValidVillageCode(id.Village) {
		return fmt.Errorf("village %q is not a 12-digit code", id.Village)
	}
	if id.MQTTUsername == "" {
		return errors.New("no mqtt_username")
	}
	if len(id.SigningKey) != ed25519.PublicKeySize {
		return fmt.Errorf("signing_key has %d bytes, want %d", len(id.SigningKey), ed25519.PublicKeySize)
	}
	return nil
}

// Load reads dir's identity file; an error wrapping os.ErrNotExist means the
// box was never enrolled.
func Load(dir string) (Identity, error) {
	var id Identity
	raw, err := os.ReadFile(filepath.Join(dir, FileName))
	if err != nil {
		return id, fmt.Errorf("load identity: %w", err)
	}
	if err := json.Unmarshal(raw, &id); err != nil {
		return id, fmt.Errorf("load identity %s: %w", filepath.Join(dir, FileName), err)
	}
	if err := id.check(); err != nil {
		return id, fmt.Errorf("load identity %s: %w", filepath.Join(dir, FileName), err)
	}
	return id, nil
}

// Save writes the identity file atomically with mode 0600: a temporary file,
// fsync, rename, fsync of the directory.
func Save(dir string, id Identity) error {
	raw, err := json.MarshalIndent(id, "", "  ")
	if err != nil {
		return fmt.Errorf("save identity: %w", err)
	}
	f, err := os.CreateTemp(dir, FileName+".*.tmp")
	if err != nil {
		return fmt.Errorf("save identity: %w", err)
	}
	defer os.Remove(f.Name())
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return fmt.Errorf("save identity: %w", err)
	}
	if _, err := f.Write(raw); err != nil {
		f.Close()
		return fmt.Errorf("save identity: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("save identity: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("save identity: %w", err)
	}
	if err := os.Rename(f.Name(), filepath.Join(dir, FileName)); err != nil {
		return fmt.Errorf("save identity: %w", err)
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// RefusedError is the controller's answer when it turns an enrollment down
// (a wrong or used token, an unknown village).
type RefusedError struct {
	Status  int
	Code    string
	Message string
}

func (e *RefusedError) Error() string {
	msg := e.Message
	if msg == "" {
		msg = http.StatusText(e.Status)
	}
	if e.Code != "" {
		return fmt.Sprintf("controller refused enrollment: %s (%s, HTTP %d)", msg, e.Code, e.Status)
	}
	return fmt.Sprintf("controller refused enrollment: %s (HTTP %d)", msg, e.Status)
}

// Enroll exchanges the one-time token for the box's identity:
// POST {controller}/api/v1/enroll.
func Enroll(ctx context.Context, client *http.Client, controller string, req api.EnrollRequest) (Identity, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return Identity{}, fmt.Errorf("enroll: %w", err)
	}
	url := strings.TrimRight(controller, "/") + "/api/v1/enroll"
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return Identity{}, fmt.Errorf("enroll: %w", err)
	}
	hr.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(hr)
	if err != nil {
		return Identity{}, fmt.Errorf("enroll: %w", err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return Identity{}, fmt.Errorf("enroll: read answer: %w", err)
	}
	if resp.StatusCode/100 != 2 {
		var eb api.ErrorBody
		_ = json.Unmarshal(raw, &eb)
		return Identity{}, &RefusedError{Status: resp.StatusCode, Code: eb.Error.Code, Message: eb.Error.Message}
	}
	var id Identity
	if err := json.Unmarshal(raw, &id.EnrollResponse); err != nil {
		return Identity{}, fmt.Errorf("enroll: bad answer: %w", err)
	}
	if id.Village == "" {
		id.Village = req.Village
	}
	if id.Village != req.Village {
		return Identity{}, fmt.Errorf("enroll: controller answered for village %q, not %q", id.Village, req.Village)
	}
	if err := id.check(); err != nil {
		return Identity{}, fmt.Errorf("enroll: bad answer: %w", err)
	}
	id.EnrolledAt = time.Now().UTC()
	return id, nil
}
