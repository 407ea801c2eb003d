package villages_test

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/cunxiang/cunxiang/api"
	"github.com/cunxiang/cunxiang/controller/internal/cx"
	"github.com/cunxiang/cunxiang/controller/internal/people"
	"github.com/cunxiang/cunxiang/controller/internal/store"
	"github.com/cunxiang/cunxiang/controller/internal/villages"
)

var (
	admin    = people.Person{Name: "root", Key: "user/1", Role: api.RoleAdmin, From: "10.0.0.1"}
	operator = people.Person{Name: "li", Key: "user/2", Role: api.RoleOperator}
)

const (
	east  = "110101001001" // 东村, a box
	west  = "110101001002" // 西村, no box
	south = "110101002001" // 南村, a box
)

const list = "code,name,township,lat,lon,device\n" +
	east + ",东村,东镇,39.9,116.4,agent\n" +
	west + ",西村,东镇,39.9,116.3,manual\n" +
	south + ",南村,南镇,39.8,116.3,agent\n"

// broker stands in for an external broker's accounts and the embedded
// broker's sessions; it fails while down.
type broker struct {
	mu       sync.Mutex
	down     bool
	accounts map[string]string // village -> username
	cut      []string          // villages whose sessions were cut
}

func (b *broker) PutBox(_ context.Context, village, username, _ string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.down {
		return errors.New("broker down")
	}
	b.accounts[village] = username
	return nil
}

func (b *broker) DeleteBox(_ context.Context, village, _ string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.down {
		return errors.New("broker down")
	}
	delete(b.accounts, village)
	return nil
}

func (b *broker) Revoke(village string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.cut = append(b.cut, village)
}

func (b *broker) setDown(down bool) { b.mu.Lock(); b.down = down; b.mu.Unlock() }

func newService(t *testing.T) (*villages.Service, *store.DB, *broker) {
	t.Helper()
	ctx := context.Background()
	db, err := store.Open(ctx, filepath.Join(t.TempDir(), "cx.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	b := &broker{accounts: map[string]string{}}
	svc, err := villages.New(villages.Options{Store: db, Accounts: b, Sessions: b})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Import(ctx, admin, []byte(list)); err != nil {
		t.Fatal(err)
	}
	return svc, db, b
}

func reason(err error) string { r, _ := cx.Reason(err); return r }

// snapshot is what the store holds of the villages and the audit log.
func snapshot(t *testing.T, db *store.DB) ([]store.VillageState, int) {
	t.Helper()
	vs, err := db.VillageStates(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	log, err := db.AuditLog(context.Background(), store.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	return vs, len(log)
}

// TestImportRefusals: a list the service refuses changes nothing, not
// even its good lines; the audit log records only imports made.
func TestImportRefusals(t *testing.T) {
	ctx := context.Background()
	svc, db, _ := newService(t)
	tests := []struct {
		name   string
		p      people.Person
		csv    []byte
		code   string
		reason string
	}{
		{"operator", operator, []byte(list), cx.EFORBIDDEN, api.ReasonForbidden},
		{"one bad line among good ones", admin, []byte("code,name,township,lat,lon,device\n" + east + ",新东村,东镇,39.9,116.4,agent\n" + south + ",南村,南镇,91,116.3,agent\n"), cx.EINVALID, api.ReasonCSVInvalid},
		{"a formula", admin, []byte("code,name,township,lat,lon,device\n" + east + ",=HYPERLINK(\"x\"),东镇,39.9,116.4,agent\n"), cx.EINVALID, api.ReasonCSVInvalid},
		{"too large", admin, append([]byte(list), bytes.Repeat([]byte("x"), villages.MaxCSVBytes)...), cx.ETOOLARGE, api.ReasonCSVTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before, audited := snapshot(t, db)
			_, err := svc.Import(ctx, tt.p, tt.csv)
			if cx.Code(err) != tt.code || reason(err) != tt.reason {
				t.Fatalf("err = %v (%s/%s), want %s/%s", err, cx.Code(err), reason(err), tt.code, tt.reason)
			}
			after, auditedAfter := snapshot(t, db)
			if !slices.EqualFunc(before, after, func(a, b store.VillageState) bool { return a.Village == b.Village }) || auditedAfter != audited {
				t.Fatalf("a refused import changed the store: %+v -> %+v, audit %d -> %d", before, after, audited, auditedAfter)
			}
		})
	}

	counts, err := svc.Import(ctx, admin, []byte("code,name,township,lat,lon,device\n"+east+",新东村,东镇,39.9,116.4,agent\n110101003001,北村,北镇,39.7,116.2,manual\n"))
	if err != nil || counts != (store.ImportCounts{Created: 1, Updated: 1, Total: 2}) {
		t.Fatalf("import = %+v, %v", counts, err)
	}
	log, _ := db.AuditLog(ctx, store.AuditFilter{Object: "villages"})
	if len(log) != 2 || log[0].Actor != "root" || log[0].RemoteAddr != "10.0.0.1" || log[0].Params["created"] != "1" || log[0].Params["updated"] != "1" {
		t.Fatalf("audit = %+v", log)
	}
}

// TestEdit: an edit is checked by the import's rules; a refused one
// changes nothing; an accepted one is audited field by field.
func TestEdit(t *testing.T) {
	ctx := context.Background()
	svc, db, _ := newService(t)
	ptr := func(s string) *string { return &s }
	lat := 95.0
	if _, err := svc.Edit(ctx, operator, east, api.VillageChange{Name: ptr("x")}); reason(err) != api.ReasonForbidden {
		t.Fatalf("operator: %v", err)
	}
	if _, err := svc.Edit(ctx, admin, east, api.VillageChange{Name: ptr("东村二"), Lat: &lat}); reason(err) != api.ReasonVillageInvalid {
		t.Fatalf("lat 95: %v", err)
	}
	if v, _ := db.VillageState(ctx, east); v.Name != "东村" || v.Lat != 39.9 {
		t.Fatalf("a refused edit changed the village: %+v", v)
	}
	if _, err := svc.Edit(ctx, admin, "110101009999", api.VillageChange{Name: ptr("x")}); cx.Code(err) != cx.ENOTFOUND {
		t.Fatalf("unknown village: %v", err)
	}
	v, err := svc.Edit(ctx, admin, east, api.VillageChange{Name: ptr("东村二"), Device: ptr("manual")})
	if err != nil || v.Name != "东村二" || v.Device != "manual" || v.Township != "东镇" {
		t.Fatalf("edit = %+v, %v", v, err)
	}
	log, _ := db.AuditLog(ctx, store.AuditFilter{Object: "village/" + east})
	if len(log) != 1 || log[0].Params["name_from"] != "东村" || log[0].Params["name_to"] != "东村二" || log[0].Params["device_to"] != "manual" || log[0].Params["lat_from"] != "" {
		t.Fatalf("audit = %+v", log)
	}
}

// TestBoxes: a box enrolls with a token; revoking it deletes its broker
// account and cuts its sessions, or, if the broker refuses, revokes
// nothing; replacing it revokes the old one and issues a token.
func TestBoxes(t *testing.T) {
	ctx := context.Background()
	svc, db, b := newService(t)
	if _, err := svc.EnrollToken(ctx, operator, east); reason(err) != api.ReasonForbidden {
		t.Fatalf("operator: %v", err)
	}
	et, err := svc.EnrollToken(ctx, admin, east)
	if err != nil || et.Village != east {
		t.Fatalf("token = %+v, %v", et, err)
	}
	if _, err := svc.Enroll(ctx, "10.0.0.9", api.EnrollRequest{Village: east}); reason(err) != api.ReasonEnrollTokenMissing {
		t.Fatalf("no token: %v", err)
	}
	if _, err := svc.Enroll(ctx, "10.0.0.9", api.EnrollRequest{Token: et.Token, AgentVersion: string(bytes.Repeat([]byte("v"), villages.MaxAgentVersion+1))}); reason(err) != api.ReasonAgentVersionTooLong {
		t.Fatalf("long version: %v", err)
	}
	b.setDown(true)
	if _, err := svc.Enroll(ctx, "10.0.0.9", api.EnrollRequest{Token: et.Token}); reason(err) != api.ReasonBrokerEnrollFailed {
		t.Fatalf("broker down: %v", err)
	}
	b.setDown(false)
	creds, err := svc.Enroll(ctx, "10.0.0.9", api.EnrollRequest{Token: et.Token, AgentVersion: "1.2"}) // the token survived the failure
	if err != nil || creds.Village != east || b.accounts[east] != creds.Username || !slices.Equal(b.cut, []string{east}) {
		t.Fatalf("enroll = %+v, %v; broker %+v", creds, err, b)
	}
	log, _ := db.AuditLog(ctx, store.AuditFilter{Action: "agent"})
	if len(log) != 1 || log[0].Actor != store.AgentUsername(east) || log[0].RemoteAddr != "10.0.0.9" || log[0].Params["version"] != "1.2" {
		t.Fatalf("audit = %+v", log)
	}

	b.setDown(true)
	if _, err := svc.Revoke(ctx, admin, east); reason(err) != api.ReasonBrokerRevokeFailed {
		t.Fatalf("revoke with the broker down: %v", err)
	}
	if v, _ := db.VillageState(ctx, east); v.Agent == nil || v.Agent.Revoked {
		t.Fatalf("revoked although the broker kept the account: %+v", v.Agent)
	}
	b.setDown(false)
	v, err := svc.Revoke(ctx, admin, east)
	if err != nil || v.Agent == nil || !v.Agent.Revoked || b.accounts[east] != "" || len(b.cut) != 2 {
		t.Fatalf("revoke = %+v, %v; broker %+v", v.Agent, err, b)
	}

	if _, err := svc.Replace(ctx, admin, west); reason(err) != api.ReasonVillageNoBox {
		t.Fatalf("replace a village without a box: %v", err)
	}
	// Enrolled again, then replaced: revoked and a new token.
	et, _ = svc.EnrollToken(ctx, admin, east)
	if _, err := svc.Enroll(ctx, "10.0.0.9", api.EnrollRequest{Token: et.Token}); err != nil {
		t.Fatal(err)
	}
	nt, err := svc.Replace(ctx, admin, east)
	if v, _ := db.VillageState(ctx, east); err != nil || nt.Token == "" || nt.Token == et.Token || !v.Agent.Revoked {
		t.Fatalf("replace = %+v, %v; agent %+v", nt, err, v.Agent)
	}
	log, _ = db.AuditLog(ctx, store.AuditFilter{Object: "village/" + east, Action: "village"})
	if len(log) == 0 || log[0].Params["replacement"] != "yes" {
		t.Fatalf("audit = %+v", log)
	}
}

// TestConfirmRules: a village account confirms only for its own village,
// and an occurrence goes with a schedule.
func TestConfirmRules(t *testing.T) {
	ctx := context.Background()
	svc, _, _ := newService(t)
	cun := people.Person{Name: "cun", Key: "user/5", Role: api.RoleVillage, Village: west}
	tests := []struct {
		name   string
		p      people.Person
		c      store.Confirmation
		reason string
	}{
		{"viewer", people.Person{Name: "v", Role: api.RoleViewer}, store.Confirmation{Village: west, BroadcastID: 1}, api.ReasonForbidden},
		{"another village", cun, store.Confirmation{Village: south, BroadcastID: 1}, api.ReasonOtherVillage},
		{"occurrence of a broadcast", cun, store.Confirmation{Village: west, BroadcastID: 1, Occurrence: time.Now()}, api.ReasonConfirmWhich},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := svc.Confirm(ctx, tt.p, tt.c); reason(err) != tt.reason {
				t.Fatalf("err = %v, want %s", err, tt.reason)
			}
		})
	}
}
