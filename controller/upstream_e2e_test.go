package main

import (
	"crypto/rand"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cunxiang/cunxiang/controller/internal/ebd"
)

// TestUpstreamFromMain: with --ebr-id, --ebd-trust and --ebd-upstream the
// controller reports to the upper platform: its first heartbeat, its own
// inventory (EBRPSInfo, named after the county, with the URL of its door)
// and its terminal inventory arrive, signed with the key it made in its
// data directory (the certificate the province installs), each addressed
// to --ebd-upstream-ebrid (DEST/EBRID; before the flag, DEST was left out).
func TestUpstreamFromMain(t *testing.T) {
	const county, province = "010411010100000001", "010211000000000001"
	dir := t.TempDir()
	now := time.Now()
	pkey, pcert, err := ebd.GenerateIdentity(rand.Reader, province, now)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := ebd.LoadIdentity(pkey, pcert)
	if err != nil {
		t.Fatal(err)
	}
	trustPath := filepath.Join(t.TempDir(), "province.pem")
	if err := os.WriteFile(trustPath, pcert, 0o600); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	got := map[string]int{}
	var dests []string
	var platform []ebd.Resource
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cert, err := os.ReadFile(filepath.Join(dir, "ebd-cert.pem")) // what the province installs
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		trust, err := ebd.ParseTrust(cert)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		in, err := ebd.Receive(r.Body, ebd.Limits{}, trust, time.Now())
		related := ""
		if err == nil {
			related = in.Packet.EBDID
			mu.Lock()
			got[in.Packet.EBDType]++
			dest := ""
			if in.Packet.DEST != nil {
				dest = in.Packet.DEST.EBRID
			}
			dests = append(dests, dest)
			if in.Packet.EBRPSInfo != nil {
				platform = append(platform, in.Packet.EBRPSInfo.Items...)
			}
			mu.Unlock()
		}
		resp := ebd.Response(ebd.NewEBDID(ebd.KindBusiness, province, uint64(time.Now().UnixNano())), province, county, related, err, time.Now())
		data, err := pid.Pack(rand.Reader, resp, nil, time.Now())
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/x-tar")
		w.Write(data)
	}))
	defer srv.Close()
	h := startController(t, harnessOptions{DataDir: dir, CountyName: "东城区", Tune: func(m *Main) {
		m.EBRID, m.EBDTrust, m.EBDUpstream, m.EBDUpstreamEBRID = county, trustPath, srv.URL+"/ebd", province
	}})
	deadline := time.Now().Add(20 * time.Second)
	for {
		mu.Lock()
		hb, info, ps := got[ebd.TypeConnectionCheck], got[ebd.TypeEBRDTInfo], got[ebd.TypeEBRPSInfo]
		mu.Unlock()
		if hb >= 1 && info >= 1 && ps >= 1 {
			mu.Lock()
			defer mu.Unlock()
			for i, d := range dests {
				if d != province {
					t.Errorf("packet %d went to DEST %q, want %s", i, d, province)
				}
			}
			if p := platform[0]; p.EBRID != county || p.EBRName != "东城区应急广播平台" || p.URL != h.HTTPURL+"/api/v1/ebd" ||
				p.RelatedEBRPS == nil || p.RelatedEBRPS.EBRID != province {
				t.Errorf("this platform reported as %+v", p)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the upper platform got %v: want a heartbeat and the inventory, signed", got)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestUpstreamEBRIDFlag: a bad --ebd-upstream-ebrid stops the controller
// at start with an error that names the flag, rather than sending reports
// the province cannot route.
func TestUpstreamEBRIDFlag(t *testing.T) {
	const county = "010411010100000001"
	for _, tt := range []struct {
		name, ebrid, upstream, county string
	}{
		{"not a code", "0102110000", "https://province.example/ebd", county},
		{"letters", "01021100000000000x", "https://province.example/ebd", county},
		{"without --ebd-upstream", "010211000000000001", "", county},
		{"this platform's own", county, "https://province.example/ebd", county},
		{"without --ebr-id", "010211000000000001", "https://province.example/ebd", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m := NewMain()
			m.DataDir = t.TempDir()
			args := []string{"--ebd-upstream-ebrid", tt.ebrid, "--ebd-trust", "/nonexistent/province.pem"}
			if tt.upstream != "" {
				args = append(args, "--ebd-upstream", tt.upstream)
			}
			if tt.county != "" {
				args = append(args, "--ebr-id", tt.county)
			}
			if err := m.ParseFlags(args); err != nil {
				t.Fatal(err)
			}
			_, err := m.ebdOptions(testLogger(t))
			if err == nil || !strings.Contains(err.Error(), "--ebd-upstream-ebrid") {
				t.Errorf("start: %v", err)
			}
		})
	}
}
