package tts_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cunxiang/cunxiang/controller/internal/cx"
	"github.com/cunxiang/cunxiang/controller/internal/media"
	"github.com/cunxiang/cunxiang/controller/internal/media/mediatest"
	"github.com/cunxiang/cunxiang/controller/internal/tts"
	"github.com/cunxiang/cunxiang/playlists"
)

// needEspeak skips where espeak-ng is missing; CI (which test.sh
// provisions) must have it.
func needEspeak(tb testing.TB) {
	tb.Helper()
	if _, err := exec.LookPath("espeak-ng"); err != nil {
		if os.Getenv("CI") != "" {
			tb.Fatal("espeak-ng is missing on CI; test.sh installs it")
		}
		tb.Skip("espeak-ng is not installed (apt-get install espeak-ng)")
	}
}

// Synthesized speech must pass the same checks as an upload and come out
// as audible speech in the playback format.
func TestSpeakMandarin(t *testing.T) {
	needEspeak(t)
	var e tts.Espeak
	wav, err := e.Speak(context.Background(), "村民们请注意：今天下午三点在村委会召开防汛会议，请各户派一人参加。", "")
	if err != nil {
		t.Fatal(err)
	}
	var out mediatest.MemFile
	src, d, err := media.Convert(context.Background(), wav, &out, time.Hour)
	if err != nil {
		t.Fatalf("the speech does not pass as an upload: %v", err)
	}
	if src.SampleRate != playlists.SampleRate || src.Channels != 1 || src.BitsPerSample != 16 {
		t.Fatalf("espeak-ng wrote %v", src)
	}
	if d < 2*time.Second || d > 30*time.Second {
		t.Fatalf("%v of speech for 31 characters", d)
	}

	lib, err := media.New(media.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	p, err := lib.Prepare(context.Background(), bytes.NewReader(wav))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Discard()
	// Speech, not silence: espeak-ng speaks at about -20 LUFS.
	if p.LoudnessLUFS < -40 || p.LoudnessLUFS > -5 || p.PeakDBFS > 0 {
		t.Fatalf("clip = %+v", p.Clip)
	}
	t.Logf("%v, %.1f LUFS, true peak %.1f dBFS, gain %+.1f dB", d, p.LoudnessLUFS, p.PeakDBFS, p.GainDB)
}

// Every voice offered must exist in the installed espeak-ng.
func TestEveryVoiceSpeaks(t *testing.T) {
	needEspeak(t)
	var e tts.Espeak
	for _, v := range tts.Voices() {
		t.Run(v.Name, func(t *testing.T) {
			wav, err := e.Speak(context.Background(), "1 2 3", v.Name)
			if err != nil {
				t.Fatal(err)
			}
			var out mediatest.MemFile
			if _, d, err := media.Convert(context.Background(), wav, &out, time.Hour); err != nil || d <= 0 {
				t.Fatalf("%v, %v", d, err)
			}
		})
	}
	if tts.Voices()[0].Name != tts.DefaultVoice {
		t.Fatalf("the default voice is not listed first")
	}
}

// Text is read from standard input: what looks like an option is spoken.
func TestTextIsNotAnOption(t *testing.T) {
	needEspeak(t)
	e := tts.Espeak{Speed: 200}
	wav, err := e.Speak(context.Background(), "--help -w /etc/passwd", "en")
	if err != nil {
		t.Fatal(err)
	}
	var out mediatest.MemFile
	if _, d, err := media.Convert(context.Background(), wav, &out, time.Hour); err != nil || d < 500*time.Millisecond {
		t.Fatalf("%v, %v", d, err)
	}
}

func TestSpeakRejects(t *testing.T) {
	tests := []struct {
		name, text, voice string
		field, want       string
	}{
		{"empty", "", "", "text", "empty"},
		{"blank", " \n\t ", "", "text", "empty"},
		{"too long", strings.Repeat("请", tts.MaxChars+1), "", "text", "2001 characters"},
		{"control character", "注意\x07", "", "text", "U+0007"},
		{"not UTF-8", "\xff\xfe", "", "text", "UTF-8"},
		{"nothing to say", "。。。！", "", "text", "no letters"},
		{"unknown voice", "你好", "klingon", "voice", "cmn, yue"},
		{"voice with an option in it", "你好", "cmn -w /tmp/x", "voice", "not a voice"},
	}
	e := tts.Espeak{Path: "/nonexistent/espeak-ng"} // checked before the program is looked for
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := e.Speak(context.Background(), tt.text, tt.voice)
			var ce *cx.Error
			if !errors.As(err, &ce) || ce.Code != cx.EINVALID || ce.Field != tt.field || !strings.Contains(ce.Message, tt.want) {
				t.Fatalf("err = %v; want %s: …%s…", err, tt.field, tt.want)
			}
		})
	}
	// The longest text allowed is accepted (up to the missing program).
	if _, err := e.Speak(context.Background(), strings.Repeat("请", tts.MaxChars), ""); !errors.Is(err, tts.ErrUnavailable) {
		t.Fatalf("%d characters: %v", tts.MaxChars, err)
	}
}

func TestMissingProgram(t *testing.T) {
	for _, path := range []string{"/nonexistent/espeak-ng", "no-such-espeak-ng-here"} {
		e := tts.Espeak{Path: path}
		_, err := e.Speak(context.Background(), "你好", "cmn")
		if !errors.Is(err, tts.ErrUnavailable) || !strings.Contains(err.Error(), path+" not found") ||
			cx.Code(err) != cx.EUNAVAILABLE || cx.Message(err) != "text-to-speech is not available: install espeak-ng (apt-get install espeak-ng)" {
			t.Fatalf("%s: err = %v", path, err)
		}
	}
}

// fakeEspeak writes a shell script standing in for espeak-ng.
func fakeEspeak(t *testing.T, script string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "espeak-ng")
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+script+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestProgramFailures(t *testing.T) {
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip("no sh")
	}
	t.Run("hangs", func(t *testing.T) {
		e := tts.Espeak{Path: fakeEspeak(t, "sleep 30"), Timeout: 100 * time.Millisecond}
		_, err := e.Speak(context.Background(), "你好", "")
		if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "did not finish") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("fails", func(t *testing.T) {
		e := tts.Espeak{Path: fakeEspeak(t, "echo 'Error: The specified espeak-ng voice does not exist.' >&2; exit 1")}
		_, err := e.Speak(context.Background(), "你好", "yue")
		if err == nil || !strings.Contains(err.Error(), "voice does not exist") || cx.Code(err) != cx.EINTERNAL {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("writes nothing", func(t *testing.T) {
		e := tts.Espeak{Path: fakeEspeak(t, "cat >/dev/null")}
		if _, err := e.Speak(context.Background(), "你好", ""); err == nil || !strings.Contains(err.Error(), "no audio") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("is cancelled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		e := tts.Espeak{Path: fakeEspeak(t, "sleep 30")}
		if _, err := e.Speak(ctx, "你好", ""); !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v", err)
		}
	})
}
