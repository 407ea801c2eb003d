package httpapi

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cunxiang/cunxiang/api"
)

// mintToken mints an API token with POST /api/v1/tokens as by.
func (e *env) mintToken(by, name, role string) api.Token {
	e.t.Helper()
	var tok api.Token
	e.must(http.StatusCreated, e.do("POST", "/api/v1/tokens", by, map[string]string{"name": name, "role": role}), &tok)
	return tok
}

// TestTwoPersonRuleBindsMintedTokens: an admin who creates a county-wide
// emergency cannot approve or reject it with an approver token they minted,
// nor with a token minted by that token; the tokens list says whose each
// token is; a different person approves.
func TestTwoPersonRuleBindsMintedTokens(t *testing.T) {
	e := newEnv(t)
	e.importVillages(villagesCSV)
	audio, _ := e.setupLibrary()
	admin := e.user("zhang", "admin", "")
	li := e.user("li", "approver", "")

	var b api.Broadcast
	e.must(http.StatusAccepted, e.do("POST", "/api/v1/broadcasts", admin, e.bcast(audio[0].ID, func(m map[string]any) {
		m["targets"] = map[string]any{"all": true}
	})), &b)
	if b.State != statePending {
		t.Fatalf("county-wide emergency: %s", b.State)
	}
	mintedAdmin := e.mintToken(admin, "zhang's script", "admin")
	approver := e.mintToken(admin, "zhang's approver", "approver")
	grandchild := e.mintToken(mintedAdmin.Token, "script's approver", "approver")
	var me api.Me
	e.must(http.StatusOK, e.do("GET", "/api/v1/me", admin, nil), &me)
	for _, tok := range []api.Token{mintedAdmin, approver, grandchild} {
		if tok.OwnerUserID != me.UserID || tok.OwnerUserID == 0 {
			t.Errorf("token %q owned by user %d, want zhang (%d)", tok.Name, tok.OwnerUserID, me.UserID)
		}
	}
	path := fmt.Sprintf("/api/v1/broadcasts/%d", b.ID)
	for _, tok := range []api.Token{approver, grandchild, mintedAdmin} {
		for _, act := range []struct {
			verb string
			body any
		}{{"approve", nil}, {"reject", map[string]string{"reason": "mine"}}} {
			r := e.do("POST", path+"/"+act.verb, tok.Token, act.body)
			if r.Status != http.StatusForbidden || !strings.Contains(r.errBody(t).Error.Message, "two-person rule") {
				t.Fatalf("%s with %q: %d %s, want 403 by the two-person rule", act.verb, tok.Name, r.Status, r.Body)
			}
		}
	}
	if got := e.getBroadcast(b.ID); got.State != statePending || len(e.pub.broadcasts) != 0 {
		t.Fatalf("after self-approval attempts: state %s, %d published", got.State, len(e.pub.broadcasts))
	}

	// The tokens list shows whose each token is.
	var list struct{ Tokens []api.Token }
	e.must(http.StatusOK, e.do("GET", "/api/v1/tokens", e.admin, nil), &list)
	owners := map[string]int64{}
	for _, tok := range list.Tokens {
		owners[tok.Name] = tok.OwnerUserID
	}
	if owners["zhang's approver"] != me.UserID || owners["admin"] != 0 {
		t.Errorf("owners in the list: %v", owners)
	}

	var ok api.Broadcast
	e.must(http.StatusOK, e.do("POST", path+"/approve", li, nil), &ok)
	if ok.State != stateSending || ok.ApprovedBy != "li" {
		t.Fatalf("approved by a second person: %+v", ok)
	}
}

// TestBootstrapTokenIsOnePerson: tokens the first admin token mints, and
// theirs, are the installation's bootstrap admin: they cannot approve its
// broadcasts, nor it theirs.
func TestBootstrapTokenIsOnePerson(t *testing.T) {
	e := newEnv(t)
	e.importVillages(villagesCSV)
	audio, _ := e.setupLibrary()
	child := e.mintToken(e.admin, "ops", "admin")
	grandchild := e.mintToken(child.Token, "ops approver", "approver")
	if child.OwnerTokenID == 0 || grandchild.OwnerTokenID != child.OwnerTokenID {
		t.Fatalf("owners: %d, %d, want the bootstrap token's id", child.OwnerTokenID, grandchild.OwnerTokenID)
	}
	all := func(m map[string]any) { m["targets"] = map[string]any{"all": true} }
	for _, tt := range []struct{ name, creator, approver string }{
		{"bootstrap creates, grandchild approves", e.admin, grandchild.Token},
		{"child creates, bootstrap approves", child.Token, e.admin},
	} {
		var b api.Broadcast
		e.must(http.StatusAccepted, e.do("POST", "/api/v1/broadcasts", tt.creator, e.bcast(audio[0].ID, all)), &b)
		if r := e.do("POST", fmt.Sprintf("/api/v1/broadcasts/%d/approve", b.ID), tt.approver, nil); r.Status != http.StatusForbidden {
			t.Errorf("%s: %d %s, want 403", tt.name, r.Status, r.Body)
		}
	}
}

// TestCAPCarriesTheTokensPerson: a CAP alert sent with an operator token an
// admin minted is that admin's broadcast: the admin cannot approve it.
func TestCAPCarriesTheTokensPerson(t *testing.T) {
	e, _ := capEnv(t, time.Date(2024, 7, 10, 6, 35, 0, 0, shanghai))
	admin := e.user("zhang", "admin", "")
	wang := e.user("wang", "approver", "")
	feed := e.mintToken(admin, "county CAP feed", "operator")
	var red api.CAPResult
	e.must(http.StatusAccepted, e.postCAP(feed.Token, capXML(t, "flood-red.xml", nil)), &red)
	if red.State != statePending {
		t.Fatalf("red warning %+v", red)
	}
	path := fmt.Sprintf("/api/v1/broadcasts/%d/approve", red.BroadcastID)
	if r := e.do("POST", path, admin, nil); r.Status != http.StatusForbidden || !strings.Contains(r.errBody(t).Error.Message, "two-person rule") {
		t.Fatalf("the feed's minter approves the feed's alert: %d %s", r.Status, r.Body)
	}
	e.must(http.StatusOK, e.do("POST", path, wang, nil), nil)
}
