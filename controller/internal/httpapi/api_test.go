package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/cunxiang/cunxiang/api"
	"github.com/cunxiang/cunxiang/controller/internal/cx"
	"github.com/cunxiang/cunxiang/controller/internal/media/mediatest"
	"github.com/cunxiang/cunxiang/controller/internal/store"
	"github.com/cunxiang/cunxiang/playlists"
)

func sine(seconds float64) []byte {
	return mediatest.Sine(mediatest.Spec{Rate: 44100, Channels: 2, Bits: 16, Seconds: seconds, Freq: 440})
}

func TestAuth(t *testing.T) {
	e := newEnv(t)
	staffRoutes := []struct{ method, path string }{
		{"GET", "/api/v1/villages"},
		{"POST", "/api/v1/villages/import"},
		{"POST", "/api/v1/villages/110101001001/enroll"},
		{"GET", "/api/v1/audio"},
		{"POST", "/api/v1/audio"},
		{"GET", "/api/v1/audio/1"},
		{"GET", "/api/v1/audio/1/content"},
		{"GET", "/api/v1/playlists"},
		{"POST", "/api/v1/playlists"},
		{"GET", "/api/v1/playlists/1"},
		{"GET", "/api/v1/schedules"},
		{"POST", "/api/v1/schedules"},
		{"GET", "/api/v1/schedules/1"},
		{"DELETE", "/api/v1/schedules/1"},
		{"GET", "/api/v1/schedules/1/coverage"},
		{"GET", "/api/v1/audit"},
		{"GET", "/api/v1/tokens"},
		{"POST", "/api/v1/tokens"},
		{"DELETE", "/api/v1/tokens/1"},
	}
	for _, r := range staffRoutes {
		for _, tok := range []string{"", "cxa_wrong", e.staff + "x"} {
			t.Run(r.method+" "+r.path+" token="+tok, func(t *testing.T) {
				got := e.do(r.method, r.path, tok, nil)
				if got.Status != http.StatusUnauthorized {
					t.Fatalf("status %d: %s", got.Status, got.Body)
				}
				if b := got.errBody(t); b.Error.Code != cx.EUNAUTHORIZED {
					t.Fatalf("code %q", b.Error.Code)
				}
				if got.Header.Get("WWW-Authenticate") == "" {
					t.Fatal("no WWW-Authenticate")
				}
			})
		}
	}
	t.Run("basic auth with a staff token is refused", func(t *testing.T) {
		req := httptest.NewRequest("GET", "/api/v1/villages", nil)
		req.SetBasicAuth("admin", e.admin)
		if got := e.request(req); got.Status != http.StatusUnauthorized {
			t.Fatalf("status %d", got.Status)
		}
	})
	t.Run("admin only", func(t *testing.T) {
		for _, p := range []string{"/api/v1/audit", "/api/v1/tokens"} {
			got := e.do("GET", p, e.staff, nil)
			if got.Status != http.StatusForbidden || got.errBody(t).Error.Code != cx.EFORBIDDEN {
				t.Fatalf("%s as operator: %d %s", p, got.Status, got.Body)
			}
			e.must(http.StatusOK, e.do("GET", p, e.admin, nil), nil)
		}
	})
	t.Run("clock needs no token", func(t *testing.T) {
		var c api.ClockResponse
		e.must(http.StatusOK, e.do("GET", "/api/v1/clock", "", nil), &c)
		if !c.Now.Equal(t0) {
			t.Fatalf("now = %v", c.Now)
		}
	})
	t.Run("revoked token", func(t *testing.T) {
		var tok api.Token
		e.must(http.StatusCreated, e.do("POST", "/api/v1/tokens", e.admin, map[string]string{"name": "temp"}), &tok)
		if tok.Role != api.RoleOperator || tok.Token == "" {
			t.Fatalf("token %+v", tok)
		}
		e.must(http.StatusOK, e.do("GET", "/api/v1/villages", tok.Token, nil), nil)
		e.must(http.StatusNoContent, e.do("DELETE", fmt.Sprintf("/api/v1/tokens/%d", tok.ID), e.admin, nil), nil)
		e.must(http.StatusUnauthorized, e.do("GET", "/api/v1/villages", tok.Token, nil), nil)
	})
}

func TestErrorShapes(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		method, path string
		status       int
		code         string
	}{
		{"GET", "/api/v1/nope", http.StatusNotFound, cx.ENOTFOUND},
		{"PUT", "/api/v1/villages", http.StatusMethodNotAllowed, "method_not_allowed"},
		{"GET", "/api/v1/schedules/abc", http.StatusNotFound, cx.ENOTFOUND},
		{"GET", "/api/v1/schedules/99", http.StatusNotFound, cx.ENOTFOUND},
		{"GET", "/api/v1/playlists/99", http.StatusNotFound, cx.ENOTFOUND},
		{"GET", "/api/v1/audio/99", http.StatusNotFound, cx.ENOTFOUND},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			got := e.do(tt.method, tt.path, e.staff, nil)
			if got.Status != tt.status || got.errBody(t).Error.Code != tt.code {
				t.Fatalf("%d %s", got.Status, got.Body)
			}
		})
	}
}

// TestPanicIsA500: a panic, or an error of ours (a failed disk), is a 500
// with the reason "internal", which the console says in Chinese, and
// nothing of its details.
func TestPanicIsA500(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.Store = panicky{o.Store} })
	for _, path := range []string{"/api/v1/villages", "/api/v1/audio"} {
		got := e.do("GET", path, e.staff, nil)
		if b := got.errBody(t).Error; got.Status != http.StatusInternalServerError || b.Code != cx.EINTERNAL || b.Reason != api.ReasonInternal {
			t.Fatalf("%s: %d %s", path, got.Status, got.Body)
		}
		if strings.Contains(string(got.Body), "boom") {
			t.Fatalf("%s: the error's text leaked: %s", path, got.Body)
		}
	}
}

type panicky struct{ Store }

func (panicky) VillageStates(context.Context) ([]store.VillageState, error) { panic("boom") }
func (panicky) AudioList(context.Context) ([]store.Audio, error) {
	return nil, errors.New("read audio: boom")
}

func TestVillagesImport(t *testing.T) {
	e := newEnv(t)
	var counts store.ImportCounts
	e.must(http.StatusOK, e.do("POST", "/api/v1/villages/import", e.admin, []byte(villagesCSV)), &counts)
	if counts != (store.ImportCounts{Created: 5, Total: 5}) {
		t.Fatalf("counts %+v", counts)
	}
	before := e.do("GET", "/api/v1/villages", e.staff, nil)

	bad := "\ufeffcode,name,township,lat,lon,device\r\n" +
		"110101001001,东村改,东镇,39.9,116.4,agent\r\n" + // fine, and would update
		"110101009,坏村,东镇,39.9,116.4,agent\r\n" +
		"110101001003,,东镇,95,116.4,agent\r\n" +
		"110101001004,好村,东镇,39.9,116.4,speaker\r\n"
	got := e.do("POST", "/api/v1/villages/import", e.admin, []byte(bad))
	if got.Status != http.StatusUnprocessableEntity {
		t.Fatalf("status %d: %s", got.Status, got.Body)
	}
	b := got.errBody(t)
	var lines []int
	for _, d := range b.Error.Details {
		lines = append(lines, d.Line)
	}
	if b.Error.Code != cx.EINVALID || !reflect.DeepEqual(lines, []int{3, 4, 4, 5}) {
		t.Fatalf("error %+v", b.Error)
	}
	if after := e.do("GET", "/api/v1/villages", e.staff, nil); !bytes.Equal(before.Body, after.Body) {
		t.Fatalf("a rejected import changed the villages:\n%s\n%s", before.Body, after.Body)
	}

	// Re-import updates by code; a browser form sends multipart.
	var buf bytes.Buffer
	mw := newMultipart(&buf, "file", "v.csv", "code,name,township,lat,lon,device\n110101001001,东村改,东镇,39.9,116.4,manual\n110101004001,另村,另镇,1,2,agent\n")
	req := httptest.NewRequest("POST", "/api/v1/villages/import", &buf)
	req.Header.Set("Content-Type", mw)
	req.Header.Set("Authorization", "Bearer "+e.admin)
	e.must(http.StatusOK, e.request(req), &counts)
	if counts != (store.ImportCounts{Created: 1, Updated: 1, Total: 2}) {
		t.Fatalf("counts %+v", counts)
	}
	var list struct{ Villages []api.Village }
	e.must(http.StatusOK, e.do("GET", "/api/v1/villages", e.staff, nil), &list)
	if len(list.Villages) != 6 || list.Villages[0].Name != "东村改" || list.Villages[0].Device != "manual" {
		t.Fatalf("villages %+v", list.Villages)
	}

	t.Run("too large", func(t *testing.T) {
		huge := append([]byte("code,name,township,lat,lon,device\n"), bytes.Repeat([]byte("x"), maxCSVBytes)...)
		got := e.do("POST", "/api/v1/villages/import", e.admin, huge)
		if got.Status != http.StatusRequestEntityTooLarge || got.errBody(t).Error.Code != cx.ETOOLARGE {
			t.Fatalf("%d %s", got.Status, got.Body)
		}
	})
	t.Run("empty", func(t *testing.T) {
		got := e.do("POST", "/api/v1/villages/import", e.admin, []byte{})
		if got.Status != http.StatusUnprocessableEntity {
			t.Fatalf("%d %s", got.Status, got.Body)
		}
	})
}

func newMultipart(w io.Writer, field, filename, content string) string {
	mw := multipartWriter(w)
	fw, _ := mw.CreateFormFile(field, filename)
	io.WriteString(fw, content)
	mw.Close()
	return mw.FormDataContentType()
}

func TestVillagesListPresence(t *testing.T) {
	e := newEnv(t)
	e.importVillages(villagesCSV)
	e.enrollBox("110101001001")
	e.enrollBox("110101001002")
	ctx := context.Background()
	seen := t0.Add(time.Minute)
	if err := e.db.SetPresence(ctx, "110101001001", api.Presence{V: 1, Village: "110101001001", Status: api.Online, Version: "0.2", ClockOffsetMS: -40}, seen); err != nil {
		t.Fatal(err)
	}
	var list struct{ Villages []api.Village }
	e.must(http.StatusOK, e.do("GET", "/api/v1/villages", e.staff, nil), &list)
	byCode := map[string]api.Village{}
	for _, v := range list.Villages {
		byCode[v.Code] = v
	}
	on := byCode["110101001001"]
	if !*on.Enrolled || on.Presence != "online" || !on.LastSeen.Equal(seen) || on.AgentVersion != "0.2" || *on.ClockOffsetMS != -40 {
		t.Fatalf("online box %+v", on)
	}
	if v := byCode["110101001002"]; !*v.Enrolled || v.Presence != "never" || v.LastSeen != nil {
		t.Fatalf("enrolled, never connected %+v", v)
	}
	if v := byCode["110101002001"]; *v.Enrolled || v.Presence != "never" {
		t.Fatalf("not enrolled %+v", v)
	}
	if v := byCode["110101002002"]; v.Enrolled != nil || v.Presence != "" || v.Township != "南镇" || v.Device != "manual" {
		t.Fatalf("manual %+v", v)
	}
}

func TestEnroll(t *testing.T) {
	e := newEnv(t)
	e.importVillages(villagesCSV)
	tests := []struct {
		village string
		status  int
	}{
		{"999999999999", http.StatusNotFound},
		{"12345", http.StatusNotFound},
		{"110101002002", http.StatusConflict}, // manual
	}
	for _, tt := range tests {
		got := e.do("POST", "/api/v1/villages/"+tt.village+"/enroll", e.admin, nil)
		if got.Status != tt.status {
			t.Fatalf("%s: %d %s", tt.village, got.Status, got.Body)
		}
		got.errBody(t)
	}
	var tok api.EnrollToken
	e.must(http.StatusCreated, e.do("POST", "/api/v1/villages/110101001001/enroll", e.admin, nil), &tok)
	if !tok.ExpiresAt.Equal(t0.Add(24*time.Hour)) || tok.Village != "110101001001" {
		t.Fatalf("token %+v", tok)
	}
	req := api.EnrollRequest{Village: "110101001001", Token: tok.Token, AgentVersion: "0.1"}
	var out api.EnrollResponse
	e.must(http.StatusOK, e.do("POST", "/api/v1/enroll", "", req), &out)
	if out.MQTTUsername != "box-110101001001" || out.MQTTPassword == "" || !bytes.Equal(out.SigningKey, e.key) ||
		out.TopicPrefix != "cx/test" || out.Broker != "tcp://broker.test:1883" || out.Village != "110101001001" {
		t.Fatalf("enroll response %+v", out)
	}
	if v, err := e.db.CheckAgentPassword(context.Background(), out.MQTTUsername, out.MQTTPassword); err != nil || v != "110101001001" {
		t.Fatalf("credentials do not work: %q %v", v, err)
	}
	t.Run("second use", func(t *testing.T) {
		got := e.do("POST", "/api/v1/enroll", "", req)
		if got.Status != http.StatusUnauthorized || !strings.Contains(got.errBody(t).Error.Message, "already used") {
			t.Fatalf("%d %s", got.Status, got.Body)
		}
	})
	t.Run("expired", func(t *testing.T) {
		var tok api.EnrollToken
		e.must(http.StatusCreated, e.do("POST", "/api/v1/villages/110101001002/enroll", e.admin, nil), &tok)
		e.clk.Advance(25 * time.Hour)
		got := e.do("POST", "/api/v1/enroll", "", api.EnrollRequest{Token: tok.Token})
		if got.Status != http.StatusUnauthorized || !strings.Contains(got.errBody(t).Error.Message, "expired") {
			t.Fatalf("%d %s", got.Status, got.Body)
		}
	})
	t.Run("bad requests", func(t *testing.T) {
		for _, body := range []string{`{}`, `{"token":"cxe_nope"}`, `{"token":"x","village":"1"}`, `not json`} {
			got := e.do("POST", "/api/v1/enroll", "", body)
			if got.Status != http.StatusUnauthorized && got.Status != http.StatusBadRequest {
				t.Fatalf("%s: %d %s", body, got.Status, got.Body)
			}
			got.errBody(t)
		}
	})
	actions := e.auditLog("")
	want := []string{
		"admin village.enroll_token village/110101001002",
		"box-110101001001 agent.enroll village/110101001001",
		"admin village.enroll_token village/110101001001",
		"admin village.import villages",
	}
	if !reflect.DeepEqual(actions, want) {
		t.Fatalf("audit:\n%s", strings.Join(actions, "\n"))
	}
	var log struct{ Entries []api.AuditEntry }
	e.must(http.StatusOK, e.do("GET", "/api/v1/audit?limit=1", e.admin, nil), &log)
	if len(log.Entries) != 1 || log.Entries[0].RemoteAddr != "192.0.2.7" {
		t.Fatalf("entries %+v", log.Entries)
	}
}

func TestAudioUpload(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.MaxUploadBytes = 1 << 20 })
	wav := sine(1)
	var a api.Audio
	e.must(http.StatusCreated, e.upload(e.staff, "通知.wav", "", wav), &a)
	if a.ID == 0 || len(a.SHA256) != 64 || a.DurationMS != 1000 || a.SampleRate != 22050 || a.Channels != 1 || a.Title != "通知" ||
		a.Source == nil || a.Source.SampleRate != 44100 || a.Source.Channels != 2 {
		t.Fatalf("audio %+v", a)
	}
	var again api.Audio
	e.must(http.StatusOK, e.upload(e.staff, "copy.wav", "another title", wav), &again)
	if again.ID != a.ID || again.Title != "通知" {
		t.Fatalf("duplicate upload %+v", again)
	}
	dir := e.audioDir()
	list := e.do("GET", "/api/v1/audio", e.staff, nil)

	tests := []struct {
		name   string
		do     func() resp
		status int
		code   string
		msg    string
	}{
		{"mp3", func() resp { return e.upload(e.staff, "a.mp3", "", append([]byte("ID3\x04"), make([]byte, 500)...)) }, 400, cx.EINVALID, "MP3"},
		{"truncated", func() resp { return e.upload(e.staff, "a.wav", "", wav[:len(wav)/2]) }, 400, cx.EINVALID, "cut short"},
		{"too large", func() resp { return e.upload(e.staff, "big.wav", "", sine(7)) }, 413, cx.ETOOLARGE, "1 MiB"},
		{"no file", func() resp {
			var buf bytes.Buffer
			mw := multipartWriter(&buf)
			mw.WriteField("title", "x")
			mw.Close()
			req := httptest.NewRequest("POST", "/api/v1/audio", &buf)
			req.Header.Set("Content-Type", mw.FormDataContentType())
			req.Header.Set("Authorization", "Bearer "+e.staff)
			return e.request(req)
		}, 400, cx.EINVALID, "file"},
		{"not multipart", func() resp { return e.do("POST", "/api/v1/audio", e.staff, []byte("RIFF")) }, 400, cx.EINVALID, "multipart"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.do()
			b := got.errBody(t)
			if got.Status != tt.status || b.Error.Code != tt.code || !strings.Contains(b.Error.Message, tt.msg) {
				t.Fatalf("%d %s", got.Status, got.Body)
			}
			if d := e.audioDir(); !reflect.DeepEqual(d, dir) {
				t.Fatalf("audio dir changed: %v → %v", dir, d)
			}
			if l := e.do("GET", "/api/v1/audio", e.staff, nil); !bytes.Equal(l.Body, list.Body) {
				t.Fatalf("audio list changed: %s", l.Body)
			}
		})
	}

	t.Run("content", func(t *testing.T) {
		creds := func() api.EnrollResponse {
			e.importVillages(villagesCSV)
			return e.enrollBox("110101001001")
		}()
		path := fmt.Sprintf("/api/v1/audio/%d/content", a.ID)
		full := e.do("GET", path, e.staff, nil)
		if full.Status != 200 || full.Header.Get("ETag") != `"`+a.SHA256+`"` || full.Header.Get("Content-Type") != "audio/wav" || int64(len(full.Body)) != a.SizeBytes {
			t.Fatalf("staff download: %d %v %d bytes", full.Status, full.Header, len(full.Body))
		}
		req := httptest.NewRequest("GET", path, nil)
		req.SetBasicAuth(creds.MQTTUsername, creds.MQTTPassword)
		req.Header.Set("Range", "bytes=0-43")
		part := e.request(req)
		if part.Status != http.StatusPartialContent || !bytes.Equal(part.Body, full.Body[:44]) {
			t.Fatalf("box range download: %d %d bytes", part.Status, len(part.Body))
		}
		req = httptest.NewRequest("GET", path, nil)
		req.SetBasicAuth(creds.MQTTUsername, creds.MQTTPassword)
		req.Header.Set("If-None-Match", `"`+a.SHA256+`"`)
		if got := e.request(req); got.Status != http.StatusNotModified {
			t.Fatalf("conditional: %d", got.Status)
		}
		req = httptest.NewRequest("GET", path, nil)
		req.SetBasicAuth(creds.MQTTUsername, creds.MQTTPassword+"x")
		if got := e.request(req); got.Status != http.StatusUnauthorized || !strings.HasPrefix(got.Header.Get("WWW-Authenticate"), "Basic") {
			t.Fatalf("wrong password: %d %v", got.Status, got.Header)
		}
		if got := e.do("GET", "/api/v1/audio/999/content", e.staff, nil); got.Status != 404 {
			t.Fatalf("unknown clip: %d", got.Status)
		}
	})
}

func multipartWriter(w io.Writer) *multipartW { return newMultipartW(w) }

// setupLibrary uploads two clips and makes a playlist of them.
func (e *env) setupLibrary() (audio []api.Audio, pl api.Playlist) {
	e.t.Helper()
	for _, s := range []float64{1, 2} {
		var a api.Audio
		e.must(http.StatusCreated, e.upload(e.staff, "c.wav", fmt.Sprint(s), sine(s)), &a)
		audio = append(audio, a)
	}
	e.must(http.StatusCreated, e.do("POST", "/api/v1/playlists", e.staff, map[string]any{
		"name": "早间通知", "gap_ms": 500,
		"items": []map[string]any{{"audio_id": audio[0].ID, "repeat": 2}, {"audio_id": audio[1].ID}},
	}), &pl)
	return audio, pl
}

func TestPlaylists(t *testing.T) {
	e := newEnv(t)
	audio, pl := e.setupLibrary()
	want := []playlists.Item{
		{AudioID: audio[0].ID, SHA256: audio[0].SHA256, DurationMS: 1000, GainDB: *audio[0].GainDB, Repeat: 2},
		{AudioID: audio[1].ID, SHA256: audio[1].SHA256, DurationMS: 2000, GainDB: *audio[1].GainDB, Repeat: 1},
	}
	if pl.ID == 0 || pl.Name != "早间通知" || !reflect.DeepEqual(pl.Items, want) || pl.TotalMS != 5000 {
		t.Fatalf("playlist %+v", pl)
	}
	var got api.Playlist
	e.must(http.StatusOK, e.do("GET", fmt.Sprintf("/api/v1/playlists/%d", pl.ID), e.staff, nil), &got)
	if !reflect.DeepEqual(got, pl) {
		t.Fatalf("read back %+v", got)
	}
	var list struct{ Playlists []api.Playlist }
	e.must(http.StatusOK, e.do("GET", "/api/v1/playlists", e.staff, nil), &list)
	if len(list.Playlists) != 1 {
		t.Fatalf("list %+v", list)
	}

	tests := []struct {
		name string
		body string
		msg  string
	}{
		{"unknown audio", fmt.Sprintf(`{"name":"x","items":[{"audio_id":%d},{"audio_id":77}]}`, audio[0].ID), "items[1].audio_id: there is no audio clip with id 77"},
		{"no items", `{"name":"x","items":[]}`, "items: a playlist needs at least one clip"},
		{"no name", `{"name":"  ","items":[{"audio_id":1}]}`, "name: a playlist needs a name"},
		{"repeat too high", `{"name":"x","items":[{"audio_id":1,"repeat":1000}]}`, "items[0].repeat"},
		{"negative gap", `{"name":"x","items":[{"audio_id":1}],"gap_ms":-1}`, "gap_ms"},
		{"wrong type", `{"name":"x","items":[{"audio_id":"one"}]}`, "items.audio_id: must be a whole number, not string"},
		{"unknown field", `{"name":"x","item":[]}`, `item: is not a field of this request`},
		{"not json", `{"name":`, "cut short"},
		{"empty body", ``, "empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := e.do("POST", "/api/v1/playlists", e.staff, tt.body)
			b := got.errBody(t)
			if got.Status != http.StatusBadRequest || b.Error.Code != cx.EINVALID || !strings.Contains(b.Error.Message, tt.msg) {
				t.Fatalf("%d %s", got.Status, got.Body)
			}
			var list struct{ Playlists []api.Playlist }
			e.must(http.StatusOK, e.do("GET", "/api/v1/playlists", e.staff, nil), &list)
			if len(list.Playlists) != 1 {
				t.Fatalf("a rejected playlist was stored")
			}
		})
	}
}

func TestSchedules(t *testing.T) {
	e := newEnv(t)
	e.importVillages(villagesCSV)
	_, pl := e.setupLibrary()
	plID := fmt.Sprint(pl.ID)

	bad := []struct {
		name, body, field string
	}{
		{"unknown playlist", `{"playlist_id":999,"targets":{"all":true},"once_at":"2026-03-01T09:00:00+08:00"}`, "playlist_id"},
		{"no playlist", `{"targets":{"all":true},"once_at":"2026-03-01T09:00:00+08:00"}`, "playlist_id"},
		{"empty targets", `{"playlist_id":` + plID + `,"targets":{},"once_at":"2026-03-01T09:00:00+08:00"}`, "targets"},
		{"unknown township", `{"playlist_id":` + plID + `,"targets":{"townships":["东镇","西镇"]},"once_at":"2026-03-01T09:00:00+08:00"}`, "targets.townships[1]"},
		{"unknown village", `{"playlist_id":` + plID + `,"targets":{"villages":["110101009999"]},"once_at":"2026-03-01T09:00:00+08:00"}`, "targets.villages[0]"},
		{"malformed village", `{"playlist_id":` + plID + `,"targets":{"villages":["东村"]},"once_at":"2026-03-01T09:00:00+08:00"}`, "targets.villages[0]"},
		{"bad time zone", `{"playlist_id":` + plID + `,"targets":{"all":true},"timezone":"Mars/Olympus","once_at":"2026-03-01T09:00:00+08:00"}`, "timezone"},
		{"end before start", `{"playlist_id":` + plID + `,"targets":{"all":true},"recurring":{"times":["07:00"],"start_date":"2026-04-01","end_date":"2026-03-01"}}`, "recurring.end_date"},
		{"malformed once_at", `{"playlist_id":` + plID + `,"targets":{"all":true},"once_at":"tomorrow at 9"}`, "once_at"},
		{"malformed time of day", `{"playlist_id":` + plID + `,"targets":{"all":true},"recurring":{"times":["7:00"],"start_date":"2026-03-01"}}`, "recurring.times[0]"},
		{"malformed date", `{"playlist_id":` + plID + `,"targets":{"all":true},"recurring":{"times":["07:00"],"start_date":"1 March"}}`, "recurring.start_date"},
		{"bad weekday", `{"playlist_id":` + plID + `,"targets":{"all":true},"recurring":{"times":["07:00"],"weekdays":[0],"start_date":"2026-03-01"}}`, "recurring.weekdays[0]"},
		{"once_at in the past", `{"playlist_id":` + plID + `,"targets":{"all":true},"once_at":"2026-03-01T07:58:00+08:00"}`, "once_at"},
		{"neither", `{"playlist_id":` + plID + `,"targets":{"all":true}}`, "once_at"},
		{"both", `{"playlist_id":` + plID + `,"targets":{"all":true},"once_at":"2026-03-01T09:00:00+08:00","recurring":{"times":["07:00"],"start_date":"2026-03-01"}}`, "recurring"},
		{"misspelt field", `{"playlist_id":` + plID + `,"target":{"all":true},"once_at":"2026-03-01T09:00:00+08:00"}`, "target"},
		{"wrong type", `{"playlist_id":` + plID + `,"targets":{"all":"yes"},"once_at":"2026-03-01T09:00:00+08:00"}`, "targets.all"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			got := e.do("POST", "/api/v1/schedules", e.staff, tt.body)
			b := got.errBody(t)
			if got.Status != http.StatusBadRequest || b.Error.Code != cx.EINVALID || !strings.HasPrefix(b.Error.Message, tt.field+": ") {
				t.Fatalf("%d %s", got.Status, got.Body)
			}
		})
	}
	var list struct{ Schedules []api.Schedule }
	e.must(http.StatusOK, e.do("GET", "/api/v1/schedules?withdrawn=true", e.staff, nil), &list)
	if len(list.Schedules) != 0 || len(e.pub.published) != 0 {
		t.Fatalf("rejected schedules were stored or published: %+v", list.Schedules)
	}

	// A one-off in wall-clock time, one township (whole group) and a village.
	var once api.Schedule
	e.must(http.StatusCreated, e.do("POST", "/api/v1/schedules", e.staff, `{"playlist_id":`+plID+`,"targets":{"townships":["东镇"],"villages":["110101003001"]},"once_at":"2026-03-01T09:30"}`), &once)
	at := time.Date(2026, 3, 1, 1, 30, 0, 0, time.UTC)
	if once.OnceAt == nil || !once.OnceAt.Equal(at) || once.Timezone != "Asia/Shanghai" || len(once.Next) != 1 || !once.Next[0].Equal(at) {
		t.Fatalf("once %+v", once)
	}
	// 新镇 has no other box, so its village is reached by its township group.
	wantGroups := []api.Group{"t/110101001", "t/110101003"}
	if !reflect.DeepEqual(once.Groups, wantGroups) {
		t.Fatalf("groups %v", once.Groups)
	}
	if len(e.pub.published) != 1 {
		t.Fatalf("published %d", len(e.pub.published))
	}
	p := e.pub.published[0]
	if p.Schedule.ID != once.ID || !reflect.DeepEqual(p.Groups, wantGroups) || p.Playlist.ID != pl.ID ||
		len(p.Playlist.Items) != 2 || len(p.Playlist.Items[1].SHA256) != 64 || p.Playlist.Items[1].DurationMS != 2000 {
		t.Fatalf("published %+v", p)
	}

	// A recurrence, county-wide.
	var rec api.Schedule
	e.must(http.StatusCreated, e.do("POST", "/api/v1/schedules", e.staff, map[string]any{
		"playlist_id": pl.ID, "targets": map[string]any{"all": true},
		"recurring": map[string]any{"times": []string{"07:00", "18:30"}, "weekdays": []int{1, 3, 5}, "start_date": "2026-03-01", "except_dates": []string{"2026-03-04"}},
	}), &rec)
	var next []string
	for _, n := range rec.Next {
		next = append(next, n.Format(time.RFC3339))
	}
	if len(next) != 5 || !reflect.DeepEqual(rec.Groups, []api.Group{api.GroupAll}) {
		t.Fatalf("recurring %+v next %v", rec, next)
	}
	// Mon 2 March 07:00 and 18:30 in Shanghai, Wednesday the 4th is a
	// holiday, Friday the 6th twice, Monday the 9th.
	wantNext := []string{"2026-03-01T23:00:00Z", "2026-03-02T10:30:00Z", "2026-03-05T23:00:00Z", "2026-03-06T10:30:00Z", "2026-03-08T23:00:00Z"}
	if !reflect.DeepEqual(next, wantNext) {
		t.Fatalf("next %v", next)
	}

	e.must(http.StatusOK, e.do("GET", "/api/v1/schedules", e.staff, nil), &list)
	if len(list.Schedules) != 2 {
		t.Fatalf("schedules %+v", list)
	}

	// Withdrawal reaches the same groups even after the village list changed.
	e.importVillages("code,name,township,lat,lon,device\n110101001009,新东村,东镇,39.9,116.4,agent\n")
	var w api.Schedule
	e.must(http.StatusOK, e.do("DELETE", fmt.Sprintf("/api/v1/schedules/%d", once.ID), e.staff, nil), &w)
	if w.WithdrawnAt == nil || len(w.Next) != 0 {
		t.Fatalf("withdrawn %+v", w)
	}
	if len(e.pub.withdrawn) != 1 || e.pub.withdrawn[0].ID != once.ID || !reflect.DeepEqual(e.pub.withdrawn[0].Groups, wantGroups) {
		t.Fatalf("withdrawals %+v", e.pub.withdrawn)
	}
	e.must(http.StatusOK, e.do("GET", "/api/v1/schedules", e.staff, nil), &list)
	if len(list.Schedules) != 1 {
		t.Fatalf("live schedules %d", len(list.Schedules))
	}
	if got := e.do("DELETE", "/api/v1/schedules/999", e.staff, nil); got.Status != 404 {
		t.Fatalf("withdraw unknown: %d", got.Status)
	}

	t.Run("a schedule the broker does not take yet is kept and goes out later", func(t *testing.T) {
		e.pub.fail = errors.New("broker down")
		got := e.do("POST", "/api/v1/schedules", e.staff, `{"playlist_id":`+plID+`,"targets":{"all":true},"once_at":"2026-03-01T10:00:00+08:00"}`)
		e.pub.fail = nil
		if got.Status != http.StatusAccepted || got.Header.Get("X-Cunxiang-Delivery") != "pending" {
			t.Fatalf("%d %v %s", got.Status, got.Header, got.Body)
		}
		var sc api.Schedule
		if err := json.Unmarshal(got.Body, &sc); err != nil || sc.ID == 0 {
			t.Fatalf("%v %s", err, got.Body)
		}
		var list struct{ Schedules []api.Schedule }
		e.must(http.StatusOK, e.do("GET", "/api/v1/schedules", e.staff, nil), &list)
		if len(list.Schedules) != 2 {
			t.Fatalf("live schedules %d", len(list.Schedules))
		}
		before := len(e.pub.published)
		if err := e.pub.Deliver(context.Background(), store.OutboxSchedule, store.IDRef(sc.ID)); err != nil {
			t.Fatal(err)
		}
		if len(e.pub.published) != before+1 || e.pub.published[before].Schedule.ID != sc.ID {
			t.Fatalf("the kept schedule was not sent when the broker came back: %+v", e.pub.published[before:])
		}
	})
}

// countingStore counts the store calls the coverage endpoint makes.
type countingStore struct {
	Store
	calls map[string]int
}

func (s *countingStore) GetSchedule(ctx context.Context, id int64) (store.Schedule, error) {
	s.calls["GetSchedule"]++
	return s.Store.GetSchedule(ctx, id)
}
func (s *countingStore) GetPlaylist(ctx context.Context, id int64) (store.Playlist, error) {
	s.calls["GetPlaylist"]++
	return s.Store.GetPlaylist(ctx, id)
}
func (s *countingStore) VillageStates(ctx context.Context) ([]store.VillageState, error) {
	s.calls["VillageStates"]++
	return s.Store.VillageStates(ctx)
}
func (s *countingStore) ScheduleEvents(ctx context.Context, id int64, occ string) ([]store.Event, error) {
	s.calls["ScheduleEvents"]++
	return s.Store.ScheduleEvents(ctx, id, occ)
}
func (s *countingStore) ScheduleConfirmations(ctx context.Context, id int64, occ string) ([]store.Confirmation, error) {
	s.calls["ScheduleConfirmations"]++
	return s.Store.ScheduleConfirmations(ctx, id, occ)
}

func TestCoverage(t *testing.T) {
	cs := &countingStore{calls: map[string]int{}}
	e := newEnv(t, func(o *Options) { cs.Store = o.Store; o.Store = cs })
	e.importVillages(villagesCSV)
	for _, v := range []string{"110101001001", "110101001002", "110101002001"} {
		e.enrollBox(v)
	}
	ctx := context.Background()
	e.db.SetPresence(ctx, "110101001001", api.Presence{V: 1, Status: api.Online}, t0)
	e.db.SetPresence(ctx, "110101001002", api.Presence{V: 1, Status: api.Online}, t0)
	e.db.SetPresence(ctx, "110101002001", api.Presence{V: 1, Status: api.Offline}, t0.Add(-time.Hour))
	_, pl := e.setupLibrary() // 5 s long

	var sc api.Schedule
	e.must(http.StatusCreated, e.do("POST", "/api/v1/schedules", e.staff, `{"playlist_id":`+fmt.Sprint(pl.ID)+`,"targets":{"all":true},"once_at":"2026-03-01T09:00:00+08:00"}`), &sc)
	occ := *sc.OnceAt
	path := fmt.Sprintf("/api/v1/schedules/%d/coverage", sc.ID)

	var before api.Coverage
	e.must(http.StatusOK, e.do("GET", path, e.staff, nil), &before) // the next occurrence
	if !before.Occurrence.Equal(occ) || before.Pending != 4 || before.AwaitingConfirmation != 1 || before.Targeted != 5 {
		t.Fatalf("before %+v", before)
	}

	o := occ
	_, err := e.db.IngestEvents(ctx, []store.IngestBatch{
		{Village: "110101001001", Events: []api.Event{
			{Seq: 1, Type: api.EventReceived, At: t0, ScheduleID: sc.ID},
			{Seq: 2, Type: api.EventStarted, At: occ, ScheduleID: sc.ID, Occurrence: &o},
			{Seq: 3, Type: api.EventFinished, At: occ.Add(5 * time.Second), ScheduleID: sc.ID, Occurrence: &o},
		}},
		{Village: "110101001002", Events: []api.Event{
			{Seq: 1, Type: api.EventStarted, At: occ, ScheduleID: sc.ID, Occurrence: &o},
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	e.clk.Advance(2 * time.Hour)
	cs.calls = map[string]int{}
	var cov api.Coverage
	e.must(http.StatusOK, e.do("GET", path+"?at="+occ.Format(time.RFC3339), e.staff, nil), &cov)
	want := map[string]string{
		"110101001001": "played",
		"110101001002": "partial",
		"110101002001": "missed:box offline since 2026-03-01 07:00 CST",
		"110101002002": "awaiting_confirmation",
		"110101003001": "missed:box never enrolled",
	}
	got := map[string]string{}
	for _, v := range cov.Villages {
		s := v.Status
		if v.Status == "missed" {
			s += ":" + v.Reason
		}
		got[v.Code] = s
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("statuses %v", got)
	}
	if cov.Played != 1 || cov.Partial != 1 || cov.Missed != 2 || cov.AwaitingConfirmation != 1 || cov.Targeted != 5 || len(cov.Townships) != 3 {
		t.Fatalf("counts %+v", cov.Counts)
	}
	if cov.Townships[0].Name != "东镇" || cov.Townships[0].Played != 1 || cov.Townships[0].Partial != 1 {
		t.Fatalf("townships %+v", cov.Townships)
	}
	calls := maps.Clone(cs.calls)
	if !reflect.DeepEqual(calls, map[string]int{"GetSchedule": 1, "GetPlaylist": 1, "VillageStates": 1, "ScheduleEvents": 1, "ScheduleConfirmations": 1}) {
		t.Fatalf("store calls %v", calls)
	}

	// With the default occurrence (the latest that started) the same answer.
	var def api.Coverage
	e.must(http.StatusOK, e.do("GET", path, e.staff, nil), &def)
	if !reflect.DeepEqual(def, cov) {
		t.Fatalf("default occurrence %+v", def.Occurrence)
	}

	// A hundred more villages cost no more queries.
	var csv strings.Builder
	csv.WriteString("code,name,township,lat,lon,device\n")
	for i := range 100 {
		fmt.Fprintf(&csv, "1101010050%02d,村%d,五镇,1,1,agent\n", i, i)
	}
	e.importVillages(csv.String())
	cs.calls = map[string]int{}
	e.must(http.StatusOK, e.do("GET", path, e.staff, nil), &cov)
	if cov.Targeted != 105 || !reflect.DeepEqual(cs.calls, calls) {
		t.Fatalf("targeted %d, calls %v", cov.Targeted, cs.calls)
	}

	// An offset whose "+" was not URL-encoded still names the occurrence.
	e.must(http.StatusOK, e.do("GET", path+"?at=2026-03-01T09:00:00+08:00", e.staff, nil), &def)
	if !def.Occurrence.Equal(occ) {
		t.Fatalf("occurrence %v", def.Occurrence)
	}
	for _, bad := range []string{"yesterday", "2026-03-01T09:01:00+08:00"} {
		got := e.do("GET", path+"?at="+bad, e.staff, nil)
		if got.Status != 400 || !strings.HasPrefix(got.errBody(t).Error.Message, "at: ") {
			t.Fatalf("at=%s: %d %s", bad, got.Status, got.Body)
		}
	}
}

func TestJSONDecoding(t *testing.T) {
	// Every error names the field or says what is wrong with the body.
	var b api.ErrorBody
	for _, in := range []string{`[]`, `{"a":1}{"b":2}`, `"x"`} {
		e := newEnv(t)
		got := e.do("POST", "/api/v1/tokens", e.admin, in)
		if got.Status != 400 {
			t.Fatalf("%s: %d %s", in, got.Status, got.Body)
		}
		json.Unmarshal(got.Body, &b)
		if b.Error.Code != cx.EINVALID {
			t.Fatalf("%s: %s", in, got.Body)
		}
	}
}
