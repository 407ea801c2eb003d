package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cunxiang/cunxiang/playlists/playliststest"
)

// capAlertWithRecording is a CAP 1.2 alert to 东关镇 (a township of the
// sample county), in effect now, that links the recording at uri.
func capAlertWithRecording(id, uri string) string {
	now := time.Now()
	return fmt.Sprintf(`<?xml version="1.0" encoding="UTF-8"?>
<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">
  <identifier>%s</identifier>
  <sender>attacker@example.org</sender>
  <sent>%s</sent>
  <status>Exercise</status>
  <msgType>Alert</msgType>
  <scope>Public</scope>
  <info>
    <language>zh-CN</language>
    <category>Geo</category>
    <event>演练</event>
    <urgency>Immediate</urgency>
    <severity>Minor</severity>
    <certainty>Observed</certainty>
    <effective>%s</effective>
    <expires>%s</expires>
    <headline>演练</headline>
    <description>这是演练。</description>
    <resource>
      <resourceDesc>预警语音</resourceDesc>
      <mimeType>audio/x-wav</mimeType>
      <uri>%s</uri>
    </resource>
    <area>
      <areaDesc>示例县东关镇</areaDesc>
      <geocode><valueName>GB/T 2260</valueName><value>411421101</value></geocode>
    </area>
  </info>
</alert>`, id, now.Format(time.RFC3339), now.Format(time.RFC3339), now.Add(time.Hour).Format(time.RFC3339), uri)
}

// capNote posts an alert as the admin and returns the note of its answer.
func capNote(tb testing.TB, h *controllerHarness, xml string) string {
	tb.Helper()
	req, err := http.NewRequest("POST", h.HTTPURL+"/api/v1/alerts/cap", strings.NewReader(xml))
	if err != nil {
		tb.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/cap+xml")
	req.Header.Set("Authorization", "Bearer "+h.AdminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusAccepted {
		tb.Fatalf("CAP alert: HTTP %d: %s", resp.StatusCode, body)
	}
	var res struct {
		Note string `json:"note"`
	}
	if err := json.Unmarshal(body, &res); err != nil {
		tb.Fatal(err)
	}
	return res.Note
}

// internalServer is a server on a loopback address (host:0) that serves a
// good recording at /warning.wav and counts every request it gets.
func internalServer(tb testing.TB, addr string, clip []byte) (*httptest.Server, *atomic.Int64) {
	tb.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		tb.Skipf("cannot listen on %s: %v", addr, err)
	}
	var hits atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		if r.URL.Path != "/warning.wav" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "audio/wav")
		w.Write(clip) //nolint:errcheck
	}))
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	tb.Cleanup(srv.Close)
	return srv, &hits
}

// TestAttackCAPFetchProbesLoopbackPorts: a CAP feed links recordings on
// the controller's loopback: a port with an HTTP server that would serve
// a recording, one that answers 404, and a closed port. Each alert gets
// the same note (so the notes tell no port state or status apart) and
// nothing reaches the server.
func TestAttackCAPFetchProbesLoopbackPorts(t *testing.T) {
	h := startController(t, harnessOptions{})
	ctx := context.Background()
	if _, err := h.Client.ImportVillages(ctx, []byte(playliststest.VillagesCSV())); err != nil {
		t.Fatal(err)
	}
	srv, hits := internalServer(t, "127.0.0.1:0", shortClip(t))
	closed := listen(t)
	closedURL := "http://" + closed.Addr().String() + "/warning.wav"
	closed.Close()

	notes := map[string]string{}
	for i, uri := range []string{
		srv.URL + "/warning.wav", // open, would serve a good recording
		srv.URL + "/missing.wav", // open, answers 404
		closedURL,                // closed
		strings.Replace(srv.URL, "127.0.0.1", "localhost", 1) + "/warning.wav",
		strings.Replace(srv.URL, "127.0.0.1", "[::ffff:127.0.0.1]", 1) + "/warning.wav",
	} {
		note := capNote(t, h, capAlertWithRecording(fmt.Sprintf("probe-%d", i), uri))
		notes[strings.ReplaceAll(note, uri, "URI")] = uri
	}
	if len(notes) != 1 {
		t.Errorf("the notes tell the probes apart (%d different notes):", len(notes))
		for n, uri := range notes {
			t.Errorf("  %s: %s", uri, n)
		}
	}
	for n := range notes {
		if !strings.Contains(n, "refused: private address") {
			t.Errorf("note %q does not say the address is refused", n)
		}
	}
	// Every answer above came after its fetch was tried: a hit would be
	// counted by now.
	if n := hits.Load(); n != 0 {
		t.Errorf("the internal server was fetched from %d times", n)
	}
}

// TestAttackCAPRedirectToInternal: the county's warning server, which the
// operator allows, redirects a recording to an internal server and to
// the controller's own API. Neither is fetched.
func TestAttackCAPRedirectToInternal(t *testing.T) {
	clip := shortClip(t)
	internal, hits := internalServer(t, "127.0.0.3:0", clip)
	var target atomic.Value
	warn := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target.Load().(string), http.StatusFound)
	}))
	ln, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Skipf("cannot listen on 127.0.0.2: %v", err)
	}
	warn.Listener.Close()
	warn.Listener = ln
	warn.Start()
	t.Cleanup(warn.Close)

	// The warning server, and the loopback address the controller itself
	// listens on (its own port must stay refused all the same).
	h := startController(t, harnessOptions{CAPFetchAllow: "127.0.0.2,127.0.0.1"})
	if _, err := h.Client.ImportVillages(context.Background(), []byte(playliststest.VillagesCSV())); err != nil {
		t.Fatal(err)
	}
	for i, to := range []string{
		internal.URL + "/warning.wav",
		strings.Replace(internal.URL, "127.0.0.3", "[::ffff:127.0.0.3]", 1) + "/warning.wav",
		h.HTTPURL + "/api/v1/clock",
	} {
		target.Store(to)
		uri := warn.URL + "/warning.wav"
		note := capNote(t, h, capAlertWithRecording(fmt.Sprintf("redirect-%d", i), uri))
		if want := "the alert's recording (" + uri + ") is not used: refused: private address"; !strings.Contains(note, want) {
			t.Errorf("redirect to %s: note %q, want it to say %q", to, note, want)
		}
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("the internal server was fetched from %d times", n)
	}
}
