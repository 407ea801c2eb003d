package httpapi

import (
	"net/http"
	"testing"
)

// TestChangeOwnPassword: a user changes their own password with the
// current one; every session ends and only the new password logs in. A
// wrong current password is refused naming the field, counts as a failed
// login, and changes nothing; an API token of no user cannot use it.
func TestChangeOwnPassword(t *testing.T) {
	e := newEnv(t)
	tok := e.user("wang", "operator", "")
	change := func(token, current, next string) resp {
		return e.do("POST", "/api/v1/me/password", token, map[string]string{"current_password": current, "new_password": next})
	}
	r := change(tok, "not my password", "a brand new passphrase")
	if r.Status != http.StatusBadRequest || r.errBody(t).Error.Message == "" {
		t.Fatalf("wrong current password: %d %s", r.Status, r.Body)
	}
	if r := change(tok, "secret password wang", "short"); r.Status != http.StatusBadRequest {
		t.Fatalf("too short a new password: %d %s", r.Status, r.Body)
	}
	if r := change(e.admin, "x", "a brand new passphrase"); r.Status != http.StatusBadRequest {
		t.Fatalf("admin API token: %d %s", r.Status, r.Body)
	}
	e.must(http.StatusNoContent, change(tok, "secret password wang", "a brand new passphrase"), nil)
	if r := e.do("GET", "/api/v1/me", tok, nil); r.Status != http.StatusUnauthorized {
		t.Errorf("the old session still works: %d", r.Status)
	}
	login := func(pw string) int {
		return e.do("POST", "/api/v1/login", "", map[string]string{"username": "wang", "password": pw}).Status
	}
	if got := login("secret password wang"); got != http.StatusUnauthorized {
		t.Errorf("old password: %d", got)
	}
	if got := login("a brand new passphrase"); got != http.StatusOK {
		t.Errorf("new password: %d", got)
	}
	log := e.auditLog("?action=user")
	want := map[string]bool{"wang user.password_changed user/": false, "wang user.password_change_failed user/": false}
	for _, l := range log {
		for w := range want {
			if len(l) >= len(w) && l[:len(w)] == w {
				want[w] = true
			}
		}
	}
	for w, ok := range want {
		if !ok {
			t.Errorf("audit has no %q: %v", w, log)
		}
	}
}
