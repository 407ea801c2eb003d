// Package cache keeps the box's audio clips on disk, named by their sha256,
// and fetches missing ones from the controller. A clip is played only from
// a verified <sha256>.wav: downloads go to <sha256>.part (resumed with a
// Range request after a cut), and the whole file's hash is checked before
// it is renamed; the hash is checked again when the cache opens and every
// time a clip is loaded for playing.
package cache

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cunxiang/cunxiang/playlists"
)

// MaxClipBytes bounds one download, so a misbehaving server cannot fill the
// box's storage (an hour of 22,050 Hz 16-bit mono is about 160 MB).
const MaxClipBytes = 256 << 20

// ErrMismatch means the downloaded bytes do not hash to the expected sha256.
var ErrMismatch = errors.New("sha256 mismatch")

// Options configures a Cache. Dir is required.
type Options struct {
	Dir        string // where <sha256>.wav and <sha256>.part live
	Controller string // base URL of the controller
	Username   string // HTTP Basic credentials (the box's MQTT ones)
	Password   string
	Client     *http.Client
	Logger     *slog.Logger
	// MinBackoff and MaxBackoff bound the wait between download attempts
	// (defaults 1 s and 5 min); each wait is jittered.
	MinBackoff time.Duration
	MaxBackoff time.Duration
}

// Cache is the clip store. Fetch for one sha256 must not run twice at once.
type Cache struct {
	o   Options
	log *slog.Logger

	mu       sync.Mutex
	verified map[string]bool
}

// New opens the cache directory, verifying every clip in it and deleting
// any whose content no longer matches its name.
func New(o Options) (*Cache, error) {
	if o.Dir == "" {
		return nil, errors.New("cache: no directory")
	}
	if o.Client == nil {
		o.Client = http.DefaultClient
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.MinBackoff <= 0 {
		o.MinBackoff = time.Second
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = 5 * time.Minute
	}
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("cache: %w", err)
	}
	c := &Cache{o: o, log: o.Logger, verified: map[string]bool{}}
	entries, err := os.ReadDir(o.Dir)
	if err != nil {
		return nil, fmt.Errorf("cache: %w", err)
	}
	for _, e := range entries {
		sum, ok := strings.CutSuffix(e.Name(), ".wav")
		if !ok || !validSHA(sum) {
			continue
		}
		got, err := hashFile(c.path(sum))
		if err != nil || got != sum {
			c.log.Warn("cached clip corrupt, deleting", "sha256", sum, "err", err)
			os.Remove(c.path(sum))
			continue
		}
		c.verified[sum] = true
	}
	return c, nil
}

func (c *Cache) path(sum string) string { return filepath.Join(c.o.Dir, sum+".wav") }
func (c *Cache) part(sum string) string { return filepath.Join(c.o.Dir, sum+".part") }

// Has reports whether a verified copy of the clip is on disk.
func (c *Cache) Has(sum string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.verified[sum]
}

// Load reads, re-verifies and decodes a clip for playing. A clip that is
// not on disk, or no longer matches its hash (the file is then deleted),
// gives an error wrapping fs.ErrNotExist.
func (c *Cache) Load(sum string) ([]int16, error) {
	if !validSHA(sum) {
		return nil, fmt.Errorf("load clip: bad sha256 %q", sum)
	}
	data, err := os.ReadFile(c.path(sum))
	if err != nil {
		c.forget(sum)
		return nil, fmt.Errorf("load clip %.12s: %w", sum, err)
	}
	if got := sha256.Sum256(data); hex.EncodeToString(got[:]) != sum {
		c.forget(sum)
		os.Remove(c.path(sum))
		return nil, fmt.Errorf("load clip %.12s: changed on disk, deleted: %w", sum, fs.ErrNotExist)
	}
	pcm, err := Decode(data)
	if err != nil {
		return nil, fmt.Errorf("load clip %.12s: %w", sum, err)
	}
	return pcm, nil
}

func (c *Cache) forget(sum string) {
	c.mu.Lock()
	delete(c.verified, sum)
	c.mu.Unlock()
}

// Prune deletes the clips (and unfinished downloads) that keep does not
// name and that were last written before cutoff, and returns how many it
// deleted. Boxes have little flash: a clip no schedule or broadcast needs
// any more would otherwise stay for good.
func (c *Cache) Prune(keep map[string]bool, cutoff time.Time) (int, error) {
	entries, err := os.ReadDir(c.o.Dir)
	if err != nil {
		return 0, fmt.Errorf("cache: %w", err)
	}
	n := 0
	for _, e := range entries {
		name := e.Name()
		sum, ok := strings.CutSuffix(name, ".wav")
		if !ok {
			sum, ok = strings.CutSuffix(name, ".part")
		}
		if !ok || !validSHA(sum) || keep[sum] {
			continue
		}
		info, err := e.Info()
		if err != nil || !info.ModTime().Before(cutoff) {
			continue
		}
		if err := os.Remove(filepath.Join(c.o.Dir, name)); err != nil {
			c.log.Warn("prune cached clip", "file", name, "err", err)
			continue
		}
		if strings.HasSuffix(name, ".wav") {
			c.forget(sum)
		}
		n++
	}
	return n, nil
}

// Decode reads a WAV file in the playback format (playlists.SampleRate,
// mono, 16-bit PCM) into samples.
func Decode(data []byte) ([]int16, error) {
	fmtChunk, data, err := wavChunks(data)
	if err != nil {
		return nil, err
	}
	format := binary.LittleEndian.Uint16(fmtChunk[0:2])
	chans := binary.LittleEndian.Uint16(fmtChunk[2:4])
	rate := binary.LittleEndian.Uint32(fmtChunk[4:8])
	bits := binary.LittleEndian.Uint16(fmtChunk[14:16])
	if format != 1 || int(rate) != playlists.SampleRate || int(chans) != playlists.Channels || int(bits) != playlists.BitsPerSample {
		return nil, fmt.Errorf("WAV is format %d, %d Hz, %d channels, %d bits; want PCM %d Hz mono %d bits",
			format, rate, chans, bits, playlists.SampleRate, playlists.BitsPerSample)
	}
	// 16-bit little-endian samples, read directly: go-audio/wav's
	// FullPCMBuffer went through an int per sample and a call per byte
	// pair, and was most of the time between an emergency arriving and
	// the box sounding it.
	pcm := make([]int16, len(data)/2)
	for i := range pcm {
		pcm[i] = int16(binary.LittleEndian.Uint16(data[2*i:]))
	}
	return pcm, nil
}

// wavChunks finds the PCM part of the fmt chunk (16 bytes) and the data
// chunk (an even number of bytes) of a RIFF WAVE file, checking every
// chunk size against the bytes there are.
func wavChunks(data []byte) (fmtChunk, pcm []byte, err error) {
	if len(data) < 12 || string(data[0:4]) != "RIFF" || string(data[8:12]) != "WAVE" {
		return nil, nil, errors.New("not a RIFF WAVE file")
	}
	off := 12
	for off+8 <= len(data) {
		id := string(data[off : off+4])
		size := int64(binary.LittleEndian.Uint32(data[off+4 : off+8]))
		body := data[off+8:]
		if id == "data" {
			if fmtChunk == nil {
				return nil, nil, errors.New("WAV data chunk before its fmt chunk")
			}
			pcm = body[:min(int64(len(body)), size)&^1]
			break
		}
		if size > int64(len(body)) {
			return nil, nil, fmt.Errorf("WAV chunk %q claims %d bytes, %d left", id, size, len(body))
		}
		if id == "fmt " {
			if size < 16 || size > 64 {
				return nil, nil, fmt.Errorf("WAV fmt chunk of %d bytes", size)
			}
			fmtChunk = body[:16] // the PCM part; extensions are not needed
		}
		off += 8 + int(size) + int(size&1)
	}
	if fmtChunk == nil || pcm == nil {
		return nil, nil, errors.New("WAV without fmt or data chunk")
	}
	return fmtChunk, pcm, nil
}

// Fetch downloads the clip until it is verified on disk or ctx ends,
// waiting with jittered exponential backoff between attempts. failed, if
// not nil, hears every failed attempt (for logging or reporting).
func (c *Cache) Fetch(ctx context.Context, audioID int64, sum string, failed func(attempt int, err error)) error {
	if !validSHA(sum) {
		return fmt.Errorf("fetch audio %d: bad sha256 %q", audioID, sum)
	}
	wait := c.o.MinBackoff
	for attempt := 1; ; attempt++ {
		if c.Has(sum) {
			return nil
		}
		err := c.Download(ctx, audioID, sum)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if failed != nil {
			failed(attempt, err)
		}
		d := wait/2 + rand.N(wait/2+1)
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		wait = min(wait*2, c.o.MaxBackoff)
	}
}

// Download makes one attempt: it resumes <sha256>.part with a Range request
// (a 200 answer starts it over), then verifies the whole file and renames it
// to <sha256>.wav. A mismatch deletes the part.
func (c *Cache) Download(ctx context.Context, audioID int64, sum string) error {
	if !validSHA(sum) {
		return fmt.Errorf("download audio %d: bad sha256 %q", audioID, sum)
	}
	if c.Has(sum) {
		return nil
	}
	f, err := os.OpenFile(c.part(sum), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("download audio %d: %w", audioID, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("download audio %d: %w", audioID, err)
	}
	have := st.Size()

	url := fmt.Sprintf("%s/api/v1/audio/%d/content", strings.TrimRight(c.o.Controller, "/"), audioID)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("download audio %d: %w", audioID, err)
	}
	req.SetBasicAuth(c.o.Username, c.o.Password)
	if have > 0 {
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-", have))
	}
	resp, err := c.o.Client.Do(req)
	if err != nil {
		return fmt.Errorf("download audio %d: %w", audioID, err)
	}
	defer resp.Body.Close()

	switch resp.StatusCode {
	case http.StatusPartialContent:
		start, ok := contentRangeStart(resp.Header.Get("Content-Range"))
		if !ok || start != have {
			// Not the part we asked for: start over on the next attempt.
			f.Truncate(0)
			return fmt.Errorf("download audio %d: server resumed at %q, not byte %d", audioID, resp.Header.Get("Content-Range"), have)
		}
	case http.StatusOK:
		if err := f.Truncate(0); err != nil {
			return fmt.Errorf("download audio %d: %w", audioID, err)
		}
		have = 0
	case http.StatusRequestedRangeNotSatisfiable:
		// The part already holds the whole file (or more): verify it as is.
		resp.Body.Close()
		return c.commit(f, audioID, sum)
	default:
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("download audio %d: controller answered %s: %s", audioID, resp.Status, bytes.TrimSpace(msg))
	}
	if _, err := f.Seek(have, io.SeekStart); err != nil {
		return fmt.Errorf("download audio %d: %w", audioID, err)
	}
	n, copyErr := io.Copy(f, io.LimitReader(resp.Body, MaxClipBytes-have+1))
	// Keep what arrived, even after a cut: the next attempt resumes there.
	if err := f.Sync(); err != nil && copyErr == nil {
		copyErr = err
	}
	if copyErr != nil {
		return fmt.Errorf("download audio %d: cut after %d bytes (resumable): %w", audioID, have+n, copyErr)
	}
	if have+n > MaxClipBytes {
		f.Truncate(0)
		return fmt.Errorf("download audio %d: larger than %d bytes", audioID, MaxClipBytes)
	}
	return c.commit(f, audioID, sum)
}

// commit verifies the complete part and publishes it under its hash.
func (c *Cache) commit(f *os.File, audioID int64, sum string) error {
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("download audio %d: %w", audioID, err)
	}
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return fmt.Errorf("download audio %d: %w", audioID, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != sum {
		f.Close()
		os.Remove(c.part(sum))
		return fmt.Errorf("download audio %d: %w: got %.12s…, want %.12s…; part deleted", audioID, ErrMismatch, got, sum)
	}
	if err := os.Rename(c.part(sum), c.path(sum)); err != nil {
		return fmt.Errorf("download audio %d: %w", audioID, err)
	}
	if d, err := os.Open(c.o.Dir); err == nil {
		d.Sync()
		d.Close()
	}
	c.mu.Lock()
	c.verified[sum] = true
	c.mu.Unlock()
	return nil
}

// contentRangeStart parses the first byte of "bytes START-END/TOTAL".
func contentRangeStart(h string) (int64, bool) {
	rest, ok := strings.CutPrefix(h, "bytes ")
	if !ok {
		return 0, false
	}
	start, _, ok := strings.Cut(rest, "-")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(start, 10, 64)
	return n, err == nil
}

func hashFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func validSHA(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, r := range s {
		if !('0' <= r && r <= '9' || 'a' <= r && r <= 'f') {
			return false
		}
	}
	return true
}
