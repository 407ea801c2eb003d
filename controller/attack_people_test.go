package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cunxiang/cunxiang/api"
	"github.com/cunxiang/cunxiang/api/client"
	"github.com/cunxiang/cunxiang/playlists"
	"github.com/cunxiang/cunxiang/playlists/playliststest"
)

// Attacks on the two-person rule and on the approvers' logins, against the
// real controller over real sockets (issue 10, findings 4 and 8).

// peopleHarness is a running controller with the sample county's villages
// and one clip to broadcast.
func peopleHarness(t *testing.T) (*controllerHarness, int64) {
	t.Helper()
	h := startController(t, harnessOptions{})
	ctx := context.Background()
	if _, err := h.Client.ImportVillages(ctx, []byte(playliststest.VillagesCSV())); err != nil {
		t.Fatal(err)
	}
	clip, err := h.Client.UploadAudio(ctx, "alarm.wav", "紧急", shortClip(t))
	if err != nil {
		t.Fatal(err)
	}
	return h, clip.ID
}

// fromAddr is a client of h whose connections come from the loopback
// address ip (any of 127.0.0.0/8 works on Linux), as a second machine's
// would.
func fromAddr(h *controllerHarness, ip string) *client.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
	tr := &http.Transport{DialContext: d.DialContext}
	return &client.Client{URL: h.HTTPURL, HTTP: &http.Client{Transport: tr, Timeout: 30 * time.Second}}
}

// person creates a user and logs them in from ip.
func person(t *testing.T, h *controllerHarness, ip, username, role string) *client.Client {
	t.Helper()
	ctx := context.Background()
	if _, err := h.Client.CreateUser(ctx, api.UserRequest{Username: username, DisplayName: username, Role: role, Village: "", Password: "correct horse battery " + username}); err != nil {
		t.Fatalf("create %s: %v", username, err)
	}
	c, err := fromAddr(h, ip).Login(ctx, username, "correct horse battery "+username)
	if err != nil {
		t.Fatalf("log in %s: %v", username, err)
	}
	return c
}

// countyEmergency proposes a county-wide emergency as c; it must wait for
// a second person.
func countyEmergency(t *testing.T, c *client.Client, clip int64) api.Broadcast {
	t.Helper()
	b, err := c.CreateBroadcast(context.Background(), api.BroadcastRequest{
		AudioID: clip, Targets: playlists.Targets{All: true}, Priority: playlists.Emergency,
		Severity: 1, EventType: "missile", ExpiresAt: client.ExpiresAt(time.Now().Add(30 * time.Minute)),
	})
	if err != nil {
		t.Fatal(err)
	}
	if b.State != "pending_approval" {
		t.Fatalf("county-wide emergency is %s, want pending_approval", b.State)
	}
	return b
}

// refusedByTwoPersonRule checks that err is a 403 (or 409) naming the rule,
// and that broadcast id is still waiting.
func refusedByTwoPersonRule(t *testing.T, h *controllerHarness, what string, id int64, err error) {
	t.Helper()
	var ae *client.Error
	if !errors.As(err, &ae) || (ae.Status != http.StatusForbidden && ae.Status != http.StatusConflict) ||
		!strings.Contains(ae.Body.Error.Message, "two-person rule") {
		t.Fatalf("%s: %v, want 403 naming the two-person rule", what, err)
	}
	b, gerr := h.Client.GetBroadcast(context.Background(), id)
	if gerr != nil || b.State != "pending_approval" {
		t.Fatalf("after %s, broadcast %d is %q (%v), want pending_approval", what, id, b.State, gerr)
	}
}

// TestAttackSelfApprovalThroughMintedToken: an admin creates a county-wide
// emergency, mints an approver token and approves (or rejects) with it.
// Refused; a second real person approves.
func TestAttackSelfApprovalThroughMintedToken(t *testing.T) {
	h, clip := peopleHarness(t)
	ctx := context.Background()
	zhang := person(t, h, "127.0.0.1", "zhang", "admin")
	li := person(t, h, "127.0.0.1", "li", "approver")

	b := countyEmergency(t, zhang, clip)
	tok, err := zhang.CreateToken(ctx, api.TokenRequest{Name: "zhang's approver", Role: "approver"})
	if err != nil {
		t.Fatal(err)
	}
	mine := zhang.As(tok.Token)
	_, err = mine.ApproveBroadcast(ctx, b.ID)
	refusedByTwoPersonRule(t, h, "approval with a token the creator minted", b.ID, err)
	_, err = mine.RejectBroadcast(ctx, b.ID, "changed my mind")
	refusedByTwoPersonRule(t, h, "rejection with a token the creator minted", b.ID, err)

	// The creator's token as the creator, the creator's session as approver.
	b2 := countyEmergency(t, zhang.As(mustToken(t, zhang, "zhang's operator", "operator")), clip)
	_, err = zhang.ApproveBroadcast(ctx, b2.ID)
	refusedByTwoPersonRule(t, h, "approval with the session of the user who minted the creating token", b2.ID, err)

	ok, err := li.ApproveBroadcast(ctx, b.ID)
	if err != nil || ok.State != "sending" {
		t.Fatalf("approval by a second person: %+v %v", ok, err)
	}
}

// mustToken mints a token as c and returns its secret.
func mustToken(t *testing.T, c *client.Client, name, role string) string {
	t.Helper()
	tok, err := c.CreateToken(context.Background(), api.TokenRequest{Name: name, Role: role})
	if err != nil {
		t.Fatal(err)
	}
	return tok.Token
}

// TestAttackSelfApprovalThroughTokenMintedByToken: the same through a
// chain of tokens: an admin's token mints an approver token; and the
// installation's bootstrap admin token does the same.
func TestAttackSelfApprovalThroughTokenMintedByToken(t *testing.T) {
	h, clip := peopleHarness(t)
	ctx := context.Background()
	zhang := person(t, h, "127.0.0.1", "zhang", "admin")
	li := person(t, h, "127.0.0.1", "li", "approver")

	script := zhang.As(mustToken(t, zhang, "zhang's script", "admin"))
	grandchild := script.As(mustToken(t, script, "script's approver", "approver"))
	b := countyEmergency(t, zhang, clip)
	_, err := grandchild.ApproveBroadcast(ctx, b.ID)
	refusedByTwoPersonRule(t, h, "approval with a token minted by the creator's token", b.ID, err)

	// The bootstrap admin (the first-start token) is one person with every
	// token minted from it.
	boot := h.Client
	child := boot.As(mustToken(t, boot, "ops", "admin"))
	bootGrandchild := child.As(mustToken(t, child, "ops approver", "approver"))
	b2 := countyEmergency(t, boot, clip)
	_, err = bootGrandchild.ApproveBroadcast(ctx, b2.ID)
	refusedByTwoPersonRule(t, h, "approval of the bootstrap admin's broadcast with a token minted from it", b2.ID, err)

	for _, id := range []int64{b.ID, b2.ID} {
		if ok, err := li.ApproveBroadcast(ctx, id); err != nil || ok.State != "sending" {
			t.Fatalf("approval of %d by a second person: %+v %v", id, ok, err)
		}
	}
}

// TestAttackLockOutApproversByName: a stranger at 127.0.0.2 fails a
// hundred logins as every approver by name; the approver at 127.0.0.3 logs
// in at once and approves the county-wide emergency.
func TestAttackLockOutApproversByName(t *testing.T) {
	h, clip := peopleHarness(t)
	ctx := context.Background()
	approvers := []string{"li", "chen", "zhou"}
	for _, u := range approvers {
		if _, err := h.Client.CreateUser(ctx, api.UserRequest{Username: u, DisplayName: u, Role: "approver", Village: "", Password: "correct horse battery " + u}); err != nil {
			t.Fatal(err)
		}
	}
	b := countyEmergency(t, h.Client, clip)

	stranger := fromAddr(h, "127.0.0.2")
	refused := 0
	for i := range 100 {
		_, err := stranger.Login(ctx, approvers[i%len(approvers)], fmt.Sprintf("guess %d", i))
		var ae *client.Error
		if !errors.As(err, &ae) {
			t.Fatalf("guess %d: %v", i, err)
		}
		if ae.Status == http.StatusTooManyRequests {
			refused++
		}
	}
	if refused == 0 {
		t.Fatal("a hundred wrong passwords from one address were never slowed down")
	}

	li, err := fromAddr(h, "127.0.0.3").Login(ctx, "li", "correct horse battery li")
	if err != nil {
		t.Fatalf("the approver, from their own address, after a stranger's guesses: %v", err)
	}
	ok, err := li.ApproveBroadcast(ctx, b.ID)
	if err != nil || ok.State != "sending" {
		t.Fatalf("approval: %+v %v", ok, err)
	}
	// The guesses are on record.
	entries, err := h.Client.Audit(ctx)
	if err != nil {
		t.Fatal(err)
	}
	failed := 0
	for _, e := range entries {
		if e.Action == "login.failed" {
			failed++
		}
	}
	if failed == 0 {
		t.Error("no failed login in the audit log")
	}
}

// TestAttackThrottleClearedByAdmin: someone behind the approver's own
// address (a shared township NAT) guesses the approver's password until
// logins as them from there are refused; the admin sees the limit, clears
// it, and the approver logs in at once and approves.
func TestAttackThrottleClearedByAdmin(t *testing.T) {
	h, clip := peopleHarness(t)
	ctx := context.Background()
	if _, err := h.Client.CreateUser(ctx, api.UserRequest{Username: "li", DisplayName: "li", Role: "approver", Village: "", Password: "correct horse battery li"}); err != nil {
		t.Fatal(err)
	}
	b := countyEmergency(t, h.Client, clip)
	office := fromAddr(h, "127.0.0.4")
	var ae *client.Error
	for i := 0; ; i++ {
		_, err := office.Login(ctx, "li", fmt.Sprintf("guess %d", i))
		if errors.As(err, &ae) && ae.Status == http.StatusTooManyRequests {
			break
		}
		if i == 50 {
			t.Fatalf("fifty wrong passwords were never slowed down: %v", err)
		}
	}
	if _, err := office.Login(ctx, "li", "correct horse battery li"); !errors.As(err, &ae) || ae.Status != http.StatusTooManyRequests {
		t.Fatalf("the right password from the guessing address before the admin acts: %v, want 429", err)
	}

	rows, err := h.Client.LoginThrottles(ctx)
	if err != nil {
		t.Fatalf("the admin lists the login limits: %v", err)
	}
	found := false
	for _, r := range rows {
		if r.Addr == "127.0.0.4" && r.User == "li" && r.RetryAfterS > 0 && r.Failures > 0 {
			found = true
		}
	}
	if !found {
		t.Fatalf("login limits %+v do not show li refused from 127.0.0.4", rows)
	}
	if n, err := h.Client.ClearLoginThrottles(ctx, "127.0.0.4", ""); err != nil || n == 0 {
		t.Fatalf("clear: %d %v", n, err)
	}
	li, err := office.Login(ctx, "li", "correct horse battery li")
	if err != nil {
		t.Fatalf("the approver after the admin cleared the limit: %v", err)
	}
	if ok, err := li.ApproveBroadcast(ctx, b.ID); err != nil || ok.State != "sending" {
		t.Fatalf("approval: %+v %v", ok, err)
	}
	entries, err := h.Client.Audit(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Action == "login_throttle.clear" {
			return
		}
	}
	t.Error("clearing the login limit is not in the audit log")
}
