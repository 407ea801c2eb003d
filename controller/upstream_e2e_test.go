package main

import (
	"crypto/rand"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/cunxiang/cunxiang/controller/internal/ebd"
)

// TestUpstreamFromMain: with --ebr-id, --ebd-trust and --ebd-upstream the
// controller reports to the upper platform: its first heartbeat and its
// terminal inventory arrive, signed with the key it made in its data
// directory (the certificate the province installs).
func TestUpstreamFromMain(t *testing.T) {
	const county, province = "010411010100000001", "010211000000000001"
	dir := t.TempDir()
	pid, trustPath := upperPlatform(t, province)
	var mu sync.Mutex
	got := map[string]int{}
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
	startController(t, harnessOptions{DataDir: dir, Tune: func(m *Main) {
		m.EBRID, m.EBDTrust, m.EBDUpstream = county, trustPath, srv.URL+"/ebd"
	}})
	deadline := time.Now().Add(20 * time.Second)
	for {
		mu.Lock()
		hb, info := got[ebd.TypeConnectionCheck], got[ebd.TypeEBRDTInfo]
		mu.Unlock()
		if hb >= 1 && info >= 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the upper platform got %v: want a heartbeat and the inventory, signed", got)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
