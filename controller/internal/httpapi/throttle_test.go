package httpapi

import (
	"net/http"
	"strconv"
	"testing"
	"time"
)

// TestLoginThrottle: five wrong passwords for one user, then even the right
// one is refused with 429 and Retry-After until the bucket refills; other
// users from the same address are unaffected until the address's own,
// larger bucket is empty.
func TestLoginThrottle(t *testing.T) {
	e := newEnv(t)
	e.user("wang", "operator", "")
	e.user("zhao", "viewer", "")
	login := func(user, pass string) resp {
		return e.do("POST", "/api/v1/login", "", map[string]string{"username": user, "password": pass})
	}
	for i := range userBurst {
		if r := login("wang", "guess "+strconv.Itoa(i)); r.Status != http.StatusUnauthorized {
			t.Fatalf("wrong password %d: status %d, want 401", i, r.Status)
		}
	}
	r := login("WANG ", "secret password wang")
	if r.Status != http.StatusTooManyRequests {
		t.Fatalf("right password after %d failures: status %d, want 429", userBurst, r.Status)
	}
	if ra, _ := strconv.Atoi(r.Header.Get("Retry-After")); ra < 1 || ra > 60 {
		t.Errorf("Retry-After = %q, want 1..60 s", r.Header.Get("Retry-After"))
	}
	if msg := r.errBody(t).Error.Message; msg == "" {
		t.Error("429 without a message")
	}
	if r := login("zhao", "secret password zhao"); r.Status != http.StatusOK {
		t.Errorf("another user from the same address: status %d, want 200", r.Status)
	}
	e.clk.Advance(userEvery)
	if r := login("wang", "secret password wang"); r.Status != http.StatusOK {
		t.Errorf("after a minute: status %d, want 200", r.Status)
	}

	// The address's bucket: many users, a few guesses each.
	e.clk.Advance(time.Hour)
	refused := 0
	for i := range addrBurst + 5 {
		if login("nobody"+strconv.Itoa(i), "x").Status == http.StatusTooManyRequests {
			refused++
		}
	}
	if refused != 5 {
		t.Errorf("%d of %d guesses from one address refused, want 5", refused, addrBurst+5)
	}
	if r := login("zhao", "secret password zhao"); r.Status != http.StatusTooManyRequests {
		t.Errorf("a right password from a guessing address: status %d, want 429", r.Status)
	}
}

func TestThrottleForgetsRefilledBuckets(t *testing.T) {
	var th loginThrottle
	now := time.Unix(0, 0)
	for i := range throttleKeep {
		th.failed(now, "u"+strconv.Itoa(i), "a"+strconv.Itoa(i))
	}
	now = now.Add(time.Hour)
	th.failed(now, "late", "late")
	if len(th.users) != 1 || len(th.addrs) != 1 {
		t.Errorf("kept %d users and %d addresses after they refilled, want 1 each", len(th.users), len(th.addrs))
	}
}
