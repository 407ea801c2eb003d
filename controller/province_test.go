package main

import (
	"crypto/rand"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cunxiang/cunxiang/controller/internal/ebd"
)

// mockProvince is the upper platform of the national chain (GY/T 384) as
// a test server, for the tests of a running controller: it takes the
// county's reports, verifies each one's SM2 signature against the
// certificate the controller made in its data directory (the one a
// province installs), keeps them, and answers each with an EBDResponse
// signed by its own key — or with 503 while down.
type mockProvince struct {
	t         testing.TB
	id        *ebd.Identity
	trustPath string // its certificate, for --ebd-trust
	srv       *httptest.Server
	down      atomic.Bool

	ebrid, county, certPath string

	mu      sync.Mutex
	trust   *ebd.TrustStore
	got     []*ebd.Packet // every packet taken, in order
	refused []string      // what failed verification, and why
}

// newMockProvince starts a province with code ebrid above the county
// whose controller keeps its files in dataDir.
func newMockProvince(t testing.TB, ebrid, county, dataDir string) *mockProvince {
	t.Helper()
	id, trustPath := upperPlatform(t, ebrid)
	p := &mockProvince{t: t, id: id, trustPath: trustPath, ebrid: ebrid, county: county, certPath: filepath.Join(dataDir, "ebd-cert.pem")}
	p.srv = httptest.NewServer(p)
	t.Cleanup(p.srv.Close)
	return p
}

func (p *mockProvince) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if p.down.Load() {
		http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
		return
	}
	p.mu.Lock()
	if p.trust == nil {
		if cert, err := os.ReadFile(p.certPath); err == nil {
			p.trust, _ = ebd.ParseTrust(cert)
		}
	}
	trust := p.trust
	p.mu.Unlock()
	if trust == nil {
		http.Error(w, "the county's certificate is not installed yet", http.StatusServiceUnavailable)
		return
	}
	now := time.Now()
	in, err := ebd.Receive(r.Body, ebd.Limits{}, trust, now)
	related := ""
	p.mu.Lock()
	if err != nil {
		p.refused = append(p.refused, err.Error())
	} else {
		related = in.Packet.EBDID
		p.got = append(p.got, in.Packet)
	}
	p.mu.Unlock()
	resp := ebd.Response(ebd.NewEBDID(ebd.KindBusiness, p.ebrid, uint64(now.UnixNano())), p.ebrid, p.county, related, err, now)
	data, err := p.id.Pack(rand.Reader, resp, nil, now)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/x-tar")
	w.Write(data)
}

// taken returns the packets taken so far.
func (p *mockProvince) taken() []*ebd.Packet {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.got)
}

// count is how many packets of type typ were taken.
func (p *mockProvince) count(typ string) int {
	n := 0
	for _, g := range p.taken() {
		if g.EBDType == typ {
			n++
		}
	}
	return n
}

// types lists the types of the packets taken, for failure messages.
func (p *mockProvince) types() []string {
	var types []string
	for _, g := range p.taken() {
		types = append(types, g.EBDType)
	}
	return types
}

// await returns the first packet received that ok accepts, waiting for
// it up to within.
func (p *mockProvince) await(within time.Duration, what string, ok func(*ebd.Packet) bool) *ebd.Packet {
	p.t.Helper()
	deadline := time.Now().Add(within)
	for {
		got := p.taken()
		if i := slices.IndexFunc(got, ok); i >= 0 {
			return got[i]
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("the province did not receive %s in %s; it received %v", what, within, p.types())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// upperPlatform makes an upper platform's SM2 key and certificate (valid
// from an hour ago) and writes the certificate to a file for --ebd-trust.
func upperPlatform(tb testing.TB, ebrid string) (id *ebd.Identity, trustPath string) {
	tb.Helper()
	key, cert, err := ebd.GenerateIdentity(rand.Reader, ebrid, time.Now().Add(-time.Hour))
	if err != nil {
		tb.Fatal(err)
	}
	if id, err = ebd.LoadIdentity(key, cert); err != nil {
		tb.Fatal(err)
	}
	trustPath = filepath.Join(tb.TempDir(), "province.pem")
	if err := os.WriteFile(trustPath, cert, 0o600); err != nil {
		tb.Fatal(err)
	}
	return id, trustPath
}
