package httpapi

import (
	"crypto/sha1"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/cunxiang/cunxiang/api"
)

// TestCAPRecordingIsPlayed: an alert that links a recording, served here,
// is broadcast with that recording (fetched, checked against the alert's
// SHA-1 digest, converted and measured like an upload) instead of speech.
// A wrong digest, a 404 or a file that is not audio falls back to speech,
// with a note saying why.
func TestCAPRecordingIsPlayed(t *testing.T) {
	clip := sine(1.0)
	sum := sha1.Sum(clip)
	digest := hex.EncodeToString(sum[:])
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/warning.wav":
			w.Header().Set("Content-Type", "audio/wav")
			w.Write(clip)
		case "/not-audio.wav":
			w.Write([]byte("<html>login required</html>"))
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()

	for _, tc := range []struct {
		name, path, digest string
		played             bool
		why                string
	}{
		{"recording with its digest", "/warning.wav", digest, true, ""},
		{"recording without a digest", "/warning.wav", "", true, ""},
		{"wrong digest", "/warning.wav", strings.Repeat("0", 40), false, "not the alert's digest"},
		{"not found", "/gone.wav", "", false, "404"},
		{"not audio", "/not-audio.wav", "", false, "not a usable recording"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// The test server is on loopback, which the fetch reaches
			// only because the operator lists it.
			e, sp := capEnv(t, time.Date(2024, 7, 10, 6, 35, 0, 0, shanghai), func(o *Options) { o.CAPFetchAllow = []string{"127.0.0.1"} })
			uri := srv.URL + tc.path
			xml := capXML(t, "flood-red.xml", func(s string) string {
				s = strings.Replace(s, "<mimeType>audio/mpeg</mimeType>", "<mimeType>audio/x-wav</mimeType>", 1)
				s = strings.Replace(s, "https://alert.example.gov.cn/audio/41142141600000_20240710063000.mp3", uri, 1)
				if tc.digest != "" {
					s = strings.Replace(s, "</uri>", "</uri>\n      <digest>"+strings.ToUpper(tc.digest)+"</digest>", 1)
				}
				return s
			})
			var res api.CAPResult
			e.must(http.StatusAccepted, e.postCAP(e.staff, xml), &res)
			b := e.getBroadcast(res.BroadcastID)
			if tc.played {
				if b.AudioID == 0 || b.Text != "" || len(sp.said) != 0 || !strings.Contains(res.Note, "is played") {
					t.Fatalf("audio %d, text %q, spoke %d times, note %q", b.AudioID, b.Text, len(sp.said), res.Note)
				}
				var a api.Audio
				e.must(http.StatusOK, e.do("GET", "/api/v1/audio/"+itoa(int(b.AudioID)), e.staff, nil), &a)
				if a.DurationMS < 900 || a.DurationMS > 1100 {
					t.Errorf("stored clip lasts %d ms, want 1000", a.DurationMS)
				}
				return
			}
			if b.Text == "" || len(sp.said) != 1 || !strings.Contains(res.Note, tc.why) || !strings.Contains(res.Note, "spoken instead") {
				t.Fatalf("text %q, spoke %d times, note %q (want it to say %q)", b.Text, len(sp.said), res.Note, tc.why)
			}
		})
	}
}

// TestCAPSlowRecordingHoldsUpNoOtherAlert: an alert's recording is
// fetched outside the lock that lets one CAP message at a time through,
// so a recording server that stalls (up to the fetch's 20 s) holds up no
// other alert.
func TestCAPSlowRecordingHoldsUpNoOtherAlert(t *testing.T) {
	release, asked := make(chan struct{}), make(chan struct{}, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow.wav" {
			asked <- struct{}{}
			<-release
		}
		http.NotFound(w, r)
	}))
	defer srv.Close()
	e, _ := capEnv(t, time.Date(2024, 7, 10, 6, 35, 0, 0, shanghai), func(o *Options) { o.CAPFetchAllow = []string{"127.0.0.1"} })
	alert := func(id, path string) string {
		return capXML(t, "flood-red.xml", func(s string) string {
			s = strings.Replace(s, "https://alert.example.gov.cn/audio/41142141600000_20240710063000.mp3", srv.URL+path, 1)
			return strings.Replace(s, "41142141600000_20240710063000", id, 1)
		})
	}
	slow, other := make(chan resp, 1), make(chan resp, 1)
	go func() { slow <- e.postCAP(e.staff, alert("slow", "/slow.wav")) }()
	select {
	case <-asked:
	case <-time.After(10 * time.Second):
		t.Fatal("the slow recording was never asked for")
	}
	go func() { other <- e.postCAP(e.staff, alert("other", "/gone.wav")) }()
	var r resp
	select {
	case r = <-other:
	case <-time.After(10 * time.Second):
		t.Error("the other alert waited for the slow recording")
		close(release)
		r = <-other
	}
	if r.Status != http.StatusAccepted {
		t.Fatalf("other alert: status %d: %s", r.Status, r.Body)
	}
	if !t.Failed() {
		close(release)
	}
	if r := <-slow; r.Status != http.StatusAccepted {
		t.Fatalf("slow alert: status %d: %s", r.Status, r.Body)
	}
}
