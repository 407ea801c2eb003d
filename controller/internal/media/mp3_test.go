package media_test

import (
	"bytes"
	"context"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cunxiang/cunxiang/controller/internal/cx"
	"github.com/cunxiang/cunxiang/controller/internal/media"
	"github.com/cunxiang/cunxiang/playlists"
)

func readTestdata(tb testing.TB, name string) []byte {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// prepareClip runs an upload through a library and returns the stored
// clip and its samples.
func prepareClip(tb testing.TB, data []byte) (media.Clip, []float64) {
	tb.Helper()
	l, dir := newLib(tb, media.Options{})
	p, err := l.Prepare(context.Background(), bytes.NewReader(data))
	if err != nil {
		tb.Fatal(err)
	}
	if err := p.Commit(); err != nil {
		tb.Fatal(err)
	}
	out, err := os.ReadFile(filepath.Join(dir, p.SHA256+".wav"))
	if err != nil {
		tb.Fatal(err)
	}
	return p.Clip, samples16(tb, out)
}

// MPEG-1 stereo with ID3v2 and ID3v1 tags and a LAME info frame: the tags
// are skipped, the info frame is not decoded as audio, and the encoder's
// delay and padding are cut, so the clip lasts exactly as long as the
// recording and the tone sits where it was.
func TestMP3Stereo44100(t *testing.T) {
	clip, x := prepareClip(t, readTestdata(t, "tone-44100-stereo.mp3"))
	want := media.Format{SampleRate: 44100, Channels: 2, BitsPerSample: 16, Codec: "mp3", Kbps: 64}
	if clip.Source != want {
		t.Fatalf("source = %+v, want %+v", clip.Source, want)
	}
	if clip.Source.String() != "44100 Hz stereo MP3, 64 kbps" {
		t.Fatalf("source reads %q", clip.Source)
	}
	if clip.DurationMS != 1000 || len(x) != playlists.SampleRate {
		t.Fatalf("%d ms, %d samples; want 1000 ms", clip.DurationMS, len(x))
	}
	on, off := -1, -1
	for i, v := range x {
		if math.Abs(v) > 0.05 {
			if on < 0 {
				on = i
			}
			off = i
		}
	}
	// The tone runs from 0.25 to 0.75 s: samples 5512 to 16537.
	if math.Abs(float64(on-5512)) > 44 || math.Abs(float64(off-16537)) > 44 {
		t.Fatalf("tone from sample %d to %d; want 5512 to 16537 (± 2 ms)", on, off)
	}
	if c := crossings(x[6000:16000]); c < 904 || c > 910 {
		t.Fatalf("%d zero crossings; a 1 kHz tone has 907 in 10,000 samples", c)
	}
	// As loud as the same signal measured before encoding, but for what
	// the lossy encoding takes (LAME's own decoder shows the same 0.3 dB).
	ref, _, err := media.Loudness(tone(playlists.SampleRate, segment{0.25, 1000, silence}, segment{0.5, 1000, -20}, segment{0.25, 1000, silence}), playlists.SampleRate)
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(clip.LoudnessLUFS-ref) > 0.6 || math.Abs(clip.PeakDBFS-(-20)) > 0.5 {
		t.Fatalf("%.2f LUFS, peak %.2f dBFS; the source reads %.2f LUFS, peak -20", clip.LoudnessLUFS, clip.PeakDBFS, ref)
	}
}

// MPEG-2 22.05 kHz mono at 32 kbps has padded frames that go-mp3 on its
// own reads one byte short, turning all but the first frames into noise.
func TestMP3Mono22050(t *testing.T) {
	clip, x := prepareClip(t, readTestdata(t, "tone-22050-mono-32k.mp3"))
	want := media.Format{SampleRate: 22050, Channels: 1, BitsPerSample: 16, Codec: "mp3", Kbps: 32}
	if clip.Source != want {
		t.Fatalf("source = %+v, want %+v", clip.Source, want)
	}
	// No info frame, so the encoder's delay and padding stay: 41 frames
	// of 576 samples.
	if len(x) != 41*576 {
		t.Fatalf("%d samples, want %d", len(x), 41*576)
	}
	// LAME at 32 kbps takes 0.3-0.5 dB off (its own decoder agrees).
	mid := x[2000:20000]
	if r := rms(mid); math.Abs(r-0.5/math.Sqrt2) > 0.025 {
		t.Fatalf("rms %.4f, want %.4f", r, 0.5/math.Sqrt2)
	}
	if c := crossings(mid); c < 715 || c > 721 {
		t.Fatalf("%d zero crossings; a 440 Hz tone has 718 in 18,000 samples", c)
	}
	for i, v := range x {
		if math.Abs(v) > 0.56 {
			t.Fatalf("sample %d = %.3f overshoots the 0.5 amplitude", i, v)
		}
	}
}

func TestMP3Rejects(t *testing.T) {
	stereo := readTestdata(t, "tone-44100-stereo.mp3")
	mono := readTestdata(t, "tone-22050-mono-32k.mp3")
	const id3v1 = 128
	audioEnd := len(stereo) - id3v1
	// A frame header: MPEG-1 layer 3, 128 kbps, 44.1 kHz, stereo.
	frame := func(b1, b2 byte) []byte { return append([]byte{0xff, b1, b2, 0x00}, make([]byte, 600)...) }
	garbled := bytes.Clone(mono)
	copy(garbled[2001:], bytes.Repeat([]byte("garbage!"), 20))
	tests := []struct {
		name string
		data []byte
		want string
	}{
		{"cut inside a frame", mono[:len(mono)-50], "cut short"},
		{"cut at a frame boundary (the info frame counts them)", stereo[:frameBefore(stereo, frameBefore(stereo, audioEnd-1))], "cut short"},
		{"cut inside the ID3v1 tag", stereo[:len(stereo)-60], "cut short"},
		{"cut inside the ID3v2 tag", stereo[:50], "cut short"},
		{"garbage in the middle", garbled, "damaged"},
		{"text after the audio", append(bytes.Clone(mono), "this is not a tag"...), "damaged"},
		{"two files joined", append(bytes.Clone(mono), stereo[frameAfter(stereo, 0):audioEnd]...), "changes format"},
		{"an ID3 tag and nothing else", []byte("ID3\x04\x00\x00\x00\x00\x00\x00"), "only a tag"},
		{"an ID3 tag before text", append([]byte("ID3\x04\x00\x00\x00\x00\x00\x00"), "hello, world"...), "no MP3 audio follows"},
		{"MP2", frame(0xfd, 0x90), "layer 2"},
		{"MP1", frame(0xff, 0x90), "layer 1"},
		{"MPEG-2.5", frame(0xe3, 0x90), "MPEG-2.5"},
		{"free format", frame(0xfb, 0x00), "free-format"},
		{"a header and no frame", []byte{0xff, 0xfb, 0x90, 0x00}, "cut short"},
		{"an invalid header", []byte{0xff, 0xfb, 0xf0, 0x00, 1, 2, 3, 4, 5, 6, 7, 8}, "header is not valid"},
		{"AAC", []byte{0xff, 0xf1, 0x50, 0x80, 1, 2, 3, 4, 5, 6, 7, 8}, "AAC"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, dir := newLib(t, media.Options{})
			p, err := l.Prepare(context.Background(), bytes.NewReader(tt.data))
			if err == nil {
				p.Discard()
				t.Fatal("accepted")
			}
			if cx.Code(err) != cx.EINVALID || !strings.Contains(cx.Message(err), tt.want) {
				t.Fatalf("err = %v; want a message containing %q", err, tt.want)
			}
			if names := dirNames(t, dir); len(names) != 0 {
				t.Fatalf("left behind %v", names)
			}
		})
	}
}

// frameAfter and frameBefore find a frame boundary of the stereo test
// file (MPEG-1 layer 3, 44.1 kHz, 64 kbps: frames of 208 or 209 bytes)
// by walking its frames from the first.
func frameStarts(b []byte) []int {
	off := 10 + (int(b[6])<<21 | int(b[7])<<14 | int(b[8])<<7 | int(b[9])) // after the ID3v2 tag
	var starts []int
	for off+4 <= len(b) && b[off] == 0xff && b[off+1]&0xe0 == 0xe0 {
		starts = append(starts, off)
		brKbps := []int{0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320}[b[off+2]>>4]
		off += 144*1000*brKbps/44100 + int(b[off+2]>>1&1)
	}
	return starts
}

func frameAfter(b []byte, off int) int {
	for _, s := range frameStarts(b) {
		if s > off {
			return s
		}
	}
	return len(b)
}

func frameBefore(b []byte, off int) int {
	last := 0
	for _, s := range frameStarts(b) {
		if s < off {
			last = s
		}
	}
	return last
}
