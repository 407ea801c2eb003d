package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"log/slog"
	"mime/multipart"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cunxiang/cunxiang/api"
	"github.com/cunxiang/cunxiang/api/client"
	"github.com/cunxiang/cunxiang/controller/internal/csvout"
	"github.com/cunxiang/cunxiang/playlists"
)

// Attacks on the controller's HTTP server: memory, slow or broken bodies,
// oversized headers and bodies, CSRF on logout, formulas in the CSV
// exports, and names that break screens. Each runs against a controller
// started in-process and talks to it over a real socket.

// longWAV is a canonical 22050 Hz mono 16-bit WAV of about size bytes: the
// demo announcement's opening, over and over.
func longWAV(tb testing.TB, size int) []byte {
	tb.Helper()
	clip := shortClip(tb)[44:]
	n := (size - 44) / len(clip) * len(clip)
	out := make([]byte, 44, 44+n)
	copy(out, shortClip(tb)[:44])
	for len(out) < 44+n {
		out = append(out, clip...)
	}
	putLE32(out[4:], uint32(len(out)-8))
	putLE32(out[40:], uint32(n))
	return out
}

// multipartUpload is the body and content type of an upload of data.
func multipartUpload(tb testing.TB, title string, data []byte) ([]byte, string) {
	tb.Helper()
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	_ = w.WriteField("title", title)
	fw, err := w.CreateFormFile("file", "long.wav")
	if err != nil {
		tb.Fatal(err)
	}
	fw.Write(data)
	w.Close()
	return buf.Bytes(), w.FormDataContentType()
}

// procStatus reads a field of /proc/self/status, in bytes.
func procStatus(tb testing.TB, field string) int64 {
	tb.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		tb.Skipf("no /proc/self/status here: %v", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				tb.Fatalf("%s: %q", field, line)
			}
			return kb << 10
		}
	}
	tb.Fatalf("no %s in /proc/self/status", field)
	return 0
}

// TestAttackConcurrentLargeUploads sends 12 uploads of 40 MB at once. The
// controller must hold its memory (each upload is spooled to disk and
// decoded from there, and only a few are processed at a time); the
// uploads over the limit are told to come back later (503, Retry-After).
func TestAttackConcurrentLargeUploads(t *testing.T) {
	if testing.Short() {
		t.Skip("sends 480 MB")
	}
	h := startController(t, harnessOptions{})
	const n, size = 12, 40 << 20
	body, ctype := multipartUpload(t, "长录音", longWAV(t, size))

	// The peak resident size of this process (the controller and the
	// test) is measured from here: write 5 to clear_refs resets it.
	runtime.GC()
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		t.Skipf("cannot reset the peak RSS: %v", err)
	}
	before := procStatus(t, "VmRSS")

	type result struct {
		status     int
		retryAfter string
		body       string
		err        error
	}
	results := make([]result, n)
	var wg sync.WaitGroup
	hc := &http.Client{Timeout: 3 * time.Minute}
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, err := http.NewRequest("POST", h.HTTPURL+"/api/v1/audio", bytes.NewReader(body))
			if err != nil {
				results[i].err = err
				return
			}
			req.Header.Set("Content-Type", ctype)
			req.Header.Set("Authorization", "Bearer "+h.AdminToken)
			resp, err := hc.Do(req)
			if err != nil {
				results[i].err = err
				return
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			results[i] = result{status: resp.StatusCode, retryAfter: resp.Header.Get("Retry-After"), body: string(b)}
		}()
	}
	wg.Wait()
	peak := procStatus(t, "VmHWM")
	growth := peak - before
	t.Logf("%d concurrent uploads of %d MB: RSS %d MB before, peak %d MB, growth %d MB", n, size>>20, before>>20, peak>>20, growth>>20)

	var stored, busy int
	for i, r := range results {
		switch {
		case r.err != nil:
			t.Errorf("upload %d: %v", i, r.err)
		case r.status == http.StatusCreated || r.status == http.StatusOK:
			stored++
		case r.status == http.StatusServiceUnavailable:
			busy++
			if r.retryAfter == "" {
				t.Errorf("upload %d: 503 without Retry-After: %s", i, r.body)
			}
		default:
			t.Errorf("upload %d: %d %s", i, r.status, r.body)
		}
	}
	if stored == 0 || busy == 0 {
		t.Errorf("%d stored, %d told to retry; want some of each (a bound on concurrent uploads)", stored, busy)
	}
	if growth > 300<<20 {
		t.Errorf("RSS grew by %d MB under %d concurrent %d MB uploads; want under 300 MB", growth>>20, n, size>>20)
	}
	// The ones told to wait get through afterwards.
	if _, err := h.Client.UploadAudio(context.Background(), "long.wav", "长录音", longWAV(t, 1<<20)); err != nil {
		t.Errorf("an upload after the burst: %v", err)
	}
}

// logRecords is a slog handler that keeps every record, for tests that
// look at what the controller logged.
type logRecords struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (l *logRecords) Enabled(context.Context, slog.Level) bool { return true }
func (l *logRecords) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.recs = append(l.recs, r.Clone())
	return nil
}
func (l *logRecords) WithAttrs(as []slog.Attr) slog.Handler {
	return &withAttrs{l, as}
}
func (l *logRecords) WithGroup(string) slog.Handler { return l }

type withAttrs struct {
	*logRecords
	as []slog.Attr
}

func (w *withAttrs) Handle(ctx context.Context, r slog.Record) error {
	r = r.Clone()
	r.AddAttrs(w.as...)
	return w.logRecords.Handle(ctx, r)
}
func (w *withAttrs) WithAttrs(as []slog.Attr) slog.Handler {
	return &withAttrs{w.logRecords, append(append([]slog.Attr(nil), w.as...), as...)}
}

// find returns the first record matching ok.
func (l *logRecords) find(ok func(r slog.Record, attrs map[string]string) bool) (slog.Record, map[string]string, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, r := range l.recs {
		attrs := map[string]string{}
		r.Attrs(func(a slog.Attr) bool { attrs[a.Key] = a.Value.String(); return true })
		if ok(r, attrs) {
			return r, attrs, true
		}
	}
	return slog.Record{}, nil, false
}

// TestAttackAbortedUploadIsNot500 breaks off an upload halfway. That is the
// client's doing, not a fault of the server: it is logged at INFO as
// aborted, never answered 500 and logged at ERROR.
func TestAttackAbortedUploadIsNot500(t *testing.T) {
	logs := &logRecords{}
	h := startController(t, harnessOptions{Logger: slog.New(logs)})
	body, ctype := multipartUpload(t, "断开", longWAV(t, 4<<20))

	u, _ := url.Parse(h.HTTPURL)
	conn, err := net.Dial("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(conn, "POST /api/v1/audio HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n",
		u.Host, h.AdminToken, ctype, len(body))
	if _, err := conn.Write(body[:len(body)/2]); err != nil {
		t.Fatal(err)
	}
	conn.Close()

	var rec slog.Record
	var attrs map[string]string
	waitFor(t, 10*time.Second, "the aborted upload's request to be logged", func() bool {
		var ok bool
		rec, attrs, ok = logs.find(func(r slog.Record, a map[string]string) bool {
			return r.Message == "http" && a["path"] == "/api/v1/audio"
		})
		return ok
	})
	if rec.Level != slog.LevelInfo || attrs["status"] == "500" {
		t.Errorf("the aborted upload was logged at %s with status %s (%s)", rec.Level, attrs["status"], attrs["err"])
	}
	if _, _, ok := logs.find(func(r slog.Record, _ map[string]string) bool {
		return strings.Contains(r.Message, "aborted") && r.Level == slog.LevelInfo
	}); !ok {
		t.Error("nothing was logged as aborted")
	}
	if _, a, ok := logs.find(func(r slog.Record, _ map[string]string) bool { return r.Level >= slog.LevelError }); ok {
		t.Errorf("an error was logged: %v", a)
	}
	// Nothing was stored, and no spooled file is left behind.
	list, err := h.Client.AudioList(context.Background())
	if err != nil || len(list) != 0 {
		t.Errorf("audio list after the aborted upload: %v %v", list, err)
	}
}

// rawRequest sends req (a whole HTTP/1.1 request) on a new connection and
// returns the status code of the answer, or 0 if the connection was
// dropped without one.
func rawRequest(tb testing.TB, hostport string, req []byte, wait time.Duration) int {
	tb.Helper()
	conn, err := net.Dial("tcp", hostport)
	if err != nil {
		tb.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(wait))
	go conn.Write(req) //nolint:errcheck // the server may hang up before reading it all
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestAttackHugeHeaders sends a request with 200 KB of headers: refused
// (431) before it reaches a handler.
func TestAttackHugeHeaders(t *testing.T) {
	h := startController(t, harnessOptions{})
	u, _ := url.Parse(h.HTTPURL)
	req := fmt.Sprintf("GET /api/v1/me HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nX-Pad: %s\r\n\r\n", u.Host, h.AdminToken, strings.Repeat("a", 200<<10))
	if st := rawRequest(t, u.Host, []byte(req), 10*time.Second); st != http.StatusRequestHeaderFieldsTooLarge && st != 0 {
		t.Errorf("200 KB of headers answered %d; want 431", st)
	}
	// An ordinary request still works.
	if _, err := h.Client.AudioList(context.Background()); err != nil {
		t.Error(err)
	}
}

// TestAttackOversizedJSONBody declares and sends bodies far over what the
// routes take: refused at once from the declared length, without reading
// (or waiting for) the body; and a 20 MB login form is not parsed into
// memory.
func TestAttackOversizedJSONBody(t *testing.T) {
	h := startController(t, harnessOptions{})
	u, _ := url.Parse(h.HTTPURL)

	// Only the header is sent: a server that waited for the 100 MB body
	// would never answer.
	head := fmt.Sprintf("POST /api/v1/broadcasts HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n{\"x\":\"",
		u.Host, h.AdminToken, 100<<20)
	if st := rawRequest(t, u.Host, []byte(head), 10*time.Second); st != http.StatusRequestEntityTooLarge {
		t.Errorf("a declared 100 MB JSON body answered %d; want 413 at once", st)
	}

	// A 20 MB multipart login form.
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	_ = w.WriteField("username", "admin")
	_ = w.WriteField("password", strings.Repeat("x", 20<<20))
	w.Close()
	req, _ := http.NewRequest("POST", h.HTTPURL+"/console/login", &buf)
	req.Header.Set("Content-Type", w.FormDataContentType())
	hc := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("a 20 MB login form answered %d; want 413", resp.StatusCode)
	}
}

// consoleLogin logs in through the console's form and returns a client
// that carries its cookies, and the CSRF cookie's value.
func consoleLogin(tb testing.TB, h *controllerHarness, user, pass string) (*http.Client, string) {
	tb.Helper()
	jar, _ := cookiejar.New(nil)
	hc := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := hc.PostForm(h.HTTPURL+"/console/login", url.Values{"username": {user}, "password": {pass}})
	if err != nil {
		tb.Fatal(err)
	}
	resp.Body.Close()
	u, _ := url.Parse(h.HTTPURL)
	for _, c := range jar.Cookies(u) {
		if c.Name == "cx_csrf" {
			return hc, c.Value
		}
	}
	tb.Fatalf("console login gave no CSRF cookie (status %d, %s)", resp.StatusCode, resp.Header.Get("Location"))
	return nil, ""
}

// TestAttackLogoutWithoutCSRFHeader posts the console's logout from another
// site's form: the session cookie rides along, the page can set any form
// field but not the X-CSRF-Token header. The session must survive.
func TestAttackLogoutWithoutCSRFHeader(t *testing.T) {
	h := startController(t, harnessOptions{})
	ctx := context.Background()
	if _, err := h.Client.CreateUser(ctx, api.UserRequest{Username: "clerk", DisplayName: "clerk", Role: "operator", Village: "", Password: "correct horse battery"}); err != nil {
		t.Fatal(err)
	}
	hc, csrfValue := consoleLogin(t, h, "clerk", "correct horse battery")
	me := func() int {
		resp, err := hc.Get(h.HTTPURL + "/api/v1/me")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if st := me(); st != http.StatusOK {
		t.Fatalf("logged in, /me answers %d", st)
	}
	for _, field := range []string{"x", csrfValue} {
		resp, err := hc.PostForm(h.HTTPURL+"/console/logout", url.Values{"csrf": {field}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("logout with the form field csrf=%q and no header answered %d; want 403", field, resp.StatusCode)
		}
	}
	if st := me(); st != http.StatusOK {
		t.Fatalf("after the forged logouts, /me answers %d: the session was ended", st)
	}
	// The console's own logout, with the header, works.
	req, _ := http.NewRequest("POST", h.HTTPURL+"/console/logout", nil)
	req.Header.Set("X-CSRF-Token", csrfValue)
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent || me() != http.StatusUnauthorized {
		t.Errorf("logout with the header: %d", resp.StatusCode)
	}
}

// readCSV fetches a coverage report CSV and parses it.
func readCSV(tb testing.TB, h *controllerHarness, query string) [][]string {
	tb.Helper()
	req, _ := http.NewRequest("GET", h.HTTPURL+"/api/v1/reports/coverage?format=csv"+query, nil)
	req.Header.Set("Authorization", "Bearer "+h.AdminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		tb.Fatalf("%d %s", resp.StatusCode, b)
	}
	rows, err := csv.NewReader(bytes.NewReader(bytes.TrimPrefix(b, []byte("\uFEFF")))).ReadAll()
	if err != nil {
		tb.Fatal(err)
	}
	return rows
}

// TestAttackFormulaInCoverageCSV names a village =HYPERLINK(...), its
// township @SUM(...), and a playlist (and its clip) =1+2, then broadcasts
// it. In both coverage CSVs (per item, and per village that did not
// play) no cell a spreadsheet reads may begin with a formula character,
// and each text is still there behind its quote.
func TestAttackFormulaInCoverageCSV(t *testing.T) {
	h := startController(t, harnessOptions{})
	ctx := context.Background()
	const (
		village  = "=HYPERLINK(\"http://evil.example/\",\"点击查看\")"
		township = "@SUM(1+1)*cmd|' /C calc'!A0"
		title    = "=1+2"
	)
	csvText := "code,name,township,lat,lon,device\n" +
		"110101001001,\"" + strings.ReplaceAll(village, `"`, `""`) + "\"," + township + ",39.9,116.4,manual\n"
	if _, err := h.Client.ImportVillages(ctx, []byte(csvText)); err != nil {
		t.Fatal(err)
	}
	clip, err := h.Client.UploadAudio(ctx, "a.wav", title, shortClip(t))
	if err != nil {
		t.Fatal(err)
	}
	pl, err := h.Client.CreatePlaylist(ctx, playlists.Playlist{Name: title, Items: []playlists.Item{{AudioID: clip.ID, Repeat: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.Client.CreateBroadcast(ctx, api.BroadcastRequest{
		PlaylistID: pl.ID, Targets: playlists.Targets{Villages: []string{"110101001001"}},
		Priority: playlists.Routine, Severity: 4, ExpiresAt: client.ExpiresAt(time.Now().Add(time.Hour)),
	}); err != nil {
		t.Fatal(err)
	}

	for _, q := range []string{"", "&detail=villages", "&lang=en", "&detail=villages&lang=en"} {
		rows := readCSV(t, h, q)
		seen := map[string]bool{}
		for _, row := range rows {
			for _, cell := range row {
				if cell != "" && strings.ContainsRune("=+-@\t\r", rune(cell[0])) && csvout.Escape(cell) != cell {
					t.Errorf("report%s: the cell %q is a live formula", q, cell)
				}
				seen[csvout.Unescape(cell)] = true
			}
		}
		want := []string{title}
		if strings.Contains(q, "villages") {
			want = append(want, village, township)
		}
		for _, w := range want {
			if !seen[w] {
				t.Errorf("report%s: %q is not in it (behind a quote): %q", q, w, rows)
			}
		}
	}
}

// TestAttackVillageNameTooLong imports a village named with 5,000
// characters: refused (422) naming the line, and nothing is imported.
func TestAttackVillageNameTooLong(t *testing.T) {
	testBadVillageName(t, "110101001002,"+strings.Repeat("长", 5000)+",东镇,39.9,116.4,manual\n", "name", "at most 100")
}

// TestAttackVillageNameWithNUL imports a township name holding a NUL.
func TestAttackVillageNameWithNUL(t *testing.T) {
	testBadVillageName(t, "110101001002,西村,东\x00镇,39.9,116.4,manual\n", "township", "control character")
}

func testBadVillageName(t *testing.T, line, field, reason string) {
	t.Helper()
	h := startController(t, harnessOptions{})
	ctx := context.Background()
	const head = "code,name,township,lat,lon,device\n110101001001,东村,东镇,39.9,116.4,manual\n"
	_, err := h.Client.ImportVillages(ctx, []byte(head+line))
	ae, ok := err.(*client.Error)
	if !ok || ae.Status != http.StatusUnprocessableEntity {
		t.Fatalf("import answered %v; want 422", err)
	}
	if len(ae.Body.Error.Details) != 1 || ae.Body.Error.Details[0].Line != 3 || ae.Body.Error.Details[0].Field != field ||
		!strings.Contains(ae.Body.Error.Details[0].Reason, reason) {
		t.Errorf("details %+v; want line 3, field %s, %q", ae.Body.Error.Details, field, reason)
	}
	vs, err := h.Client.Villages(ctx)
	if err != nil || len(vs) != 0 {
		t.Errorf("villages after the refused import: %d %v", len(vs), err)
	}
}
