package upstream_test

import (
	"bytes"
	"context"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/cunxiang/cunxiang/controller/internal/ebd"
	"github.com/cunxiang/cunxiang/controller/internal/upstream"
)

var update = flag.Bool("update", false, "rewrite testdata/ from the packets the reporter sends")

// TestPlatform: this platform reports itself on start, before its
// terminals: an EBRPSInfo (its code, name, the URL it takes packets at,
// its upper platform) and an EBRPSState (running), each as the golden in
// testdata/ (rewritten with -update); an OMDRequest for either is
// answered with a fresh one. Before, neither was ever sent and an
// OMDRequest for them was only acknowledged.
func TestPlatform(t *testing.T) {
	f := newFixture(t)
	r, _ := f.start(t, func(o *upstream.Options) {
		o.Name, o.URL = "东城区应急广播平台", "https://cunxiang.example/api/v1/ebd"
	})
	waitFor(t, "the platform and its terminals", func() bool {
		return len(f.prov.packets(ebd.TypeEBRPSState)) == 1 && len(f.prov.packets(ebd.TypeEBRDTInfo)) == 1
	})
	all := f.prov.packets("")
	order := map[string]int{}
	for i, p := range all {
		if _, ok := order[p.Type]; !ok {
			order[p.Type] = i
		}
	}
	if order[ebd.TypeEBRPSInfo] > order[ebd.TypeEBRDTInfo] {
		t.Errorf("the terminals (packet %d) came before the platform they name (packet %d)", order[ebd.TypeEBRDTInfo], order[ebd.TypeEBRPSInfo])
	}
	for _, g := range []struct{ typ, file string }{{ebd.TypeEBRPSInfo, "ebrps-info.xml"}, {ebd.TypeEBRPSState, "ebrps-state.xml"}} {
		ps := f.prov.packets(g.typ)
		if len(ps) != 1 {
			t.Fatalf("%d %s packets", len(ps), g.typ)
		}
		out, err := ebd.Marshal(ps[0].Packet)
		if err != nil {
			t.Fatal(err)
		}
		golden := filepath.Join("testdata", g.file)
		if *update {
			if err := os.WriteFile(golden, out, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		want, err := os.ReadFile(golden)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(out, want) {
			t.Errorf("%s differs from %s (run with -update if the change is meant):\n%s", g.typ, golden, out)
		}
	}

	for _, typ := range []string{ebd.TypeEBRPSInfo, ebd.TypeEBRPSState} {
		if err := r.Requested(context.Background(), &ebd.Packet{EBDType: ebd.TypeOMDRequest, OMDRequest: &ebd.OMDRequest{OMDType: typ}}); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the requested "+typ, func() bool { return len(f.prov.packets(typ)) == 2 })
	}
	if got := f.prov.packets(ebd.TypeEBRPSInfo)[1].Packet.EBRPSInfo.Items[0]; got.EBRID != countyEBRID || got.EBRName != "东城区应急广播平台" {
		t.Errorf("requested inventory %+v", got)
	}
}
