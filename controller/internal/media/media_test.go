package media_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cunxiang/cunxiang/controller/internal/cx"
	"github.com/cunxiang/cunxiang/controller/internal/media"
	"github.com/cunxiang/cunxiang/controller/internal/media/mediatest"
	"github.com/cunxiang/cunxiang/playlists"
)

func newLib(tb testing.TB, o media.Options) (*media.Library, string) {
	tb.Helper()
	dir := filepath.Join(tb.TempDir(), "audio")
	o.Dir = dir
	l, err := media.New(o)
	if err != nil {
		tb.Fatal(err)
	}
	return l, dir
}

func dirNames(tb testing.TB, dir string) []string {
	tb.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		tb.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

// samples16 reads the PCM of a canonical 16-bit mono WAV.
func samples16(tb testing.TB, b []byte) []float64 {
	tb.Helper()
	if len(b) < 44 || string(b[36:40]) != "data" {
		tb.Fatalf("not a canonical WAV: % x", b[:min(len(b), 44)])
	}
	if got := binary.LittleEndian.Uint32(b[24:28]); got != playlists.SampleRate {
		tb.Fatalf("rate %d", got)
	}
	if ch := binary.LittleEndian.Uint16(b[22:24]); ch != 1 {
		tb.Fatalf("channels %d", ch)
	}
	data := b[44:]
	if n := binary.LittleEndian.Uint32(b[40:44]); int(n) != len(data) {
		tb.Fatalf("data size %d, have %d", n, len(data))
	}
	out := make([]float64, len(data)/2)
	for i := range out {
		out[i] = float64(int16(binary.LittleEndian.Uint16(data[2*i:]))) / 32768
	}
	return out
}

func rms(x []float64) float64 {
	var s float64
	for _, v := range x {
		s += v * v
	}
	return math.Sqrt(s / float64(len(x)))
}

// crossings counts sign changes, which for a sine is 2 × frequency × seconds.
func crossings(x []float64) int {
	n := 0
	for i := 1; i < len(x); i++ {
		if (x[i-1] < 0) != (x[i] < 0) {
			n++
		}
	}
	return n
}

func TestCanonicalClipIsBitIdentical(t *testing.T) {
	l, dir := newLib(t, media.Options{})
	in := mediatest.Sine(mediatest.Spec{Rate: playlists.SampleRate, Channels: 1, Bits: 16, Seconds: 1.5, Freq: 440})
	p, err := l.Prepare(context.Background(), bytes.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Commit(); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(in)
	if p.SHA256 != hex.EncodeToString(sum[:]) {
		t.Fatalf("sha256 %s differs from the input's", p.SHA256)
	}
	out, err := os.ReadFile(filepath.Join(dir, p.SHA256+".wav"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(in, out) {
		t.Fatalf("output differs from a canonical input (%d vs %d bytes)", len(out), len(in))
	}
	if p.DurationMS != 1500 || p.SizeBytes != int64(len(in)) || p.SampleRate != 22050 || p.Channels != 1 {
		t.Fatalf("clip = %+v", p.Clip)
	}
	if names := dirNames(t, dir); len(names) != 1 {
		t.Fatalf("dir holds %v", names)
	}
}

func TestConvert(t *testing.T) {
	tests := []struct {
		name string
		spec mediatest.Spec
	}{
		{"44.1 kHz stereo 16-bit", mediatest.Spec{Rate: 44100, Channels: 2, Bits: 16}},
		{"48 kHz mono 24-bit", mediatest.Spec{Rate: 48000, Channels: 1, Bits: 24}},
		{"8 kHz mono 8-bit", mediatest.Spec{Rate: 8000, Channels: 1, Bits: 8}},
		{"16 kHz stereo 32-bit", mediatest.Spec{Rate: 16000, Channels: 2, Bits: 32}},
		{"22.05 kHz stereo 16-bit", mediatest.Spec{Rate: 22050, Channels: 2, Bits: 16}},
		{"22.05 kHz mono 8-bit", mediatest.Spec{Rate: 22050, Channels: 1, Bits: 8}},
		{"96 kHz 6 channels 16-bit", mediatest.Spec{Rate: 96000, Channels: 6, Bits: 16}},
		{"extensible 48 kHz stereo 16-bit", mediatest.Spec{Rate: 48000, Channels: 2, Bits: 16, Extensible: true}},
		{"written to a pipe (placeholder sizes)", mediatest.Spec{Rate: 22050, Channels: 1, Bits: 16, Streamed: true}},
		{"with a LIST chunk before the data", mediatest.Spec{Rate: 44100, Channels: 1, Bits: 16, ListChunk: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.spec.Seconds, tt.spec.Freq, tt.spec.Amp = 1, 440, 0.5
			in := mediatest.Sine(tt.spec)
			var out mediatest.MemFile
			src, d, err := media.Convert(context.Background(), in, &out, time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			if src.SampleRate != tt.spec.Rate || src.Channels != tt.spec.Channels || src.BitsPerSample != tt.spec.Bits {
				t.Fatalf("source = %+v", src)
			}
			if d < time.Second-time.Millisecond || d > time.Second+time.Millisecond {
				t.Fatalf("duration %v", d)
			}
			x := samples16(t, out.Bytes())
			if len(x) != playlists.SampleRate {
				t.Fatalf("%d samples, want %d", len(x), playlists.SampleRate)
			}
			if c := crossings(x); c < 876 || c > 884 {
				t.Fatalf("%d zero crossings; a 440 Hz tone has 880", c)
			}
			if r := rms(x); math.Abs(r-0.5/math.Sqrt2) > 0.01 {
				t.Fatalf("rms %.4f, want %.4f", r, 0.5/math.Sqrt2)
			}
			for i, v := range x {
				if math.Abs(v) > 0.52 {
					t.Fatalf("sample %d = %.3f overshoots the 0.5 amplitude", i, v)
				}
			}
		})
	}
}

// A tone the playback rate cannot hold must be filtered away, not folded
// back into the audible band.
func TestDownsamplingDoesNotAlias(t *testing.T) {
	in := mediatest.Sine(mediatest.Spec{Rate: 44100, Channels: 1, Bits: 16, Seconds: 1, Freq: 15000, Amp: 0.5})
	var out mediatest.MemFile
	if _, _, err := media.Convert(context.Background(), in, &out, 0); err != nil {
		t.Fatal(err)
	}
	if r := rms(samples16(t, out.Bytes())); r > 0.01 {
		t.Fatalf("a 15 kHz tone came out with rms %.4f; it should be filtered out", r)
	}
}

func TestRejects(t *testing.T) {
	good := mediatest.Sine(mediatest.Spec{Rate: 22050, Channels: 1, Bits: 16, Seconds: 0.5, Freq: 440})
	withFmt := func(tag uint16, bits int) []byte {
		b := bytes.Clone(good)
		binary.LittleEndian.PutUint16(b[20:], tag)
		binary.LittleEndian.PutUint16(b[34:], uint16(bits))
		binary.LittleEndian.PutUint16(b[32:], uint16(bits/8))
		return b
	}
	hostileList := append(bytes.Clone(good[:12]), []byte("LIST\xf0\xff\xff\xffINFO")...)
	tests := []struct {
		name     string
		data     []byte
		opts     media.Options
		wantCode string
		want     string
	}{
		{"empty", nil, media.Options{}, cx.EINVALID, "empty"},
		{"mp3", append([]byte("ID3\x03\x00"), make([]byte, 100)...), media.Options{}, cx.EINVALID, "MP3"},
		{"m4a", append([]byte("\x00\x00\x00\x18ftypM4A "), make([]byte, 100)...), media.Options{}, cx.EINVALID, "M4A"},
		{"text", []byte("hello, this is not audio at all"), media.Options{}, cx.EINVALID, "not a WAV"},
		{"RIFF but AVI", append([]byte("RIFF\x00\x01\x00\x00AVI "), make([]byte, 100)...), media.Options{}, cx.EINVALID, `"AVI "`},
		{"truncated", good[:len(good)-1001], media.Options{}, cx.EINVALID, "cut short"},
		{"header only", good[:44], media.Options{}, cx.EINVALID, "cut short"},
		{"zero samples", mediatest.Sine(mediatest.Spec{Rate: 22050, Channels: 1, Bits: 16}), media.Options{}, cx.EINVALID, "empty"},
		{"float", withFmt(3, 32), media.Options{}, cx.EINVALID, "32-bit floating point"},
		{"ADPCM", withFmt(0x11, 4), media.Options{}, cx.EINVALID, "IMA ADPCM"},
		{"μ-law", withFmt(7, 8), media.Options{}, cx.EINVALID, "μ-law"},
		{"unknown codec", withFmt(0x1234, 16), media.Options{}, cx.EINVALID, "0x1234"},
		{"12-bit", withFmt(1, 12), media.Options{}, cx.EINVALID, "12 bits per sample"},
		{"no fmt", append([]byte("RIFF\x0c\x00\x00\x00WAVEdata\x04\x00\x00\x00\x01\x02\x03\x04"), 0), media.Options{}, cx.EINVALID, "no format"},
		{"low rate", mediatest.Sine(mediatest.Spec{Rate: 4000, Channels: 1, Bits: 16, Seconds: 0.1, Freq: 100}), media.Options{}, cx.EINVALID, "4000 Hz"},
		{"hostile LIST size", hostileList, media.Options{}, cx.EINVALID, "cut short"},
		{"too large", good, media.Options{MaxBytes: 1000}, cx.ETOOLARGE, "1000 bytes"},
		{"too long", good, media.Options{MaxDuration: 100 * time.Millisecond}, cx.EINVALID, "longest accepted"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, dir := newLib(t, tt.opts)
			p, err := l.Prepare(context.Background(), bytes.NewReader(tt.data))
			if err == nil {
				p.Discard()
				t.Fatal("accepted")
			}
			if cx.Code(err) != tt.wantCode || !strings.Contains(cx.Message(err), tt.want) {
				t.Fatalf("err = %v; want %s containing %q", err, tt.wantCode, tt.want)
			}
			if names := dirNames(t, dir); len(names) != 0 {
				t.Fatalf("left behind %v", names)
			}
		})
	}
}

func TestDiscardAndOpen(t *testing.T) {
	l, dir := newLib(t, media.Options{})
	in := mediatest.Sine(mediatest.Spec{Rate: 16000, Channels: 1, Bits: 16, Seconds: 0.2, Freq: 300})
	p, err := l.Prepare(context.Background(), bytes.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	p.Discard()
	if names := dirNames(t, dir); len(names) != 0 {
		t.Fatalf("left behind %v", names)
	}
	if _, err := l.Open(p.SHA256); cx.Code(err) != cx.ENOTFOUND {
		t.Fatalf("open discarded: %v", err)
	}
	if _, err := l.Open("../../etc/passwd"); cx.Code(err) != cx.EINVALID {
		t.Fatalf("open bad name: %v", err)
	}
}
