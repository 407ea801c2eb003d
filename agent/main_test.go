package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/cunxiang/cunxiang/api"
)

// The box must never carry the controller's server-side dependencies.
func TestAgentLinksNoServerDependencies(t *testing.T) {
	for _, cgo := range []string{"1", "0"} {
		cmd := exec.Command("go", "list", "-deps", ".")
		cmd.Env = append(cmd.Environ(), "CGO_ENABLED="+cgo)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("go list (CGO_ENABLED=%s): %v", cgo, err)
		}
		for _, pkg := range strings.Fields(string(out)) {
			for _, banned := range []string{"github.com/gin-gonic/", "modernc.org/sqlite", "github.com/jackc/pgx", "github.com/mochi-mqtt/", "github.com/mattn/go-sqlite3"} {
				if strings.HasPrefix(pkg, banned) {
					t.Errorf("agent (CGO_ENABLED=%s) links %s", cgo, pkg)
				}
			}
		}
	}
}

func TestParseFlags(t *testing.T) {
	ok := []string{"--village", "110101001001", "--controller", "http://127.0.0.1:8080"}
	tests := []struct {
		name string
		args []string
		err  string
	}{
		{"minimal", ok, ""},
		{"everything", append(append([]string{}, ok...), "--broker", "tcp://127.0.0.1:1883", "--data", "/tmp/x", "--enroll", "T", "--output", "wav:/tmp/w", "--topic-prefix", "x/v1", "--log-level", "debug"), ""},
		{"no village", ok[2:], "--village"},
		{"short village", []string{"--village", "1101", "--controller", "http://c"}, "12-digit"},
		{"bad controller", []string{"--village", "110101001001", "--controller", "c:80"}, "--controller"},
		{"bad level", append(append([]string{}, ok...), "--log-level", "loud"), "--log-level"},
		{"stray argument", append(append([]string{}, ok...), "extra"), "unexpected"},
		{"sim", []string{"sim", "-n", "3", "--controller", "http://c:8080", "--token", "T", "--skew", "5m", "--report-loss", "0.3", "--offline", "1", "--disconnects-per-min", "2", "--duration", "1m", "--import"}, ""},
		{"sim without token", []string{"sim", "-n", "3", "--controller", "http://c:8080"}, "token"},
		{"sim bad loss", []string{"sim", "--controller", "http://c:8080", "--token", "T", "--report-loss", "1"}, "--report-loss"},
		{"sim too many offline", []string{"sim", "-n", "3", "--controller", "http://c:8080", "--token", "T", "--offline", "4"}, "--offline"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := NewMain()
			m.Stderr = &bytes.Buffer{}
			err := m.ParseFlags(tt.args)
			if tt.err == "" && err != nil || tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)) {
				t.Fatalf("err = %v, want %q", err, tt.err)
			}
		})
	}
	m := NewMain()
	m.ParseFlags(ok)
	if m.TopicPrefix != "" {
		t.Errorf("topic prefix %q without the flag: the controller's should win", m.TopicPrefix)
	}
}

// TestFlagsFromEnvironment: the packaged service configures the agent with
// CUNXIANG_* variables (/etc/cunxiang/agent.env).
func TestFlagsFromEnvironment(t *testing.T) {
	t.Setenv("CUNXIANG_VILLAGE", "110101001001")
	t.Setenv("CUNXIANG_CONTROLLER", "http://127.0.0.1:8080")
	t.Setenv("CUNXIANG_OUTPUT", "aplay")
	m := NewMain()
	m.Stderr = &bytes.Buffer{}
	if err := m.ParseFlags([]string{"--output", "null"}); err != nil {
		t.Fatal(err)
	}
	if m.Village != "110101001001" || m.Controller != "http://127.0.0.1:8080" || m.Output != "null" {
		t.Errorf("village %q controller %q output %q", m.Village, m.Controller, m.Output)
	}
}

func TestRefusedEnrollmentSaysWhyAndFails(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusForbidden)
		json.NewEncoder(w).Encode(api.ErrorBody{Error: api.ErrorDetail{Code: "forbidden", Message: "this enrollment token was already used"}})
	}))
	defer srv.Close()
	m := NewMain()
	m.Stderr = &bytes.Buffer{}
	if err := m.ParseFlags([]string{"--village", "110101001001", "--controller", srv.URL, "--data", t.TempDir(), "--enroll", "T", "--output", "null"}); err != nil {
		t.Fatal(err)
	}
	err := m.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "this enrollment token was already used") {
		t.Fatalf("err = %v", err)
	}
}

func TestNotEnrolledWithoutToken(t *testing.T) {
	m := NewMain()
	m.Stderr = &bytes.Buffer{}
	if err := m.ParseFlags([]string{"--village", "110101001001", "--controller", "http://127.0.0.1:9", "--data", t.TempDir(), "--output", "null"}); err != nil {
		t.Fatal(err)
	}
	if err := m.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "--enroll") {
		t.Fatalf("err = %v", err)
	}
}

// agent sim reads the admin token from --token-file and asks the
// controller for its villages; with too few it says how to make them.
func TestSimReadsTokenFileAndNeedsEnoughVillages(t *testing.T) {
	var auth string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth = r.Header.Get("Authorization")
		w.Write([]byte(`{"villages":[{"code":"110101001001","device":"agent"},{"code":"110101001002","device":"manual"}]}`))
	}))
	defer srv.Close()
	tokenFile := t.TempDir() + "/admin.token"
	if err := os.WriteFile(tokenFile, []byte("secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	m := NewMain()
	m.Stderr, m.Stdout = &bytes.Buffer{}, &bytes.Buffer{}
	if err := m.ParseFlags([]string{"sim", "-n", "2", "--controller", srv.URL, "--token-file", tokenFile, "--data", t.TempDir()}); err != nil {
		t.Fatal(err)
	}
	err := m.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "lists 1 agent villages") || !strings.Contains(err.Error(), "--import") {
		t.Fatalf("err = %v", err)
	}
	if auth != "Bearer secret" {
		t.Fatalf("Authorization %q", auth)
	}
}
