package httpapi

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cunxiang/cunxiang/api"
)

// TestLoginThrottle: five wrong passwords for one user from one address,
// then even the right one is refused from there with 429 and Retry-After
// until the bucket refills; the same user from another address, and other
// users from the same address, are unaffected until the address's own,
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
	if r := e.doFrom("198.51.100.9:5555", "POST", "/api/v1/login", "", map[string]string{"username": "wang", "password": "secret password wang"}); r.Status != http.StatusOK {
		t.Errorf("the same user from another address: status %d, want 200", r.Status)
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
	if len(th.buckets) != 2 {
		t.Errorf("kept %d buckets after they refilled, want the 2 of the last failure", len(th.buckets))
	}
}

// TestFailedLoginsNeverLockAnAccount: a stranger who fails a hundred logins
// as every approver, from one address, is slowed down; the approvers log in
// at once from theirs, on the API and in the console.
func TestFailedLoginsNeverLockAnAccount(t *testing.T) {
	e := newEnv(t)
	approvers := []string{"li", "chen"}
	for _, u := range approvers {
		e.user(u, "approver", "")
	}
	const stranger, office = "203.0.113.66:4000", "198.51.100.20:5000"
	refused := 0
	for i := range 100 {
		u := approvers[i%len(approvers)]
		r := e.doFrom(stranger, "POST", "/api/v1/login", "", map[string]string{"username": u, "password": "guess " + strconv.Itoa(i)})
		if r.Status == http.StatusTooManyRequests {
			refused++
		}
	}
	if refused < 100-addrBurst {
		t.Errorf("only %d of 100 guesses from one address refused", refused)
	}
	for _, u := range approvers {
		if r := e.doFrom(office, "POST", "/api/v1/login", "", map[string]string{"username": u, "password": "secret password " + u}); r.Status != http.StatusOK {
			t.Fatalf("%s from the office after a stranger's guesses: status %d, want 200: %s", u, r.Status, r.Body)
		}
	}
	form := url.Values{"username": {"chen"}, "password": {"secret password chen"}}
	req := httptest.NewRequest("POST", "/console/login", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", "http://example.com")
	req.Host = "example.com"
	req.RemoteAddr = office
	if r := e.request(req); r.Status != http.StatusSeeOther || strings.Contains(r.Header.Get("Location"), "error") {
		t.Fatalf("console login from the office: %d %s", r.Status, r.Header.Get("Location"))
	}
	// Each pair's bucket emptied after five tries; the rest were refused
	// unchecked.
	if n := len(e.auditLog("?action=login.failed")); n != len(approvers)*userBurst {
		t.Errorf("%d failed logins audited, want %d", n, len(approvers)*userBurst)
	}
}

// TestIPv6SourcesCountBy64: addresses of one /64 share their buckets.
func TestIPv6SourcesCountBy64(t *testing.T) {
	var th loginThrottle
	now := time.Unix(0, 0)
	for i := range userBurst {
		th.failed(now, "li", "2001:db8:1:2::"+strconv.Itoa(i+1))
	}
	if th.wait(now, "li", "2001:db8:1:2:ffff::9") == 0 {
		t.Error("another address of the same /64 may still guess")
	}
	if th.wait(now, "li", "2001:db8:1:3::1") != 0 {
		t.Error("another /64 is refused")
	}
}

// TestLoginThrottlesAdmin: an admin sees which sources are refused and
// clears them (audited); no one else may.
func TestLoginThrottlesAdmin(t *testing.T) {
	e := newEnv(t)
	e.user("li", "approver", "")
	viewer := e.user("zhou", "viewer", "")
	const a, b = "203.0.113.66:4000", "203.0.113.77:4000"
	for i := range userBurst + 1 {
		e.doFrom(a, "POST", "/api/v1/login", "", map[string]string{"username": "li", "password": "guess " + strconv.Itoa(i)})
	}
	e.doFrom(b, "POST", "/api/v1/login", "", map[string]string{"username": "nobody", "password": "x"})
	var list struct{ Throttles []api.LoginThrottle }
	e.must(http.StatusOK, e.do("GET", "/api/v1/login-throttles", e.admin, nil), &list)
	if len(list.Throttles) != 4 {
		t.Fatalf("throttles %+v, want 4 buckets", list.Throttles)
	}
	first := list.Throttles[0]
	if first.Addr != "203.0.113.66" || first.User != "li" || first.Failures != userBurst || first.RetryAfterS < 1 || first.LastFailureAt.IsZero() {
		t.Errorf("first row %+v, want li from 203.0.113.66 refused after %d failures", first, userBurst)
	}
	for _, tt := range []struct{ method, path, token string }{
		{"GET", "/api/v1/login-throttles", viewer},
		{"DELETE", "/api/v1/login-throttles", viewer},
		{"GET", "/api/v1/login-throttles", ""},
	} {
		if r := e.do(tt.method, tt.path, tt.token, nil); r.Status != http.StatusForbidden && r.Status != http.StatusUnauthorized {
			t.Errorf("%s %s by a non-admin: %d", tt.method, tt.path, r.Status)
		}
	}
	if r := e.do("DELETE", "/api/v1/login-throttles?addr=not-an-address", e.admin, nil); r.Status != http.StatusBadRequest {
		t.Errorf("clear a malformed address: %d, want 400", r.Status)
	}
	login := func(from, pass string) int {
		return e.doFrom(from, "POST", "/api/v1/login", "", map[string]string{"username": "li", "password": pass}).Status
	}
	if st := login(a, "secret password li"); st != http.StatusTooManyRequests {
		t.Fatalf("li from the guessing address before clearing: %d", st)
	}
	var cleared struct{ Cleared int }
	e.must(http.StatusOK, e.do("DELETE", "/api/v1/login-throttles?addr=203.0.113.66&user=LI", e.admin, nil), &cleared)
	if cleared.Cleared != 1 {
		t.Errorf("cleared %d buckets, want li's from 203.0.113.66", cleared.Cleared)
	}
	if st := login(a, "secret password li"); st != http.StatusOK {
		t.Fatalf("li after the admin cleared the limit: %d", st)
	}
	e.must(http.StatusOK, e.do("DELETE", "/api/v1/login-throttles", e.admin, nil), &cleared)
	e.must(http.StatusOK, e.do("GET", "/api/v1/login-throttles", e.admin, nil), &list)
	if cleared.Cleared != 3 || len(list.Throttles) != 0 {
		t.Errorf("clear all: %d cleared, %d left", cleared.Cleared, len(list.Throttles))
	}
	if got := e.auditLog("?action=login_throttle.clear"); len(got) != 2 {
		t.Errorf("audit of clearing: %v", got)
	}
}
