package httpapi

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/cunxiang/cunxiang/api"
	"github.com/cunxiang/cunxiang/controller/internal/cx"
	"github.com/cunxiang/cunxiang/controller/internal/store"
	"github.com/cunxiang/cunxiang/controller/internal/tts"
)

// TestAudioLoudness: an upload's loudness is stored and shown wherever
// the clip is; a clip stored before loudness was measured shows null.
func TestAudioLoudness(t *testing.T) {
	e := newEnv(t)
	var up api.Audio
	e.must(http.StatusCreated, e.upload(e.staff, "tone.wav", "", sine(1)), &up)
	if up.LoudnessLUFS == nil || up.PeakDBFS == nil || up.GainDB == nil {
		t.Fatalf("upload without loudness: %+v", up)
	}
	// A full-scale-ish 440 Hz tone: loud, and its gain keeps 1 dB of headroom.
	if *up.LoudnessLUFS > 0 || *up.LoudnessLUFS < -40 || *up.PeakDBFS > 0 || *up.PeakDBFS+*up.GainDB > -1+1e-9 {
		t.Fatalf("loudness %v LUFS, peak %v dBFS, gain %v dB", *up.LoudnessLUFS, *up.PeakDBFS, *up.GainDB)
	}
	var one api.Audio
	e.must(http.StatusOK, e.do("GET", fmt.Sprintf("/api/v1/audio/%d", up.ID), e.staff, nil), &one)
	var list struct{ Audio []api.Audio }
	e.must(http.StatusOK, e.do("GET", "/api/v1/audio", e.staff, nil), &list)
	for _, got := range []api.Audio{one, list.Audio[0]} {
		if got.LoudnessLUFS == nil || *got.LoudnessLUFS != *up.LoudnessLUFS || *got.PeakDBFS != *up.PeakDBFS || *got.GainDB != *up.GainDB || got.CreatedBy != "clerk" {
			t.Fatalf("read back %+v, uploaded %+v", got, up)
		}
	}

	// A clip from before loudness was measured.
	old, _, err := e.db.CreateAudio(context.Background(), store.Audio{SHA256: strings.Repeat("0", 64), Title: "old", DurationMS: 1000,
		SampleRate: 22050, Channels: 1, SizeBytes: 44144}, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := e.do("GET", fmt.Sprintf("/api/v1/audio/%d", old.ID), e.staff, nil)
	for _, key := range []string{`"loudness_lufs":null`, `"peak_dbfs":null`, `"gain_db":null`, `"created_by":""`} {
		if !strings.Contains(string(got.Body), key) {
			t.Fatalf("old clip: %s", got.Body)
		}
	}
}

func TestSpeech(t *testing.T) {
	sp := &fakeSpeaker{}
	e := newEnv(t, func(o *Options) { o.Speaker = sp; o.Voice = "cmn" })
	const text = "  村民们请注意：今天下午三点在村委会召开防汛会议，请各户派一人参加。  "

	var a api.Audio
	e.must(http.StatusCreated, e.do("POST", "/api/v1/audio/tts", e.staff, map[string]string{"text": text}), &a)
	if sp.said[0] != strings.TrimSpace(text) || sp.voices[0] != "cmn" {
		t.Fatalf("spoke %q in %q", sp.said, sp.voices)
	}
	if a.Title != "村民们请注意：今天下午三点在村委会召开防汛会议，请各户派一人…" || a.DurationMS != 500 || a.SampleRate != 22050 || a.Channels != 1 {
		t.Fatalf("clip %+v", a)
	}
	if a.Source == nil || a.Source.SampleRate != 44100 || a.LoudnessLUFS == nil || a.GainDB == nil || a.CreatedBy != "clerk" {
		t.Fatalf("clip %+v: no source format or loudness", a)
	}
	// Stored as an upload: under its sha256, downloadable.
	content := e.do("GET", fmt.Sprintf("/api/v1/audio/%d/content", a.ID), e.staff, nil)
	if sum := sha256.Sum256(content.Body); content.Status != http.StatusOK || hex.EncodeToString(sum[:]) != a.SHA256 {
		t.Fatalf("content %d, %d bytes", content.Status, len(content.Body))
	}

	// The same speech again is the same clip.
	var again api.Audio
	e.must(http.StatusOK, e.do("POST", "/api/v1/audio/tts", e.staff, map[string]string{"text": "另一段话", "voice": "yue", "title": "粤语"}), &again)
	if again.ID != a.ID || again.Title != a.Title || sp.voices[1] != "yue" {
		t.Fatalf("again %+v (voice %q)", again, sp.voices)
	}
	if log := e.auditLog("?object=" + fmt.Sprintf("audio/%d", a.ID)); len(log) != 2 ||
		log[0] != fmt.Sprintf("clerk audio.tts_duplicate audio/%d", a.ID) || log[1] != fmt.Sprintf("clerk audio.tts audio/%d", a.ID) {
		t.Fatalf("audit %v", log)
	}

	for _, tt := range []struct {
		name string
		body any
		msg  string
	}{
		{"no text", map[string]string{"voice": "cmn"}, "text: is empty"},
		{"blank text", map[string]string{"text": " \n "}, "text: is empty"},
		{"text too long", map[string]string{"text": strings.Repeat("村", maxText+1)}, "text: must be UTF-8 text of at most 2000"},
		{"title too long", map[string]string{"text": "你好", "title": strings.Repeat("村", maxTitle+1)}, "title: "},
		{"misspelt field", map[string]string{"txt": "你好"}, "txt: is not a field"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := e.do("POST", "/api/v1/audio/tts", e.staff, tt.body)
			if got.Status != http.StatusBadRequest || !strings.HasPrefix(got.errBody(t).Error.Message, tt.msg) {
				t.Fatalf("%d %s", got.Status, got.Body)
			}
		})
	}
	viewer := e.token("viewer", api.RoleViewer, "")
	if got := e.do("POST", "/api/v1/audio/tts", viewer, map[string]string{"text": "你好"}); got.Status != http.StatusForbidden {
		t.Fatalf("viewer: %d %s", got.Status, got.Body)
	}
	if len(sp.said) != 2 {
		t.Fatalf("refused requests were spoken: %q", sp.said)
	}
}

// TestSpeechUnavailable: without espeak-ng the answer is 503 with what to
// install, and nothing is stored.
func TestSpeechUnavailable(t *testing.T) {
	const want = "text-to-speech is not available: install espeak-ng (apt-get install espeak-ng)"
	for name, sp := range map[string]Speaker{"espeak-ng missing": &tts.Espeak{Path: "/nonexistent/espeak-ng"}, "no speaker": nil} {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, func(o *Options) { o.Speaker = sp })
			got := e.do("POST", "/api/v1/audio/tts", e.staff, map[string]string{"text": "村民们请注意"})
			if b := got.errBody(t); got.Status != http.StatusServiceUnavailable || b.Error.Code != cx.EUNAVAILABLE || b.Error.Message != want {
				t.Fatalf("%d %s", got.Status, got.Body)
			}
			// A text broadcast says the same.
			e.importVillages(villagesCSV)
			got = e.do("POST", "/api/v1/broadcasts", e.staff, e.bcast(0, func(m map[string]any) { delete(m, "audio_id"); m["text"] = "请注意" }))
			if got.Status != http.StatusServiceUnavailable || got.errBody(t).Error.Message != want {
				t.Fatalf("broadcast: %d %s", got.Status, got.Body)
			}
			if files := e.audioDir(); len(files) != 0 {
				t.Fatalf("library %v", files)
			}
		})
	}
}

// TestSpeechEspeak speaks with the real espeak-ng.
func TestSpeechEspeak(t *testing.T) {
	if _, err := exec.LookPath("espeak-ng"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("espeak-ng is missing on CI; test.sh installs it")
		}
		t.Skip("espeak-ng is not on PATH (apt-get install espeak-ng); skipping real speech synthesis")
	}
	e := newEnv(t, func(o *Options) { o.Speaker = &tts.Espeak{} })
	var a api.Audio
	e.must(http.StatusCreated, e.do("POST", "/api/v1/audio/tts", e.staff, map[string]string{"text": "村民们请注意：今天下午三点在村委会召开防汛会议。"}), &a)
	if a.DurationMS < 1500 || a.SampleRate != 22050 || a.Channels != 1 || a.Source == nil || a.Source.SampleRate != 22050 {
		t.Fatalf("clip %+v", a)
	}
	if a.LoudnessLUFS == nil || *a.LoudnessLUFS < -40 || *a.LoudnessLUFS > -5 || a.GainDB == nil {
		t.Fatalf("loudness of speech: %+v", a)
	}
	t.Logf("%d ms, %.1f LUFS, peak %.1f dBFS, gain %+.1f dB", a.DurationMS, *a.LoudnessLUFS, *a.PeakDBFS, *a.GainDB)
	got := e.do("POST", "/api/v1/audio/tts", e.staff, map[string]string{"text": "你好", "voice": "klingon"})
	if got.Status != http.StatusBadRequest || !strings.HasPrefix(got.errBody(t).Error.Message, "voice: ") {
		t.Fatalf("unknown voice: %d %s", got.Status, got.Body)
	}
}
