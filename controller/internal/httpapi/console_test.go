package httpapi

import (
	"bufio"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/cunxiang/cunxiang/api"
)

// consoleLogin posts the console's login form and returns its answer.
func (e *env) consoleLogin(username, password, origin string) resp {
	e.t.Helper()
	form := url.Values{"username": {username}, "password": {password}}
	req := httptest.NewRequest("POST", "/console/login", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	return e.request(req)
}

func cookiesOf(r resp) map[string]*http.Cookie {
	out := map[string]*http.Cookie{}
	for _, c := range (&http.Response{Header: r.Header}).Cookies() {
		out[c.Name] = c
	}
	return out
}

// TestConsoleSession: the console's form login sets an HttpOnly,
// SameSite=Strict session cookie that the API accepts in place of the
// Bearer header, for a change only with the CSRF header; logout revokes it.
func TestConsoleSession(t *testing.T) {
	e := newEnv(t)
	e.user("zhang", "operator", "")

	bad := e.consoleLogin("zhang", "wrong", "")
	if bad.Status != http.StatusSeeOther || bad.Header.Get("Location") != "/?error=credentials" || len(cookiesOf(bad)) != 0 {
		t.Fatalf("wrong password: %d %v", bad.Status, bad.Header)
	}
	if got := e.auditLog("?action=login.failed&limit=1"); len(got) != 1 || got[0] != "zhang login.failed user" {
		t.Errorf("audit %v", got)
	}
	if r := e.consoleLogin("zhang", "secret password zhang", "http://evil.test"); r.Header.Get("Location") != "/?error=origin" || len(cookiesOf(r)) != 0 {
		t.Fatalf("cross-site login: %d %v", r.Status, r.Header)
	}

	ok := e.consoleLogin("zhang", "secret password zhang", "http://example.com")
	if ok.Status != http.StatusSeeOther || ok.Header.Get("Location") != "/" {
		t.Fatalf("login: %d %v", ok.Status, ok.Header)
	}
	ck := cookiesOf(ok)
	sess, csrf := ck[sessionCookie], ck[csrfCookie]
	if sess == nil || csrf == nil || !sess.HttpOnly || sess.SameSite != http.SameSiteStrictMode || csrf.SameSite != http.SameSiteStrictMode || csrf.HttpOnly {
		t.Fatalf("cookies %+v %+v", sess, csrf)
	}

	call := func(method, path, csrfValue string) resp {
		req := httptest.NewRequest(method, path, nil)
		req.AddCookie(sess)
		req.AddCookie(csrf)
		if csrfValue != "" {
			req.Header.Set(csrfHeader, csrfValue)
		}
		return e.request(req)
	}
	var me api.Me
	e.must(http.StatusOK, call("GET", "/api/v1/me", ""), &me)
	if me.Name != "zhang" || me.Role != "operator" {
		t.Fatalf("me %+v", me)
	}
	for _, tc := range []struct {
		name, header string
		want         int
	}{
		{"no CSRF header", "", http.StatusForbidden},
		{"wrong CSRF header", "nope", http.StatusForbidden},
		{"CSRF header", csrf.Value, http.StatusNotFound}, // let through to the handler
	} {
		if r := call("DELETE", "/api/v1/schedules/999999", tc.header); r.Status != tc.want {
			t.Errorf("%s: %d %s, want %d", tc.name, r.Status, r.Body, tc.want)
		}
	}
	// The role table still rules: an operator may not list users.
	if r := call("GET", "/api/v1/users", ""); r.Status != http.StatusForbidden {
		t.Errorf("operator listing users by cookie: %d", r.Status)
	}

	if r := call("POST", "/console/logout", ""); r.Status != http.StatusForbidden {
		t.Errorf("logout without CSRF: %d", r.Status)
	}
	if r := call("POST", "/console/logout", csrf.Value); r.Status != http.StatusNoContent {
		t.Fatalf("logout: %d %s", r.Status, r.Body)
	}
	if r := call("GET", "/api/v1/me", ""); r.Status != http.StatusUnauthorized {
		t.Errorf("after logout: %d", r.Status)
	}
}

// TestStream: readers get an event for each Notify, and the stream ends
// when the notifier closes.
func TestStream(t *testing.T) {
	n := NewNotifier()
	e := newEnv(t, func(o *Options) { o.Notifier = n })
	e.importVillages(villagesCSV)
	viewer := e.token("watcher", "viewer", "")
	if r := e.do("GET", "/api/v1/stream", e.token("v", "village", "110101002002"), nil); r.Status != http.StatusForbidden {
		t.Fatalf("village account: %d", r.Status)
	}
	srv := httptest.NewServer(e.h)
	defer srv.Close()
	req, _ := http.NewRequest("GET", srv.URL+"/api/v1/stream", nil)
	req.Header.Set("Authorization", "Bearer "+viewer)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if ct := res.Header.Get("Content-Type"); res.StatusCode != 200 || ct != "text/event-stream" {
		t.Fatalf("%d %s", res.StatusCode, ct)
	}
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(res.Body)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	next := func(want string) {
		t.Helper()
		timeout := time.After(5 * time.Second)
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("stream ended before %q", want)
				}
				if l == want {
					return
				}
			case <-timeout:
				t.Fatalf("no %q", want)
			}
		}
	}
	next("event: hello")
	n.Notify()
	next("event: reports")
	n.Notify()
	next("event: reports")
	// A broadcast that changes state is an event of its own: the sender's
	// and the approver's screens update without a reload.
	audio, _ := e.setupLibrary()
	e.bcastOK(audio[0].ID, nil)
	next("event: broadcasts")
	n.Close()
	for range lines {
	}
}

// TestConsoleServed: with a console, GETs outside /api/ are its; the API's
// unknown paths still answer the API's 404.
func TestConsoleServed(t *testing.T) {
	e := newEnv(t, func(o *Options) {
		o.Console = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("console")) })
	})
	if r := e.do("GET", "/", "", nil); r.Status != 200 || string(r.Body) != "console" {
		t.Errorf("/: %d %s", r.Status, r.Body)
	}
	if r := e.do("GET", "/api/v1/nothing", "", nil); r.Status != 404 || r.errBody(t).Error.Code != "not_found" {
		t.Errorf("/api/v1/nothing: %d %s", r.Status, r.Body)
	}
}
