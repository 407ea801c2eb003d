package httpapi

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/cunxiang/cunxiang/api"
	"github.com/cunxiang/cunxiang/controller/internal/store"
	"github.com/cunxiang/cunxiang/playlists"
)

// doKey is do with an Idempotency-Key.
func (e *env) doKey(key, method, path, token string, body any) resp {
	e.t.Helper()
	j, err := json.Marshal(body)
	if err != nil {
		e.t.Fatal(err)
	}
	req := httptest.NewRequest(method, path, bytes.NewReader(j))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	return e.request(req)
}

func (e *env) countBroadcasts() int {
	e.t.Helper()
	bs, err := e.db.Broadcasts(context.Background(), 0)
	if err != nil {
		e.t.Fatal(err)
	}
	return len(bs)
}

// TestIdempotencyKeySendsOnce: pressing 确认发送 twice (the same key) makes
// one broadcast, and the second answer is the first, byte for byte.
func TestIdempotencyKeySendsOnce(t *testing.T) {
	e := newEnv(t)
	e.importVillages(villagesCSV)
	audio, pl := e.setupLibrary()
	body := e.bcast(audio[0].ID, nil)
	first := e.doKey("k-1", "POST", "/api/v1/broadcasts", e.staff, body)
	if first.Status != http.StatusCreated && first.Status != http.StatusAccepted {
		t.Fatalf("first: %d %s", first.Status, first.Body)
	}
	again := e.doKey("k-1", "POST", "/api/v1/broadcasts", e.staff, body)
	if again.Status != first.Status || !bytes.Equal(again.Body, first.Body) || again.Header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("repeat: %d %s\nfirst: %d %s", again.Status, again.Body, first.Status, first.Body)
	}
	if n := e.countBroadcasts(); n != 1 {
		t.Fatalf("%d broadcasts after the same key twice", n)
	}
	e.pub.mu.Lock()
	sent := len(e.pub.broadcasts)
	e.pub.mu.Unlock()
	if sent > 1 {
		t.Fatalf("sent to the boxes %d times", sent)
	}

	// Another key is another broadcast; no key is as before.
	e.must(first.Status, e.doKey("k-2", "POST", "/api/v1/broadcasts", e.staff, body), nil)
	e.must(first.Status, e.doKey("", "POST", "/api/v1/broadcasts", e.staff, body), nil)
	if n := e.countBroadcasts(); n != 3 {
		t.Fatalf("%d broadcasts, want 3", n)
	}

	// Schedules and playlists too.
	sched := map[string]any{"playlist_id": pl.ID, "targets": map[string]any{"all": true},
		"recurring": map[string]any{"times": []string{"07:30"}, "start_date": "2026-03-01"}}
	s1 := e.doKey("s-1", "POST", "/api/v1/schedules", e.staff, sched)
	s2 := e.doKey("s-1", "POST", "/api/v1/schedules", e.staff, sched)
	if s1.Status != http.StatusCreated || s2.Status != s1.Status || !bytes.Equal(s1.Body, s2.Body) {
		t.Fatalf("schedule: %d %s / %d %s", s1.Status, s1.Body, s2.Status, s2.Body)
	}
	if ss, _ := e.db.Schedules(context.Background(), true); len(ss) != 1 {
		t.Fatalf("%d schedules", len(ss))
	}
	plBody := map[string]any{"name": "晚间", "items": []map[string]any{{"audio_id": audio[0].ID, "repeat": 1}}}
	p1 := e.doKey("p-1", "POST", "/api/v1/playlists", e.staff, plBody)
	p2 := e.doKey("p-1", "POST", "/api/v1/playlists", e.staff, plBody)
	if p1.Status != http.StatusCreated || p2.Status != p1.Status || !bytes.Equal(p1.Body, p2.Body) {
		t.Fatalf("playlist: %d %s / %d %s", p1.Status, p1.Body, p2.Status, p2.Body)
	}
	if ps, _ := e.db.Playlists(context.Background()); len(ps) != 2 {
		t.Fatalf("%d playlists, want the library's and one", len(ps))
	}

	// A refusal is kept too: the same request gets the same 400.
	bad := e.bcast(audio[0].ID, func(m map[string]any) { m["audio_id"] = 999 })
	b1 := e.doKey("bad", "POST", "/api/v1/broadcasts", e.staff, bad)
	b2 := e.doKey("bad", "POST", "/api/v1/broadcasts", e.staff, bad)
	if b1.Status != http.StatusBadRequest || b2.Status != b1.Status || !bytes.Equal(b1.Body, b2.Body) {
		t.Fatalf("refusal: %d %s / %d %s", b1.Status, b1.Body, b2.Status, b2.Body)
	}
}

// TestIdempotencyKeyConcurrentRepeatsCreateOnce: eight identical requests
// with one key at once make one broadcast and all get its answer.
func TestIdempotencyKeyConcurrentRepeatsCreateOnce(t *testing.T) {
	e := newEnv(t)
	e.importVillages(villagesCSV)
	audio, _ := e.setupLibrary()
	body := e.bcast(audio[0].ID, nil)
	const n = 8
	out := make([]resp, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range out {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			out[i] = e.doKey("same", "POST", "/api/v1/broadcasts", e.staff, body)
		}()
	}
	close(start)
	wg.Wait()
	for i, r := range out {
		if r.Status != out[0].Status || !bytes.Equal(r.Body, out[0].Body) {
			t.Errorf("answer %d: %d %s, answer 0: %d %s", i, r.Status, r.Body, out[0].Status, out[0].Body)
		}
	}
	if out[0].Status >= 300 {
		t.Fatalf("status %d %s", out[0].Status, out[0].Body)
	}
	if c := e.countBroadcasts(); c != 1 {
		t.Fatalf("%d broadcasts from %d concurrent repeats", c, n)
	}
}

// TestIdempotencyKeyMisuse: the same key with another body is refused and
// creates nothing; keys are per person; a malformed key is refused; a key
// is forgotten after a day.
func TestIdempotencyKeyMisuse(t *testing.T) {
	e := newEnv(t)
	e.importVillages(villagesCSV)
	audio, _ := e.setupLibrary()
	body := e.bcast(audio[0].ID, nil)
	first := e.doKey("k", "POST", "/api/v1/broadcasts", e.staff, body)
	if first.Status >= 300 {
		t.Fatalf("%d %s", first.Status, first.Body)
	}
	other := e.bcast(audio[0].ID, func(m map[string]any) { m["severity"] = 2 })
	r := e.doKey("k", "POST", "/api/v1/broadcasts", e.staff, other)
	if r.Status != http.StatusConflict || r.errBody(t).Error.Code != "conflict" {
		t.Fatalf("another body, same key: %d %s", r.Status, r.Body)
	}
	// The same key on another route is another request too.
	r = e.doKey("k", "POST", "/api/v1/schedules", e.staff, body)
	if r.Status != http.StatusConflict {
		t.Fatalf("same key, other route: %d %s", r.Status, r.Body)
	}
	if n := e.countBroadcasts(); n != 1 {
		t.Fatalf("%d broadcasts", n)
	}

	// Another person with the same key is a new request.
	other2 := e.user("wang", api.RoleOperator, "")
	r = e.doKey("k", "POST", "/api/v1/broadcasts", other2, body)
	if r.Status >= 300 || bytes.Equal(r.Body, first.Body) {
		t.Fatalf("another person's key: %d %s", r.Status, r.Body)
	}
	if n := e.countBroadcasts(); n != 2 {
		t.Fatalf("%d broadcasts, want 2", n)
	}

	for _, k := range []string{string(make([]byte, 256)), "村", "a\tb"} {
		if r := e.doKey(k, "POST", "/api/v1/broadcasts", e.staff, body); r.Status != http.StatusBadRequest {
			t.Errorf("key %q: %d %s", k, r.Status, r.Body)
		}
	}
	if n := e.countBroadcasts(); n != 2 {
		t.Fatalf("%d broadcasts after malformed keys", n)
	}

	// A day later the key is free again.
	e.clk.Advance(store.IdempotencyTTL + time.Minute)
	body["expires_at"] = e.in(time.Hour)
	r = e.doKey("k", "POST", "/api/v1/broadcasts", e.staff, body)
	if r.Status >= 300 || r.Header.Get("Idempotent-Replayed") != "" {
		t.Fatalf("a day later: %d %s", r.Status, r.Body)
	}
	if n := e.countBroadcasts(); n != 3 {
		t.Fatalf("%d broadcasts, want 3", n)
	}
}

// TestIdempotencyKeyAfterAFault: a broadcast stored but not yet on the
// broker answers 500; the same key again must not make a second one, and
// answers with the one made. After the process that claimed a key died, a
// repeat answers with what it made, or, if it made nothing, is carried out.
func TestIdempotencyKeyAfterAFault(t *testing.T) {
	e := newEnv(t)
	e.importVillages(villagesCSV)
	audio, _ := e.setupLibrary()
	body := e.bcast(audio[0].ID, nil)
	e.pub.fail = errors.New("broker down")
	first := e.doKey("f-1", "POST", "/api/v1/broadcasts", e.staff, body)
	if first.Status != http.StatusInternalServerError {
		t.Fatalf("first: %d %s", first.Status, first.Body)
	}
	again := e.doKey("f-1", "POST", "/api/v1/broadcasts", e.staff, body)
	e.pub.fail = nil
	var b api.Broadcast
	if again.Status != http.StatusAccepted || json.Unmarshal(again.Body, &b) != nil || b.ID == 0 || b.SendError == "" {
		t.Fatalf("repeat after a 500: %d %s", again.Status, again.Body)
	}
	if n := e.countBroadcasts(); n != 1 {
		t.Fatalf("%d broadcasts after a fault and a repeat with the same key, want 1", n)
	}

	// A process that claimed two keys dies: under one its broadcast was
	// stored, under the other nothing yet.
	ctx := context.Background()
	staff, err := e.db.Authenticate(ctx, e.staff)
	if err != nil {
		t.Fatal(err)
	}
	person := staff.Principal()
	dead, err := store.Open(ctx, filepath.Join(e.dataDir, "cx.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer dead.Close()
	dead.Now = e.clk.Now
	hash := func(b map[string]any) string {
		j, _ := json.Marshal(b)
		sum := sha256.New()
		io.WriteString(sum, "POST /api/v1/broadcasts\n")
		sum.Write(j)
		return hex.EncodeToString(sum.Sum(nil))
	}
	for _, k := range []string{"made", "lost"} {
		if _, claimed, err := dead.ClaimIdempotencyKey(ctx, person, k, hash(body)); err != nil || !claimed {
			t.Fatal(claimed, err)
		}
	}
	made, err := dead.CreateBroadcast(store.WithIdempotencyKey(ctx, person, "made"), store.Broadcast{AudioID: audio[0].ID,
		Targets: playlists.Targets{Townships: []string{"东镇"}}, Priority: playlists.Routine, Severity: 4,
		ExpiresAt: e.clk.Now().Add(time.Hour), CreatedBy: "clerk", CreatedByKey: person}, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := e.doKey("made", "POST", "/api/v1/broadcasts", e.staff, body)
	if got.Status != http.StatusAccepted || json.Unmarshal(got.Body, &b) != nil || b.ID != made.ID {
		t.Fatalf("repeat of a dead process's stored broadcast %d: %d %s", made.ID, got.Status, got.Body)
	}
	got = e.doKey("lost", "POST", "/api/v1/broadcasts", e.staff, body)
	if got.Status != http.StatusAccepted || json.Unmarshal(got.Body, &b) != nil || b.ID <= made.ID || got.Header.Get("Idempotent-Replayed") != "" {
		t.Fatalf("repeat of a dead process's request that made nothing: %d %s", got.Status, got.Body)
	}
	if again := e.doKey("lost", "POST", "/api/v1/broadcasts", e.staff, body); again.Status != got.Status || !bytes.Equal(again.Body, got.Body) {
		t.Fatalf("the key taken over does not answer its repeat: %d %s", again.Status, again.Body)
	}
	if n := e.countBroadcasts(); n != 3 {
		t.Fatalf("%d broadcasts, want 3 (one per key)", n)
	}
}
