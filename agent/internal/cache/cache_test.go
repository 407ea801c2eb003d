package cache

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cunxiang/cunxiang/playlists"
	"github.com/go-audio/audio"
	"github.com/go-audio/wav"
)

// clip returns a WAV file in the playback format and its samples.
func clip(tb testing.TB, n int) ([]byte, []int16) {
	tb.Helper()
	pcm := make([]int16, n)
	data := make([]int, n)
	for i := range pcm {
		pcm[i] = int16((i*7919)%65536 - 32768)
		data[i] = int(pcm[i])
	}
	path := filepath.Join(tb.TempDir(), "c.wav")
	f, err := os.Create(path)
	if err != nil {
		tb.Fatal(err)
	}
	enc := wav.NewEncoder(f, playlists.SampleRate, 16, 1, 1)
	if err := enc.Write(&audio.IntBuffer{Format: &audio.Format{NumChannels: 1, SampleRate: playlists.SampleRate}, Data: data, SourceBitDepth: 16}); err != nil {
		tb.Fatal(err)
	}
	if err := enc.Close(); err != nil {
		tb.Fatal(err)
	}
	f.Close()
	raw, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	return raw, pcm
}

func sum(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

// server serves content as audio 9. The first `cuts` requests are cut
// after half the bytes; it records every request's Range header.
type server struct {
	content []byte
	cuts    int
	mu      sync.Mutex
	ranges  []string
}

func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if u, p, ok := r.BasicAuth(); !ok || u != "box" || p != "secret" {
		http.Error(w, "no", http.StatusUnauthorized)
		return
	}
	if r.URL.Path != "/api/v1/audio/9/content" {
		http.NotFound(w, r)
		return
	}
	s.mu.Lock()
	s.ranges = append(s.ranges, r.Header.Get("Range"))
	cut := s.cuts > 0
	s.cuts--
	s.mu.Unlock()
	if cut {
		// Promise everything, send half, then drop the connection.
		w.Header().Set("Content-Length", strconv.Itoa(len(s.content)))
		w.WriteHeader(http.StatusOK)
		w.Write(s.content[:len(s.content)/2])
		w.(http.Flusher).Flush()
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			conn.Close()
		}
		return
	}
	http.ServeContent(w, r, "c.wav", time.Unix(0, 0), bytes.NewReader(s.content))
}

func newCache(tb testing.TB, dir, url string) *Cache {
	tb.Helper()
	c, err := New(Options{Dir: dir, Controller: url, Username: "box", Password: "secret", MinBackoff: time.Millisecond, MaxBackoff: 10 * time.Millisecond})
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

func TestDownloadResumesAfterCutWithRange(t *testing.T) {
	content, pcm := clip(t, 50000)
	srv := &server{content: content, cuts: 1}
	hs := httptest.NewServer(srv)
	defer hs.Close()
	dir := t.TempDir()
	c := newCache(t, dir, hs.URL)
	want := sum(content)

	err := c.Download(t.Context(), 9, want)
	if err == nil {
		t.Fatal("first download should have been cut")
	}
	part, err := os.ReadFile(filepath.Join(dir, want+".part"))
	if err != nil || len(part) != len(content)/2 {
		t.Fatalf("part has %d bytes (%v), want %d", len(part), err, len(content)/2)
	}
	if _, err := c.Load(want); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a partial clip loaded: %v", err)
	}

	if err := c.Fetch(t.Context(), 9, want, nil); err != nil {
		t.Fatal(err)
	}
	if got := srv.ranges; len(got) != 2 || got[0] != "" || got[1] != "bytes="+strconv.Itoa(len(content)/2)+"-" {
		t.Fatalf("Range headers %q", got)
	}
	if _, err := os.Stat(filepath.Join(dir, want+".part")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("part left behind: %v", err)
	}
	got, err := c.Load(want)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(pcm) {
		t.Fatalf("%d samples, want %d", len(got), len(pcm))
	}
	for i := range pcm {
		if got[i] != pcm[i] {
			t.Fatalf("sample %d = %d, want %d", i, got[i], pcm[i])
		}
	}
}

func TestResumeAnsweredWith200StartsOver(t *testing.T) {
	content, _ := clip(t, 2000)
	want := sum(content)
	dir := t.TempDir()
	// A stale part from an older attempt, of other bytes.
	if err := os.WriteFile(filepath.Join(dir, want+".part"), []byte("stale bytes"), 0o644); err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write(content) // ignores Range: 200 with everything
	}))
	defer hs.Close()
	c := newCache(t, dir, hs.URL)
	if err := c.Download(t.Context(), 9, want); err != nil {
		t.Fatal(err)
	}
	if !c.Has(want) {
		t.Fatal("not cached")
	}
}

func TestMismatchIsDeletedRetriedAndNeverLoaded(t *testing.T) {
	content, _ := clip(t, 2000)
	other, _ := clip(t, 2001)
	hs := httptest.NewServer(&server{content: other})
	defer hs.Close()
	dir := t.TempDir()
	c := newCache(t, dir, hs.URL)
	want := sum(content)

	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	var attempts []error
	err := c.Fetch(ctx, 9, want, func(n int, err error) {
		attempts = append(attempts, err)
		if n == 3 {
			cancel()
		}
	})
	if err == nil {
		t.Fatal("fetch of mismatching content succeeded")
	}
	if len(attempts) < 3 || !errors.Is(attempts[0], ErrMismatch) {
		t.Fatalf("attempts %v", attempts)
	}
	for _, name := range []string{want + ".part", want + ".wav"} {
		if _, err := os.Stat(filepath.Join(dir, name)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s exists after mismatch", name)
		}
	}
	if _, err := c.Load(want); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("load after mismatch: %v", err)
	}
}

func TestCorruptedClipsAreDroppedAtOpenAndLoad(t *testing.T) {
	content, _ := clip(t, 2000)
	want := sum(content)
	dir := t.TempDir()
	path := filepath.Join(dir, want+".wav")
	bad := append([]byte(nil), content...)
	bad[len(bad)-1] ^= 0xFF
	if err := os.WriteFile(path, bad, 0o644); err != nil {
		t.Fatal(err)
	}
	c := newCache(t, dir, "http://127.0.0.1:9")
	if c.Has(want) {
		t.Fatal("corrupt clip accepted at open")
	}
	if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Fatal("corrupt clip kept")
	}

	// Good at open, changed on disk afterwards: refused at load.
	if err := os.WriteFile(path, content, 0o644); err != nil {
		t.Fatal(err)
	}
	c = newCache(t, dir, "http://127.0.0.1:9")
	if !c.Has(want) {
		t.Fatal("good clip not found at open")
	}
	if err := os.WriteFile(path, bad, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Load(want); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("load of changed clip: %v", err)
	}
}

func TestDecodeRefusesOtherFormats(t *testing.T) {
	var buf bytes.Buffer
	path := filepath.Join(t.TempDir(), "s.wav")
	f, _ := os.Create(path)
	enc := wav.NewEncoder(f, 44100, 16, 2, 1)
	enc.Write(&audio.IntBuffer{Format: &audio.Format{NumChannels: 2, SampleRate: 44100}, Data: []int{1, 2, 3, 4}, SourceBitDepth: 16})
	enc.Close()
	f.Close()
	raw, _ := os.ReadFile(path)
	buf.Write(raw)
	if _, err := Decode(buf.Bytes()); err == nil || !strings.Contains(err.Error(), "44100") {
		t.Fatalf("err = %v", err)
	}
	if _, err := Decode([]byte("RIFF junk")); err == nil {
		t.Fatal("junk decoded")
	}
}

func FuzzDecode(f *testing.F) {
	content, _ := clip(f, 100)
	f.Add(content)
	f.Add([]byte("RIFF\x00\x00\x00\x00WAVEfmt "))
	f.Fuzz(func(t *testing.T, data []byte) {
		Decode(data) // must not panic
	})
}

// TestPruneDeletesOldClipsNothingNeeds: an old clip nothing needs goes (and
// an old unfinished download); an old clip still needed, and a recent one,
// stay.
func TestPruneDeletesOldClipsNothingNeeds(t *testing.T) {
	dir := t.TempDir()
	old := time.Now().Add(-8 * 24 * time.Hour)
	var sums []string
	for i := range 3 {
		b, _ := clip(t, 100+i)
		s := sum(b)
		if err := os.WriteFile(filepath.Join(dir, s+".wav"), b, 0o644); err != nil {
			t.Fatal(err)
		}
		sums = append(sums, s)
	}
	unneeded, needed, recent := sums[0], sums[1], sums[2]
	part := strings.Repeat("ab", 32)
	if err := os.WriteFile(filepath.Join(dir, part+".part"), []byte("half"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{unneeded + ".wav", needed + ".wav", part + ".part"} {
		if err := os.Chtimes(filepath.Join(dir, name), old, old); err != nil {
			t.Fatal(err)
		}
	}
	c := newCache(t, dir, "http://unused.test")
	n, err := c.Prune(map[string]bool{needed: true}, time.Now().Add(-7*24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Errorf("deleted %d files, want 2 (the unneeded clip and the stale part)", n)
	}
	if c.Has(unneeded) {
		t.Error("an old clip nothing needs is still cached")
	}
	if !c.Has(needed) || !c.Has(recent) {
		t.Errorf("kept needed=%v recent=%v, want both", c.Has(needed), c.Has(recent))
	}
	if _, err := os.Stat(filepath.Join(dir, part+".part")); !os.IsNotExist(err) {
		t.Errorf("the stale part is still there: %v", err)
	}
}
