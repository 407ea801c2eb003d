// Command livecodec measures what docs/live.md's codec decision rests on:
// it loads page.html in headless Chromium with a generated WAV as the fake
// microphone, reports which audio codecs WebCodecs' AudioEncoder offers,
// encodes a few seconds as Opus, decodes every packet with the pure-Go
// github.com/pion/opus, and, given -ref (ref/ref.c built against libopus),
// compares that decoding with libopus's sample by sample.
//
//	gcc -O2 -o /tmp/opusref ref/ref.c -lopus      # apt-get install chromium libopus-dev
//	go run . -bitrate 24000 -frame 20ms -ref /tmp/opusref
//
// It is a module of its own so that neither binary links chromedp or
// pion/opus for it.
package main

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/pion/opus"
)

type result struct {
	WebCodecs     bool           `json:"webcodecs"`
	Supported     map[string]any `json:"supported"`
	TrackSettings map[string]any `json:"trackSettings"`
	InputFormat   []any          `json:"inputFormat"`
	Errors        []string       `json:"errors"`
	Packets       []struct {
		Dur float64 `json:"dur"`
		B64 string  `json:"b64"`
	} `json:"packets"`
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "livecodec:", err)
		os.Exit(1)
	}
}

func run() error {
	bitrate := flag.Int("bitrate", 24000, "Opus bitrate asked of the encoder, bit/s")
	frame := flag.Duration("frame", 20*time.Millisecond, "Opus frame duration")
	secs := flag.Float64("seconds", 3, "how much of the fake microphone to encode")
	browser := flag.String("chromium", "/usr/bin/chromium", "the browser")
	ref := flag.String("ref", "", "ref/ref.c built against libopus: compare its decoding with pion/opus's")
	flag.Parse()

	dir, err := os.MkdirTemp("", "livecodec")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	wav := filepath.Join(dir, "in.wav")
	if err := os.WriteFile(wav, speechLikeWAV(48000, *secs+1), 0o644); err != nil {
		return err
	}
	page, err := os.ReadFile("page.html")
	if err != nil {
		return fmt.Errorf("run it from tools/livecodec: %w", err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write(page)
	}))
	defer srv.Close()

	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(*browser),
		chromedp.Flag("use-fake-ui-for-media-stream", true),
		chromedp.Flag("use-fake-device-for-media-stream", true),
		chromedp.Flag("use-file-for-fake-audio-capture", wav),
		chromedp.NoSandbox,
	)
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancel()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	ctx, cancel = context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.Navigate(srv.URL)); err != nil {
		return err
	}
	ua, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`navigator.userAgent`))
	res, err := chromedp.Run(ctx, chromedp.Evaluate[result](
		fmt.Sprintf(`run(%d, %d, %d)`, int(*secs*1000), *bitrate, frame.Microseconds()), chromedp.EvalAwaitPromise))
	if err != nil {
		return err
	}
	fmt.Println("browser:", ua)
	fmt.Println("WebCodecs AudioEncoder:", res.WebCodecs, "supported:", res.Supported)
	fmt.Println("microphone:", res.InputFormat, "errors:", res.Errors)
	if len(res.Packets) == 0 {
		return errors.New("no packets")
	}

	var packets [][]byte
	total := 0
	for _, p := range res.Packets {
		b, err := base64.StdEncoding.DecodeString(p.B64)
		if err != nil || len(b) == 0 {
			return fmt.Errorf("packet %d: %v", len(packets), err)
		}
		packets = append(packets, b)
		total += len(b)
	}
	dur := time.Duration(res.Packets[0].Dur) * time.Microsecond * time.Duration(len(packets))
	fmt.Printf("opus: %d packets of %s, %d bytes, %.1f kbit/s, %.0f KB a minute\n",
		len(packets), time.Duration(res.Packets[0].Dur)*time.Microsecond, total,
		float64(total*8)/dur.Seconds()/1000, float64(total)/dur.Minutes()/1000)

	dec, err := opus.NewDecoderWithOutput(48000, 1)
	if err != nil {
		return err
	}
	var pion []int16
	configs := map[byte]int{}
	buf := make([]int16, 5760)
	t := time.Now()
	for i, p := range packets {
		configs[p[0]>>3]++
		n, err := dec.DecodeToInt16(p, buf)
		if err != nil {
			return fmt.Errorf("pion/opus: packet %d: %w", i, err)
		}
		pion = append(pion, buf[:n]...)
	}
	fmt.Printf("pion/opus: every packet decoded, %d samples in %s; TOC configurations %v\n", len(pion), time.Since(t), configs)

	if *ref == "" {
		return nil
	}
	pkt := filepath.Join(dir, "packets.bin")
	raw := filepath.Join(dir, "libopus.raw")
	var lp []byte
	for _, p := range packets {
		lp = binary.LittleEndian.AppendUint16(lp, uint16(len(p)))
		lp = append(lp, p...)
	}
	if err := os.WriteFile(pkt, lp, 0o644); err != nil {
		return err
	}
	if out, err := exec.Command(*ref, pkt, raw).CombinedOutput(); err != nil {
		return fmt.Errorf("%s: %v: %s", *ref, err, out)
	}
	b, err := os.ReadFile(raw)
	if err != nil {
		return err
	}
	libopus := make([]int16, len(b)/2)
	for i := range libopus {
		libopus[i] = int16(binary.LittleEndian.Uint16(b[2*i:]))
	}
	var sig, diff float64
	maxd := 0
	n := min(len(pion), len(libopus))
	for i := 0; i < n; i++ {
		d := int(pion[i]) - int(libopus[i])
		sig += float64(libopus[i]) * float64(libopus[i])
		diff += float64(d * d)
		maxd = max(maxd, abs(d))
	}
	fmt.Printf("against libopus: %d and %d samples, signal/difference %.1f dB, largest difference %d\n",
		len(pion), len(libopus), 10*math.Log10(sig/max(diff, 1)), maxd)
	return nil
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

// speechLikeWAV is 16-bit mono PCM: a 220 Hz voice with harmonics,
// modulated at syllable rate, over a slow chirp.
func speechLikeWAV(rate int, secs float64) []byte {
	n := int(float64(rate) * secs)
	b := make([]byte, 44, 44+2*n)
	copy(b, "RIFF")
	binary.LittleEndian.PutUint32(b[4:], uint32(36+2*n))
	copy(b[8:], "WAVEfmt ")
	binary.LittleEndian.PutUint32(b[16:], 16)
	binary.LittleEndian.PutUint16(b[20:], 1)
	binary.LittleEndian.PutUint16(b[22:], 1)
	binary.LittleEndian.PutUint32(b[24:], uint32(rate))
	binary.LittleEndian.PutUint32(b[28:], uint32(rate*2))
	binary.LittleEndian.PutUint16(b[32:], 2)
	binary.LittleEndian.PutUint16(b[34:], 16)
	copy(b[36:], "data")
	binary.LittleEndian.PutUint32(b[40:], uint32(2*n))
	for i := 0; i < n; i++ {
		t := float64(i) / float64(rate)
		v := 0.0
		for h := 1; h <= 8; h++ {
			v += math.Sin(2*math.Pi*220*float64(h)*t) / float64(h)
		}
		v *= 0.25 * (0.6 + 0.4*math.Sin(2*math.Pi*4*t))
		v += 0.15 * math.Sin(2*math.Pi*(300*t+400*t*t))
		b = binary.LittleEndian.AppendUint16(b, uint16(int16(v*12000)))
	}
	return b
}
