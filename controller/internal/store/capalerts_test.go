package store_test

import (
	"bytes"
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/cunxiang/cunxiang/controller/internal/cx"
	"github.com/cunxiang/cunxiang/controller/internal/store"
	"github.com/cunxiang/cunxiang/playlists"
)

func TestCAPAlerts(t *testing.T) {
	ctx := context.Background()
	db, clk, _ := openDB(t)
	seedVillages(t, db)
	a := clip(t, db, "ab")
	b, err := db.CreateBroadcast(ctx, store.Broadcast{AudioID: a.ID, Targets: playlists.Targets{All: true}, Priority: playlists.Urgent,
		Severity: 2, ExpiresAt: t0.Add(time.Hour), CreatedBy: "li", CreatedByKey: "user/1"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	sent := time.Date(2024, 7, 10, 6, 30, 0, 0, time.FixedZone("CST", 8*3600))
	raw := []byte("<?xml version=\"1.0\" encoding=\"GB18030\"?><alert>\xb1\xa9\xd3\xea</alert>") // 暴雨 in GB18030: not UTF-8
	alert := store.CAPAlert{Sender: "411421000000", Identifier: "A1", Sent: sent, MsgType: "Alert", Status: "Actual",
		BroadcastID: b.ID, ReceivedBy: "clerk", Raw: raw}
	got, err := db.CreateCAPAlert(ctx, alert)
	if err != nil || got.ID == 0 || !got.ReceivedAt.Equal(t0) {
		t.Fatalf("create: %+v, %v", got, err)
	}

	read, err := db.CAPAlert(ctx, "411421000000", "A1")
	if err != nil {
		t.Fatal(err)
	}
	if !read.Sent.Equal(sent) || read.BroadcastID != b.ID || read.MsgType != "Alert" || read.Status != "Actual" ||
		read.ReceivedBy != "clerk" || !bytes.Equal(read.Raw, raw) || read.Cancelled == nil || len(read.Cancelled) != 0 {
		t.Fatalf("read back %+v", read)
	}

	// The same sender and identifier is the same message.
	clk.Advance(time.Minute)
	if _, err := db.CreateCAPAlert(ctx, alert); cx.Code(err) != cx.ECONFLICT {
		t.Fatalf("duplicate: %v", err)
	}
	// Another sender may use the same identifier.
	other := alert
	other.Sender, other.BroadcastID = "yjj@example.gov.cn", 0
	if _, err := db.CreateCAPAlert(ctx, other); err != nil {
		t.Fatal(err)
	}

	cancel := store.CAPAlert{Sender: "411421000000", Identifier: "C1", Sent: sent.Add(time.Hour), MsgType: "Cancel", Status: "Actual",
		Cancelled: []int64{b.ID, 7}, ReceivedBy: "clerk", Raw: []byte("<alert/>")}
	if _, err := db.CreateCAPAlert(ctx, cancel); err != nil {
		t.Fatal(err)
	}
	read, err = db.CAPAlert(ctx, "411421000000", "C1")
	if err != nil || read.BroadcastID != 0 || !reflect.DeepEqual(read.Cancelled, []int64{b.ID, 7}) || !read.ReceivedAt.Equal(t0.Add(time.Minute)) {
		t.Fatalf("cancel read back %+v, %v", read, err)
	}

	if _, err := db.CAPAlert(ctx, "411421000000", "nope"); cx.Code(err) != cx.ENOTFOUND {
		t.Fatalf("unknown: %v", err)
	}
	// Only known broadcasts can be named.
	bad := alert
	bad.Identifier, bad.BroadcastID = "A2", 999
	if _, err := db.CreateCAPAlert(ctx, bad); err == nil {
		t.Fatal("a CAP message naming an unknown broadcast was stored")
	}
}
