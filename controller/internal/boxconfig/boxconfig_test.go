package boxconfig_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/cunxiang/cunxiang/api"
	"github.com/cunxiang/cunxiang/controller/internal/boxconfig"
	"github.com/cunxiang/cunxiang/controller/internal/cx"
	"github.com/cunxiang/cunxiang/controller/internal/delivery/deliverytest"
	"github.com/cunxiang/cunxiang/controller/internal/people"
	"github.com/cunxiang/cunxiang/controller/internal/store"
	"github.com/cunxiang/cunxiang/playlists"
)

var admin = people.Person{Name: "root", Key: "user/1", Role: api.RoleAdmin, From: "10.0.0.1"}

func TestPut(t *testing.T) {
	ctx := context.Background()
	db, err := store.Open(ctx, filepath.Join(t.TempDir(), "cx.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.ImportVillages(ctx, []store.Village{{Code: "110101001001", Name: "东村", Township: "东镇", Lat: 39.9, Lon: 116.4, Device: "agent"}}); err != nil {
		t.Fatal(err)
	}
	b := &deliverytest.Broker{DB: db}
	svc, err := boxconfig.New(boxconfig.Options{Store: db, Delivery: b, DeliverWait: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	quiet := make([]playlists.QuietWindow, boxconfig.MaxQuietWindows+1)
	tests := []struct {
		name    string
		p       people.Person
		cfg     api.BoxConfig
		down    bool
		reason  string // "" for stored
		pending bool
	}{
		{"operator", people.Person{Name: "op", Role: api.RoleOperator}, api.BoxConfig{Volume: 50}, false, api.ReasonForbidden, false},
		{"volume", admin, api.BoxConfig{Volume: 101}, false, api.ReasonConfigVolume, false},
		{"too many quiet windows", admin, api.BoxConfig{QuietHours: quiet}, false, api.ReasonConfigQuietTooMany, false},
		{"unknown zone", admin, api.BoxConfig{Timezone: "Mars/Olympus"}, false, api.ReasonTimezoneUnknown, false},
		{"stored", admin, api.BoxConfig{Volume: 60, QuietHours: []playlists.QuietWindow{{From: "22:00", To: "06:00"}}}, false, "", false},
		{"broker down", admin, api.BoxConfig{Volume: 70}, true, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b.SetDown(tt.down)
			sent := b.Sent("")
			before, _ := db.AuditLog(ctx, store.AuditFilter{Object: "township"})
			bc, pending, err := svc.Put(ctx, tt.p, store.ScopeTownship, "东镇", tt.cfg)
			after, _ := db.AuditLog(ctx, store.AuditFilter{Object: "township"})
			if tt.reason != "" {
				if r, _ := cx.Reason(err); r != tt.reason || len(after) != len(before) {
					t.Fatalf("err = %v (reason %q), want %s; audit %d -> %d", err, r, tt.reason, len(before), len(after))
				}
				return
			}
			if err != nil || pending != tt.pending || bc.Config.Volume != tt.cfg.Volume || bc.UpdatedBy != tt.p.Name {
				t.Fatalf("put = %+v, pending %v, %v", bc, pending, err)
			}
			if len(after) != len(before)+1 || after[0].Action != "config.put" || after[0].Actor != tt.p.Name || after[0].Params["volume"] == "" {
				t.Fatalf("audit = %+v", after)
			}
			if want := sent + 1; !tt.down && b.Sent("") != want {
				t.Fatalf("sent %d, want %d", b.Sent(""), want)
			}
		})
	}
}
