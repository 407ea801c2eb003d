package main

import (
	"strings"
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
	prov := newMockProvince(t, province, county, dir) // it verifies with <dir>/ebd-cert.pem, what the province installs
	h := startController(t, harnessOptions{DataDir: dir, CountyName: "东城区", Tune: func(m *Main) {
		m.EBRID, m.EBDTrust, m.EBDUpstream, m.EBDUpstreamEBRID = county, prov.trustPath, prov.srv.URL+"/ebd", province
	}})
	deadline := time.Now().Add(20 * time.Second)
	for prov.count(ebd.TypeConnectionCheck) == 0 || prov.count(ebd.TypeEBRDTInfo) == 0 || prov.count(ebd.TypeEBRPSInfo) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the upper platform got %v: want a heartbeat and the inventories, signed", prov.types())
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, p := range prov.taken() {
		if p.DEST == nil || p.DEST.EBRID != province {
			t.Errorf("%s %s went to DEST %+v, want %s", p.EBDType, p.EBDID, p.DEST, province)
		}
		if p.EBRPSInfo == nil {
			continue
		}
		if it := p.EBRPSInfo.Items[0]; it.EBRID != county || it.EBRName != "东城区应急广播平台" || it.URL != h.HTTPURL+"/api/v1/ebd" ||
			it.RelatedEBRPS == nil || it.RelatedEBRPS.EBRID != province {
			t.Errorf("this platform reported as %+v", it)
		}
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
