// Package tts turns written notices into speech with espeak-ng, so a
// clerk can broadcast a typed announcement when no one can record it.
//
// Speak returns a WAV file as espeak-ng writes it (22,050 Hz mono 16-bit
// PCM); it is meant to go through media.Library.Prepare like any upload,
// which checks it, measures its loudness and stores it. espeak-ng's voice
// is robotic but intelligible, and it runs offline on the controller.
package tts

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/cunxiang/cunxiang/api"
	"github.com/cunxiang/cunxiang/controller/internal/cx"
)

// Limits and defaults.
const (
	// DefaultVoice is Mandarin.
	DefaultVoice = "cmn"
	// MaxChars bounds the text of one announcement, in characters: about
	// eight minutes of Mandarin at espeak-ng's default speed.
	MaxChars = 2000
	// DefaultTimeout bounds one synthesis. espeak-ng speaks MaxChars of
	// Mandarin in a few seconds on a small machine.
	DefaultTimeout = time.Minute
	// maxOutput bounds the WAV read back: MaxChars at the slowest speed
	// is well under this.
	maxOutput = 128 << 20
)

// ErrUnavailable is returned (wrapped) when espeak-ng is not installed.
// It is a cx.EUNAVAILABLE error, which the HTTP layer answers with 503
// and this message: it is the server that lacks something, not the
// request that is wrong.
var ErrUnavailable = &cx.Error{Code: cx.EUNAVAILABLE, Reason: api.ReasonTTSUnavailable, Message: "text-to-speech is not available: install espeak-ng (apt-get install espeak-ng)"}

// Voice is a voice Speak accepts.
type Voice struct {
	Name     string `json:"name"`     // espeak-ng's voice name, passed to -v
	Language string `json:"language"` // for people choosing it
}

// voices are the languages a Chinese county is likely to need that
// Debian's espeak-ng speaks.
var voices = []Voice{
	{"cmn", "普通话 Mandarin"},
	{"yue", "粤语 Cantonese"},
	{"hak", "客家话 Hakka"},
	{"ug", "ئۇيغۇرچە 维吾尔语 Uyghur"},
	{"en", "English"},
	{"en-us", "English (US)"},
}

// Voices lists the voices Speak accepts, DefaultVoice first.
func Voices() []Voice { return append([]Voice(nil), voices...) }

func voiceNames() string {
	names := make([]string, len(voices))
	for i, v := range voices {
		names[i] = v.Name
	}
	return strings.Join(names, ", ")
}

// Espeak speaks with the espeak-ng program. The zero value works: it
// runs "espeak-ng" from PATH at espeak-ng's default speed.
type Espeak struct {
	// Path is the espeak-ng binary, or a name looked up in PATH
	// ("espeak-ng" if empty).
	Path string
	// Timeout bounds one synthesis (DefaultTimeout if 0).
	Timeout time.Duration
	// Speed is in words per minute, 80 to 450 (espeak-ng's default, 175,
	// if 0). Announcements outdoors carry better somewhat slower.
	Speed int
}

// Speak synthesizes text in voice (DefaultVoice if empty) and returns a
// WAV file. Text must be 1 to MaxChars characters of UTF-8 without
// control characters other than line breaks and tabs; it is passed on
// standard input, never as an argument, so nothing in it can be taken
// for an option.
func (e *Espeak) Speak(ctx context.Context, text, voice string) ([]byte, error) {
	text, err := checkText(text)
	if err != nil {
		return nil, err
	}
	if voice == "" {
		voice = DefaultVoice
	}
	if !knownVoice(voice) {
		return nil, cx.Invalid("voice", fmt.Sprintf("%q is not a voice of this controller; use one of %s", voice, voiceNames())).With(api.ReasonVoiceUnknown, "voice", voice)
	}
	if e.Speed != 0 && (e.Speed < 80 || e.Speed > 450) {
		return nil, fmt.Errorf("tts: speed %d words per minute is outside 80 to 450", e.Speed)
	}
	name := e.Path
	if name == "" {
		name = "espeak-ng"
	}
	bin, err := exec.LookPath(name)
	if err != nil {
		return nil, fmt.Errorf("tts: %s not found: %w", name, ErrUnavailable)
	}
	timeout := e.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	dir, err := os.MkdirTemp("", "cunxiang-tts-")
	if err != nil {
		return nil, fmt.Errorf("tts: %w", err)
	}
	defer os.RemoveAll(dir)
	out := filepath.Join(dir, "speech.wav")

	// -w writes a WAV with real sizes (--stdout leaves placeholders).
	args := []string{"-v", voice, "-w", out}
	if e.Speed != 0 {
		args = append(args, "-s", strconv.Itoa(e.Speed))
	}
	args = append(args, "--stdin")
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdin = strings.NewReader(text)
	var stderr bytes.Buffer
	cmd.Stderr = &limitedWriter{w: &stderr, n: 4 << 10}
	cmd.WaitDelay = time.Second
	if err := cmd.Run(); err != nil {
		switch {
		case errors.Is(ctx.Err(), context.DeadlineExceeded):
			return nil, fmt.Errorf("tts: espeak-ng did not finish within %s: %w", timeout, ctx.Err())
		case ctx.Err() != nil:
			return nil, fmt.Errorf("tts: %w", ctx.Err())
		}
		return nil, fmt.Errorf("tts: espeak-ng -v %s: %w: %s", voice, err, strings.TrimSpace(stderr.String()))
	}
	fi, err := os.Stat(out)
	if err != nil {
		return nil, fmt.Errorf("tts: espeak-ng wrote no audio: %w", err)
	}
	if fi.Size() > maxOutput {
		return nil, fmt.Errorf("tts: espeak-ng wrote %d bytes, more than the %d expected", fi.Size(), maxOutput)
	}
	wav, err := os.ReadFile(out)
	if err != nil {
		return nil, fmt.Errorf("tts: %w", err)
	}
	if len(wav) <= 44 {
		return nil, fmt.Errorf("tts: espeak-ng wrote no audio for %d characters of text", utf8.RuneCountInString(text))
	}
	return wav, nil
}

func knownVoice(name string) bool {
	for _, v := range voices {
		if v.Name == name {
			return true
		}
	}
	return false
}

// checkText trims text and checks it is something to say.
func checkText(text string) (string, error) {
	if !utf8.ValidString(text) {
		return "", cx.Invalid("text", "is not valid UTF-8 text").With(api.ReasonTextControl)
	}
	text = strings.TrimSpace(text)
	if text == "" {
		return "", cx.Invalid("text", "is empty; write what the loudspeakers should say").With(api.ReasonTextEmpty)
	}
	if n := utf8.RuneCountInString(text); n > MaxChars {
		return "", cx.Invalid("text", fmt.Sprintf("is %d characters long; at most %d can be spoken in one announcement; split it into several", n, MaxChars)).With(api.ReasonTextTooLong, "max", MaxChars)
	}
	for _, r := range text {
		if unicode.IsControl(r) && r != '\n' && r != '\r' && r != '\t' {
			return "", cx.Invalid("text", fmt.Sprintf("contains the control character U+%04X; remove it", r)).With(api.ReasonTextControl)
		}
	}
	if !strings.ContainsFunc(text, func(r rune) bool { return unicode.IsLetter(r) || unicode.IsNumber(r) }) {
		return "", cx.Invalid("text", "has no letters or digits to speak").With(api.ReasonTextNothingToSay)
	}
	return text, nil
}

// limitedWriter keeps the first n bytes written to it and drops the rest.
type limitedWriter struct {
	w *bytes.Buffer
	n int
}

func (l *limitedWriter) Write(p []byte) (int, error) {
	if room := l.n - l.w.Len(); room > 0 {
		l.w.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}
