package httpapi

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cunxiang/cunxiang/api"
	"github.com/cunxiang/cunxiang/controller/internal/store"
	"github.com/cunxiang/cunxiang/playlists"
)

var _ Store = (*store.DB)(nil)

// t0 is "now" at the start of every test: 2026-03-01 08:00 in Shanghai.
var t0 = time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type published struct {
	Schedule playlists.Schedule
	Playlist playlists.Playlist
	Groups   []api.Group
}

type withdrawal struct {
	ID     int64
	Groups []api.Group
}

// fakePublisher records what the API asked to deliver.
type fakePublisher struct {
	db         *store.DB
	mu         sync.Mutex
	published  []published
	withdrawn  []withdrawal
	broadcasts []sentBroadcast
	cancelled  []withdrawal
	configs    []sentConfig
	fail       error
}

type sentBroadcast struct {
	B      api.BroadcastState
	Groups []api.Group
}

type sentConfig struct {
	Group  api.Group
	Config api.BoxConfig
}

// Deliver drains the store's outbox as the real publisher would, recording
// what each entry would put on the broker; with fail set it records the
// failure and leaves the entries in the outbox.
func (p *fakePublisher) Deliver(ctx context.Context, kind, ref string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	entries, err := p.db.UnsentOutbox(ctx, 1000)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if p.fail != nil {
			p.db.OutboxFailed(ctx, e, p.fail.Error(), "delivery to the broker failed")
			return p.fail
		}
		if err := p.record(ctx, e); err != nil {
			return err
		}
		if err := p.db.OutboxSent(ctx, e); err != nil {
			return err
		}
	}
	return nil
}

func (p *fakePublisher) record(ctx context.Context, e store.OutboxEntry) error {
	if e.Kind == store.OutboxConfig {
		scope, name, _ := strings.Cut(e.Ref, "/")
		bc, err := p.db.GetBoxConfig(ctx, scope, name)
		if err != nil {
			return err
		}
		for _, g := range bc.Groups {
			p.configs = append(p.configs, sentConfig{g, bc.Config})
		}
		return nil
	}
	id, err := strconv.ParseInt(e.Ref, 10, 64)
	if err != nil {
		return err
	}
	switch e.Kind {
	case store.OutboxBroadcast, store.OutboxCancel:
		b, err := p.db.GetBroadcast(ctx, id)
		if err != nil {
			return err
		}
		if e.Kind == store.OutboxCancel {
			p.cancelled = append(p.cancelled, withdrawal{id, b.Groups})
			return nil
		}
		w := b.Wire()
		if err := (api.Command{V: api.Version, ID: "x", Kind: api.KindBroadcastPut, Target: b.Groups[0], Seq: 1, IssuedAt: w.IssuedAt, ExpiresAt: w.ExpiresAt, Broadcast: &w}).Check(); err != nil {
			return fmt.Errorf("the API sent a broadcast boxes would refuse: %w", err)
		}
		p.broadcasts = append(p.broadcasts, sentBroadcast{w, b.Groups})
	case store.OutboxSchedule, store.OutboxWithdraw:
		sc, err := p.db.GetSchedule(ctx, id)
		if err != nil {
			return err
		}
		if e.Kind == store.OutboxWithdraw {
			p.withdrawn = append(p.withdrawn, withdrawal{id, sc.Groups})
			return nil
		}
		pl, err := p.db.GetPlaylist(ctx, sc.PlaylistID)
		if err != nil {
			return err
		}
		p.published = append(p.published, published{sc.Schedule, pl.Playlist, sc.Groups})
	default:
		return fmt.Errorf("unknown outbox kind %q", e.Kind)
	}
	return nil
}

type env struct {
	t       *testing.T
	db      *store.DB
	pub     *fakePublisher
	srv     *Server
	h       http.Handler
	clk     *clock
	dataDir string
	admin   string // admin token
	staff   string // operator token ("clerk")
	key     ed25519.PublicKey
}

type envOpt func(*Options)

func newEnv(t *testing.T, opts ...envOpt) *env {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	db, err := store.Open(ctx, filepath.Join(dir, "cx.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	clk := &clock{t: t0}
	db.Now = clk.Now
	admin, _, err := db.EnsureAdminToken(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_, staff, err := db.CreateToken(ctx, "clerk", api.RoleOperator, "", store.Token{})
	if err != nil {
		t.Fatal(err)
	}
	pub, _, _ := ed25519.GenerateKey(nil)
	fp := &fakePublisher{db: db}
	o := Options{
		Store: db, Publisher: fp, DataDir: dir, PublicURL: "http://controller.test",
		BrokerURL: "tcp://broker.test:1883", TopicPrefix: "cx/test", SigningPublicKey: pub, Now: clk.Now,
	}
	for _, f := range opts {
		f(&o)
	}
	s, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return &env{t: t, db: db, pub: fp, srv: s, h: s.Handler(), clk: clk, dataDir: dir, admin: admin, staff: staff, key: pub}
}

// resp is a recorded answer.
type resp struct {
	Status int
	Header http.Header
	Body   []byte
}

func (r resp) decode(tb testing.TB, v any) {
	tb.Helper()
	if err := json.Unmarshal(r.Body, v); err != nil {
		tb.Fatalf("decode %s: %v", r.Body, err)
	}
}

func (r resp) errBody(tb testing.TB) api.ErrorBody {
	tb.Helper()
	var b api.ErrorBody
	r.decode(tb, &b)
	if b.Error.Code == "" || b.Error.Message == "" {
		tb.Fatalf("not an error body: %s", r.Body)
	}
	return b
}

// request serves req, from 192.0.2.7 unless the test set another address
// (httptest's own default is 192.0.2.1:1234).
func (e *env) request(req *http.Request) resp {
	if req.RemoteAddr == "192.0.2.1:1234" {
		req.RemoteAddr = "192.0.2.7:4321"
	}
	e.t.Helper()
	reqBody := readBody(e.t, req)
	w := httptest.NewRecorder()
	e.h.ServeHTTP(w, req)
	checkContract(e.t, req, reqBody, w.Code, w.Header(), w.Body.Bytes())
	return resp{Status: w.Code, Header: w.Header(), Body: w.Body.Bytes()}
}

// do sends body (JSON-encoded unless it is []byte or an io.Reader) with a
// bearer token, if one is given.
func (e *env) do(method, path, token string, body any) resp {
	e.t.Helper()
	return e.doFrom("192.0.2.7:4321", method, path, token, body)
}

// doFrom is do from the client address addr (host:port).
func (e *env) doFrom(addr, method, path, token string, body any) resp {
	e.t.Helper()
	var r io.Reader
	ctype := ""
	switch b := body.(type) {
	case nil:
	case []byte:
		r, ctype = bytes.NewReader(b), "text/csv"
	case string:
		r, ctype = strings.NewReader(b), "application/json"
	case io.Reader:
		r = b
	default:
		j, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		r, ctype = bytes.NewReader(j), "application/json"
	}
	req := httptest.NewRequest(method, path, r)
	req.RemoteAddr = addr
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return e.request(req)
}

// must checks the status and decodes the answer into out.
func (e *env) must(status int, r resp, out any) {
	e.t.Helper()
	if r.Status != status {
		e.t.Fatalf("status %d, want %d: %s", r.Status, status, r.Body)
	}
	if out != nil {
		r.decode(e.t, out)
	}
}

const villagesCSV = "code,name,township,lat,lon,device\n" +
	"110101001001,东村,东镇,39.9,116.4,agent\n" +
	"110101001002,西村,东镇,39.9,116.4,agent\n" +
	"110101002001,南村,南镇,39.8,116.3,agent\n" +
	"110101002002,北村,南镇,39.8,116.3,manual\n" +
	"110101003001,新村,新镇,39.7,116.2,agent\n"

func (e *env) importVillages(csv string) {
	e.t.Helper()
	e.must(http.StatusOK, e.do("POST", "/api/v1/villages/import", e.admin, []byte(csv)), nil)
}

func (e *env) enrollBox(village string) api.EnrollResponse {
	e.t.Helper()
	var tok api.EnrollToken
	e.must(http.StatusCreated, e.do("POST", "/api/v1/villages/"+village+"/enroll", e.admin, nil), &tok)
	var out api.EnrollResponse
	e.must(http.StatusOK, e.do("POST", "/api/v1/enroll", "", api.EnrollRequest{Village: village, Token: tok.Token, AgentVersion: "0.1"}), &out)
	return out
}

// upload posts a multipart audio upload.
func (e *env) upload(token, filename, title string, data []byte) resp {
	e.t.Helper()
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	if title != "" {
		w.WriteField("title", title)
	}
	fw, _ := w.CreateFormFile("file", filename)
	fw.Write(data)
	w.Close()
	req := httptest.NewRequest("POST", "/api/v1/audio", &buf)
	req.Header.Set("Content-Type", w.FormDataContentType())
	req.Header.Set("Authorization", "Bearer "+token)
	return e.request(req)
}

// audioDir lists the files of the audio library.
func (e *env) audioDir() []string {
	e.t.Helper()
	ents, err := os.ReadDir(filepath.Join(e.dataDir, "audio"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		e.t.Fatal(err)
	}
	var out []string
	for _, x := range ents {
		out = append(out, x.Name())
	}
	sort.Strings(out)
	return out
}

// token makes an API token of a role (village: of that village).
func (e *env) token(name, role, village string) string {
	e.t.Helper()
	_, secret, err := e.db.CreateToken(context.Background(), name, role, village, store.Token{})
	if err != nil {
		e.t.Fatal(err)
	}
	return secret
}

// user creates a user and logs them in, returning their session token.
func (e *env) user(username, role, village string) string {
	e.t.Helper()
	e.must(http.StatusCreated, e.do("POST", "/api/v1/users", e.admin, map[string]string{
		"username": username, "role": role, "village": village, "password": "secret password " + username,
	}), nil)
	var l api.Login
	e.must(http.StatusOK, e.do("POST", "/api/v1/login", "", map[string]string{"username": username, "password": "secret password " + username}), &l)
	return l.Token
}

// auditLog returns the audit entries a filter query selects, newest first,
// as "actor action object".
func (e *env) auditLog(query string) []string {
	e.t.Helper()
	var log struct{ Entries []api.AuditEntry }
	e.must(http.StatusOK, e.do("GET", "/api/v1/audit"+query, e.admin, nil), &log)
	var out []string
	for _, a := range log.Entries {
		out = append(out, a.Actor+" "+a.Action+" "+a.Object)
	}
	return out
}
