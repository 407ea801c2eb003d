package httpapi

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/cunxiang/cunxiang/controller/internal/cx"
)

// wantAccess is the role matrix written out by hand, apart from the access
// table it checks: who may call each route. "public" needs no token; a
// village account is limited to its own village on routes with a :code.
var wantAccess = map[string]string{
	"GET /api/v1/clock":               "public",
	"POST /api/v1/enroll":             "public",
	"POST /api/v1/ebd":                "public",
	"GET /api/v1/ebd/status":          "admin operator approver viewer",
	"GET /api/v1/ebd/certificate":     "admin operator approver viewer",
	"GET /api/v1/ebd/inbound":         "admin operator approver viewer",
	"GET /api/v1/ebd/outbound":        "admin operator approver viewer",
	"GET /api/v1/ebd/terminals":       "admin operator approver viewer",
	"PUT /api/v1/ebd/terminals/:code": "admin",
	"POST /api/v1/login":              "public",
	"POST /api/v1/logout":             "admin operator approver viewer village",
	"GET /api/v1/me":                  "admin operator approver viewer village",
	"POST /api/v1/me/password":        "admin operator approver viewer village",
	"GET /api/v1/stream":              "admin operator approver viewer",
	"POST /console/login":             "public",
	"POST /console/logout":            "public",

	"GET /api/v1/villages":                      "admin operator approver viewer",
	"POST /api/v1/villages/import":              "admin",
	"GET /api/v1/villages/:code":                "admin operator approver viewer village",
	"POST /api/v1/villages/:code/enroll":        "admin",
	"POST /api/v1/villages/:code/revoke":        "admin",
	"PATCH /api/v1/villages/:code":              "admin",
	"POST /api/v1/villages/:code/replace":       "admin",
	"GET /api/v1/villages/:code/schedules":      "admin operator approver viewer village",
	"GET /api/v1/villages/:code/broadcasts":     "admin operator approver viewer village",
	"GET /api/v1/villages/:code/events":         "admin operator approver viewer village",
	"POST /api/v1/villages/:code/confirmations": "admin village",
	"GET /api/v1/villages/:code/config":         "admin operator approver viewer village",
	"PUT /api/v1/villages/:code/config":         "admin",
	"GET /api/v1/townships/:name/config":        "admin operator approver viewer",
	"PUT /api/v1/townships/:name/config":        "admin",

	"GET /api/v1/audio":             "admin operator approver",
	"POST /api/v1/audio":            "admin operator",
	"POST /api/v1/audio/tts":        "admin operator",
	"GET /api/v1/audio/:id":         "admin operator approver",
	"GET /api/v1/audio/:id/content": "admin operator approver viewer village",
	"GET /api/v1/playlists":         "admin operator approver",
	"POST /api/v1/playlists":        "admin operator",
	"GET /api/v1/playlists/:id":     "admin operator approver",
	"PATCH /api/v1/audio/:id":       "admin operator",
	"DELETE /api/v1/audio/:id":      "admin operator",
	"PATCH /api/v1/playlists/:id":   "admin operator",
	"DELETE /api/v1/playlists/:id":  "admin operator",

	"GET /api/v1/box/broadcasts/:id": "", // boxes only (HTTP Basic)

	"GET /api/v1/schedules":              "admin operator approver viewer",
	"POST /api/v1/schedules":             "admin operator",
	"GET /api/v1/schedules/:id":          "admin operator approver viewer",
	"DELETE /api/v1/schedules/:id":       "admin operator",
	"GET /api/v1/schedules/:id/coverage": "admin operator approver viewer",
	"GET /api/v1/calendar":               "admin operator approver viewer",

	"GET /api/v1/broadcasts":              "admin operator approver viewer",
	"POST /api/v1/broadcasts":             "admin operator",
	"GET /api/v1/broadcasts/:id":          "admin operator approver viewer",
	"DELETE /api/v1/broadcasts/:id":       "admin operator",
	"POST /api/v1/broadcasts/:id/approve": "admin approver",
	"POST /api/v1/broadcasts/:id/reject":  "admin approver",
	"POST /api/v1/broadcasts/:id/resend":  "admin operator",
	"GET /api/v1/broadcasts/:id/coverage": "admin operator approver viewer",
	"POST /api/v1/alerts/cap":             "admin operator",

	"GET /api/v1/reports/coverage": "admin operator approver viewer",

	"GET /api/v1/audit":         "admin",
	"GET /api/v1/tokens":        "admin",
	"POST /api/v1/tokens":       "admin",
	"DELETE /api/v1/tokens/:id": "admin",
	"GET /api/v1/users":         "admin",
	"POST /api/v1/users":        "admin",
	"PATCH /api/v1/users/:id":   "admin",
	"DELETE /api/v1/users/:id":  "admin",

	// Login limits (failed logins per source).
	"GET /api/v1/login-throttles":    "admin",
	"DELETE /api/v1/login-throttles": "admin",
}

// TestRoleMatrix calls every registered route as every role (and as a
// village account of another village, and with no token) and checks the
// answer against wantAccess: a refusal is 403 "forbidden" and audited as
// "denied" with the method and path; anything else is let through to the
// handler. A route registered without a rule, or a rule without a route,
// fails the test.
func TestRoleMatrix(t *testing.T) {
	e := newEnv(t)
	e.importVillages(villagesCSV)
	const own, other = "110101002002", "110101001001"

	var routes []string
	for _, r := range e.srv.engine.Routes() {
		routes = append(routes, r.Method+" "+r.Path)
	}
	for _, r := range routes {
		if _, ok := access[r]; !ok {
			t.Errorf("%s has no rule in the access table", r)
		}
		if _, ok := wantAccess[r]; !ok {
			t.Errorf("%s is not in this test's wantAccess", r)
		}
	}
	for r := range access {
		if !slices.Contains(routes, r) {
			t.Errorf("the access table has a rule for %s, which is not a route", r)
		}
	}
	for r := range wantAccess {
		if !slices.Contains(routes, r) {
			t.Errorf("wantAccess names %s, which is not a route", r)
		}
	}

	callers := []struct{ name, role, village string }{
		{"admin", "admin", ""}, {"operator", "operator", ""}, {"approver", "approver", ""},
		{"viewer", "viewer", ""}, {"village", "village", own}, {"other-village", "village", other},
	}
	for _, route := range routes {
		method, pattern, _ := strings.Cut(route, " ")
		want := wantAccess[route]
		for _, who := range callers {
			t.Run(route+" as "+who.name, func(t *testing.T) {
				path := strings.NewReplacer(":id", "999999", ":code", own, ":name", url.PathEscape("东镇")).Replace(pattern)
				tok := e.token("as-"+who.name, who.role, who.village)
				got := e.do(method, path, tok, nil)
				allowed := want == "public" || slices.Contains(strings.Fields(want), who.role)
				if who.name == "other-village" && strings.Contains(pattern, ":code") {
					allowed = false
				}
				if allowed {
					if got.Status == http.StatusForbidden || got.Status == http.StatusUnauthorized {
						t.Fatalf("refused: %d %s", got.Status, got.Body)
					}
					return
				}
				if got.Status != http.StatusForbidden || got.errBody(t).Error.Code != cx.EFORBIDDEN {
					t.Fatalf("not refused: %d %s", got.Status, got.Body)
				}
				last := e.auditLog("?action=denied&limit=1")
				readable, _ := url.PathUnescape(path) // the log keeps the path decoded
				if wantLog := "as-" + who.name + " denied " + method + " " + readable; len(last) != 1 || last[0] != wantLog {
					t.Fatalf("audit %v, want %q", last, wantLog)
				}
			})
		}
		t.Run(route+" without a token", func(t *testing.T) {
			path := strings.NewReplacer(":id", "999999", ":code", own, ":name", url.PathEscape("东镇")).Replace(pattern)
			got := e.do(method, path, "", nil)
			if want == "public" {
				if got.Status == http.StatusUnauthorized || got.Status == http.StatusForbidden {
					t.Fatalf("public route refused: %d %s", got.Status, got.Body)
				}
				return
			}
			if got.Status != http.StatusUnauthorized || got.errBody(t).Error.Code != cx.EUNAUTHORIZED {
				t.Fatalf("%d %s", got.Status, got.Body)
			}
		})
	}
	if len(routes) < 44 {
		t.Fatalf("only %d routes", len(routes))
	}
}
