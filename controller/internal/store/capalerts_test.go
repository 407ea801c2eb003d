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
	sent := time.Date(2024, 7, 10, 6, 30, 0, 0, time.FixedZone("CST", 8*3600))
	raw := []byte("<?xml version=\"1.0\" encoding=\"GB18030\"?><alert>\xb1\xa9\xd3\xea</alert>") // 暴雨 in GB18030: not UTF-8
	alert := store.CAPAlert{Sender: "411421000000", Identifier: "A1", Sent: sent, MsgType: "Alert", Status: "Actual", ReceivedBy: "clerk", Raw: raw}
	got, claimed, err := db.ClaimCAPAlert(ctx, alert)
	if err != nil || !claimed || got.ID == 0 || !got.ReceivedAt.Equal(t0) || !got.InFlight || got.BroadcastID != 0 {
		t.Fatalf("claim: %+v, %v, %v", got, claimed, err)
	}
	// The broadcast it starts names itself on the claim.
	b, err := db.CreateBroadcast(store.WithCAPClaim(ctx, alert.Sender, alert.Identifier), store.Broadcast{AudioID: a.ID,
		Targets: playlists.Targets{All: true}, Priority: playlists.Urgent, Severity: 2, ExpiresAt: t0.Add(time.Hour), CreatedBy: "li", CreatedByKey: "user/1"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	// A copy while the first is in flight is not claimed again.
	clk.Advance(time.Minute)
	if prev, claimed, err := db.ClaimCAPAlert(ctx, alert); err != nil || claimed || !prev.InFlight || prev.BroadcastID != b.ID || !prev.ReceivedAt.Equal(t0) {
		t.Fatalf("copy in flight: %+v, %v, %v", prev, claimed, err)
	}
	if released, err := db.ReleaseCAPAlert(ctx, alert.Sender, alert.Identifier); err != nil || released {
		t.Fatalf("a claim that started a broadcast was released (%v %v): a copy would broadcast twice", released, err)
	}
	if err := db.FinishCAPAlert(ctx, alert.Sender, alert.Identifier, b.ID, nil); err != nil {
		t.Fatal(err)
	}

	read, err := db.CAPAlert(ctx, "411421000000", "A1")
	if err != nil {
		t.Fatal(err)
	}
	if !read.Sent.Equal(sent) || read.BroadcastID != b.ID || read.MsgType != "Alert" || read.Status != "Actual" || read.InFlight ||
		read.ReceivedBy != "clerk" || !bytes.Equal(read.Raw, raw) || read.Cancelled == nil || len(read.Cancelled) != 0 {
		t.Fatalf("read back %+v", read)
	}

	// The same sender and identifier is the same message.
	if prev, claimed, err := db.ClaimCAPAlert(ctx, alert); err != nil || claimed || prev.InFlight || prev.BroadcastID != b.ID {
		t.Fatalf("duplicate: %+v, %v, %v", prev, claimed, err)
	}
	// Another sender may use the same identifier.
	other := alert
	other.Sender = "yjj@example.gov.cn"
	if _, claimed, err := db.ClaimCAPAlert(ctx, other); err != nil || !claimed {
		t.Fatal(claimed, err)
	}
	// A refused message is released: it may be sent again, corrected.
	if released, err := db.ReleaseCAPAlert(ctx, other.Sender, other.Identifier); err != nil || !released {
		t.Fatal(released, err)
	}
	if _, err := db.CAPAlert(ctx, other.Sender, other.Identifier); cx.Code(err) != cx.ENOTFOUND {
		t.Fatalf("released claim: %v", err)
	}
	if _, claimed, err := db.ClaimCAPAlert(ctx, other); err != nil || !claimed {
		t.Fatal(claimed, err)
	}

	cancel := store.CAPAlert{Sender: "411421000000", Identifier: "C1", Sent: sent.Add(time.Hour), MsgType: "Cancel", Status: "Actual",
		ReceivedBy: "clerk", Raw: []byte("<alert/>")}
	if _, claimed, err := db.ClaimCAPAlert(ctx, cancel); err != nil || !claimed {
		t.Fatal(claimed, err)
	}
	if err := db.FinishCAPAlert(ctx, cancel.Sender, cancel.Identifier, 0, []int64{b.ID, 7}); err != nil {
		t.Fatal(err)
	}
	read, err = db.CAPAlert(ctx, "411421000000", "C1")
	if err != nil || read.BroadcastID != 0 || !reflect.DeepEqual(read.Cancelled, []int64{b.ID, 7}) || !read.ReceivedAt.Equal(t0.Add(time.Minute)) {
		t.Fatalf("cancel read back %+v, %v", read, err)
	}

	if _, err := db.CAPAlert(ctx, "411421000000", "nope"); cx.Code(err) != cx.ENOTFOUND {
		t.Fatalf("unknown: %v", err)
	}
	if err := db.FinishCAPAlert(ctx, "411421000000", "nope", 0, nil); cx.Code(err) != cx.ENOTFOUND {
		t.Fatalf("finish unknown: %v", err)
	}
	// Only known broadcasts can be named.
	bad := alert
	bad.Identifier = "A2"
	if _, claimed, err := db.ClaimCAPAlert(ctx, bad); err != nil || !claimed {
		t.Fatal(claimed, err)
	}
	if err := db.FinishCAPAlert(ctx, bad.Sender, bad.Identifier, 999, nil); err == nil {
		t.Fatal("a CAP message naming an unknown broadcast was stored")
	}
}

// TestCAPClaimOutlivesACrash: a claim whose process died is taken over by
// a copy only if it started no broadcast.
func TestCAPClaimOutlivesACrash(t *testing.T) {
	ctx := context.Background()
	db, _, path := openDB(t)
	seedVillages(t, db)
	a := clip(t, db, "ac")
	made := store.CAPAlert{Sender: "s", Identifier: "made", Sent: t0, MsgType: "Alert", Status: "Actual", ReceivedBy: "clerk"}
	lost := made
	lost.Identifier = "lost"
	for _, m := range []store.CAPAlert{made, lost} {
		if _, claimed, err := db.ClaimCAPAlert(ctx, m); err != nil || !claimed {
			t.Fatal(claimed, err)
		}
	}
	b, err := db.CreateBroadcast(store.WithCAPClaim(ctx, "s", "made"), store.Broadcast{AudioID: a.ID, Targets: playlists.Targets{All: true},
		Priority: playlists.Routine, Severity: 4, ExpiresAt: t0.Add(time.Hour), CreatedBy: "li", CreatedByKey: "user/1"}, nil)
	if err != nil {
		t.Fatal(err)
	}

	// The process dies; another opens the database.
	db2, err := store.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db2.Close()
	db2.Now = db.Now
	if prev, claimed, err := db2.ClaimCAPAlert(ctx, made); err != nil || claimed || prev.BroadcastID != b.ID {
		t.Fatalf("a copy of a message that broadcast before the crash: %+v %v %v", prev, claimed, err)
	}
	if _, claimed, err := db2.ClaimCAPAlert(ctx, lost); err != nil || !claimed {
		t.Fatalf("a copy of a message that made nothing before the crash: %v %v", claimed, err)
	}
	if _, claimed, _ := db2.ClaimCAPAlert(ctx, lost); claimed {
		t.Fatal("a claim was taken over twice")
	}
	if released, err := db.ReleaseCAPAlert(ctx, "s", "lost"); err != nil || released {
		t.Fatalf("the dead process released a claim taken over: %v %v", released, err)
	}
}
