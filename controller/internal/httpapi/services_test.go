package httpapi

import (
	"context"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cunxiang/cunxiang/api"
	"github.com/cunxiang/cunxiang/controller/internal/broadcasts"
	"github.com/cunxiang/cunxiang/controller/internal/capalert"
	"github.com/cunxiang/cunxiang/controller/internal/store"
	"github.com/cunxiang/cunxiang/playlists"
)

// TestAPIAndCAPMakeTheSameBroadcast: a CAP alert and the request an
// operator would post for it make the same broadcast, through the same
// broadcasts service (called here as the doors call it, without HTTP):
// the same checks, the same spoken clip, the same two-person rule and
// the same audit entry.
func TestAPIAndCAPMakeTheSameBroadcast(t *testing.T) {
	e, _ := capEnv(t, time.Date(2024, 7, 10, 6, 35, 0, 0, shanghai))
	ctx := context.Background()
	tok, err := e.db.Authenticate(ctx, e.staff)
	if err != nil {
		t.Fatal(err)
	}
	clerk := broadcasts.Person{Name: tok.Name, Key: tok.Principal(), Role: tok.Role}
	raw := capXML(t, "flood-red.xml", func(s string) string {
		// No recording: both speak the text.
		return strings.Replace(s, "<mimeType>audio/mpeg</mimeType>", "<mimeType>text/plain</mimeType>", 1)
	})
	alert, err := capalert.ParseRequest(strings.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	out, err := e.srv.alerts.Receive(ctx, clerk, alert, []byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	viaCAP := out.Broadcast

	d, err := draft(api.BroadcastRequest{
		Text: alert.Description, Targets: playlists.Targets{Villages: villagesOf("411421100", "411421102")},
		Priority: playlists.Emergency, Severity: 1, EventType: "暴雨", ExpiresAt: "2024-07-10T18:30:00+08:00",
	})
	if err != nil {
		t.Fatal(err)
	}
	viaAPI, err := e.srv.broadcasts.Create(ctx, clerk, d)
	if err != nil {
		t.Fatal(err)
	}
	if viaCAP.ID == 0 || viaAPI.ID == viaCAP.ID {
		t.Fatalf("broadcasts %d and %d", viaCAP.ID, viaAPI.ID)
	}
	if viaCAP.Source != "cap" || viaAPI.Source != "" {
		t.Fatalf("sources %q (CAP) and %q (API)", viaCAP.Source, viaAPI.Source)
	}
	same := func(b store.Broadcast) store.Broadcast {
		b.ID, b.CreatedAt, b.Source = 0, time.Time{}, "" // the door it came through differs, nothing else
		b.ExpiresAt = b.ExpiresAt.UTC()
		return b
	}
	if a, c := same(viaAPI), same(viaCAP); !reflect.DeepEqual(a, c) {
		t.Fatalf("the API made\n%+v\nCAP made\n%+v", a, c)
	}
	if viaCAP.State != api.BroadcastPending || !viaCAP.NeedsApproval || viaCAP.AudioID == 0 {
		t.Fatalf("CAP broadcast %+v: two townships wait for a second person", viaCAP)
	}
	creates := e.auditLog("?action=broadcast.create")
	if len(creates) != 2 {
		t.Fatalf("audit log has %d broadcast.create entries, want one per door: %q", len(creates), creates)
	}
}

// gatedSpeaker speaks at once, except a text containing hold, which it
// speaks only once release is closed.
type gatedSpeaker struct {
	hold    string
	held    chan struct{}
	release chan struct{}
	mu      sync.Mutex
	said    []string
}

func (g *gatedSpeaker) Speak(ctx context.Context, text, _ string) ([]byte, error) {
	if strings.Contains(text, g.hold) {
		g.held <- struct{}{}
		select {
		case <-g.release:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	g.mu.Lock()
	g.said = append(g.said, text)
	g.mu.Unlock()
	return sine(0.5), nil
}

// TestCAPMessagesDoNotWaitForEachOther: CAP messages are claimed in the
// database, not let through one at a time by a lock, so no step of one
// alert holds up another: not its recording fetch (a copy of it that
// arrives meanwhile is answered at once as a duplicate, without fetching
// the recording again) and not its text-to-speech (another alert goes
// through meanwhile). With the old process-wide lock, both waited.
func TestCAPMessagesDoNotWaitForEachOther(t *testing.T) {
	at := time.Date(2024, 7, 10, 6, 35, 0, 0, shanghai)
	alert := func(id, description, uri string) string {
		return capXML(t, "flood-red.xml", func(s string) string {
			s = strings.Replace(s, "https://alert.example.gov.cn/audio/41142141600000_20240710063000.mp3", uri, 1)
			s = strings.ReplaceAll(s, "示例县气象台", description)
			return strings.Replace(s, "41142141600000_20240710063000", id, 1)
		})
	}
	wait := func(t *testing.T, what string, ch <-chan resp) resp {
		t.Helper()
		select {
		case r := <-ch:
			return r
		case <-time.After(10 * time.Second):
			t.Fatalf("%s waited for the first alert", what)
		}
		return resp{}
	}

	t.Run("a copy while the recording is fetched", func(t *testing.T) {
		var mu sync.Mutex
		fetches := 0
		release, asked := make(chan struct{}), make(chan struct{}, 2)
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			fetches++
			mu.Unlock()
			asked <- struct{}{}
			<-release
			http.NotFound(w, r)
		}))
		defer srv.Close()
		defer close(release)
		e, _ := capEnv(t, at, func(o *Options) { o.CAPFetchAllow = []string{"127.0.0.1"} })
		xml := alert("A", "示例县气象台", srv.URL+"/slow.wav")
		first, copied := make(chan resp, 1), make(chan resp, 1)
		go func() { first <- e.postCAP(e.staff, xml) }()
		select {
		case <-asked:
		case <-time.After(10 * time.Second):
			t.Fatal("the recording was never asked for")
		}
		go func() { copied <- e.postCAP(e.staff, xml) }()
		var dup api.CAPResult
		e.must(http.StatusOK, wait(t, "the copy", copied), &dup)
		if !dup.Duplicate || !strings.Contains(dup.Note, "being acted on") {
			t.Fatalf("copy answered %+v", dup)
		}
		mu.Lock()
		n := fetches
		mu.Unlock()
		if n != 1 {
			t.Fatalf("the recording was fetched %d times", n)
		}
		release <- struct{}{}
		var res api.CAPResult
		e.must(http.StatusAccepted, <-first, &res)
		if res.Duplicate || res.BroadcastID == 0 {
			t.Fatalf("first answered %+v", res)
		}
		// Finished: a copy now is answered from the record.
		var again api.CAPResult
		e.must(http.StatusOK, e.postCAP(e.staff, xml), &again)
		if !again.Duplicate || again.BroadcastID != res.BroadcastID || !strings.Contains(again.Note, "acted on then") {
			t.Fatalf("copy after: %+v", again)
		}
	})

	t.Run("another alert while one is spoken", func(t *testing.T) {
		sp := &gatedSpeaker{hold: "慢慢说", held: make(chan struct{}, 1), release: make(chan struct{})}
		e, _ := capEnv(t, at, func(o *Options) { o.Speaker = sp })
		first, other := make(chan resp, 1), make(chan resp, 1)
		go func() { first <- e.postCAP(e.staff, alert("slow", "慢慢说", "http://192.0.2.1/refused.mp3")) }()
		select {
		case <-sp.held:
		case <-time.After(10 * time.Second):
			t.Fatal("the first alert was never spoken")
		}
		go func() {
			other <- e.postCAP(e.staff, alert("other", "示例县气象台", "http://192.0.2.1/refused.mp3"))
		}()
		r := wait(t, "another alert", other)
		close(sp.release)
		var res api.CAPResult
		e.must(http.StatusAccepted, r, &res)
		e.must(http.StatusAccepted, <-first, &res)
	})
}
