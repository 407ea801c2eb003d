package httpapi

import (
	"crypto/sha1"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
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
			e, sp := capEnv(t, time.Date(2024, 7, 10, 6, 35, 0, 0, shanghai))
			uri := srv.URL + tc.path
			xml := capXML(t, "flood-red.xml", func(s string) string {
				s = strings.Replace(s, "<mimeType>audio/mpeg</mimeType>", "<mimeType>audio/x-wav</mimeType>", 1)
				s = strings.Replace(s, "https://alert.example.gov.cn/audio/41142141600000_20240710063000.mp3", uri, 1)
				if tc.digest != "" {
					s = strings.Replace(s, "</uri>", "</uri>\n      <digest>"+strings.ToUpper(tc.digest)+"</digest>", 1)
				}
				return s
			})
			var res capResultJSON
			e.must(http.StatusAccepted, e.postCAP(e.staff, xml), &res)
			b := e.getBroadcast(res.BroadcastID)
			if tc.played {
				if b.AudioID == 0 || b.Text != "" || len(sp.said) != 0 || !strings.Contains(res.Note, "is played") {
					t.Fatalf("audio %d, text %q, spoke %d times, note %q", b.AudioID, b.Text, len(sp.said), res.Note)
				}
				var a audioJSON
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
