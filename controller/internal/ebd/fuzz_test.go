package ebd_test

import (
	"bytes"
	"crypto/rand"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"testing"
	"time"

	"github.com/cunxiang/cunxiang/controller/internal/cx"
	"github.com/cunxiang/cunxiang/controller/internal/ebd"
)

var updateSeeds = flag.Bool("update-seeds", false, "rewrite testdata/fuzz from the golden packets")

// The fuzz province's identity is fixed (testdata/fuzz-province-*.pem, for
// tests only) so that the signed seeds in testdata/fuzz/FuzzReceive verify
// on every run.
func fuzzProvince(tb testing.TB) (*ebd.Identity, *ebd.TrustStore) {
	tb.Helper()
	certPEM := readFile(tb, filepath.Join("testdata", "fuzz-province-cert.pem"))
	id, err := ebd.LoadIdentity(readFile(tb, filepath.Join("testdata", "fuzz-province-key.pem")), certPEM)
	if err != nil {
		tb.Fatal(err)
	}
	trust, err := ebd.ParseTrust(certPEM)
	if err != nil {
		tb.Fatal(err)
	}
	return id, trust
}

var fuzzNow = time.Date(2024, 7, 10, 6, 30, 0, 0, ebd.Beijing)

// TestWriteFuzzSeeds writes the seed corpora with -update-seeds: every
// golden and bad packet for FuzzDecode, tars of them for FuzzReadTar and
// signed tars for FuzzReceive.
func TestWriteFuzzSeeds(t *testing.T) {
	if !*updateSeeds {
		t.Skip("run with -update-seeds to rewrite testdata/fuzz")
	}
	if _, err := os.Stat(filepath.Join("testdata", "fuzz-province-key.pem")); err != nil {
		keyPEM, certPEM, err := ebd.GenerateIdentity(rand.Reader, "010233110000000001", fuzzNow.Add(-time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		for name, data := range map[string][]byte{"fuzz-province-key.pem": keyPEM, "fuzz-province-cert.pem": certPEM} {
			if err := os.WriteFile(filepath.Join("testdata", name), data, 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	id, _ := fuzzProvince(t)
	write := func(fuzzer, name string, data []byte) {
		dir := filepath.Join("testdata", "fuzz", fuzzer)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		body := "go test fuzz v1\n[]byte(" + strconv.Quote(string(data)) + ")\n"
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	mp3 := readFile(t, filepath.Join("testdata", "audio", "alert.mp3"))[:64]
	for _, n := range goldenNames(t) {
		base := filepath.Base(n)
		data := readFile(t, n)
		write("FuzzDecode", base, data)
		p, err := ebd.Decode(n, data)
		if err != nil {
			t.Fatal(err)
		}
		write("FuzzReadTar", base, makeTar(t, entry{name: ebd.PacketName(p.EBDID), data: string(data)}, entry{name: "a.mp3", data: string(mp3)}))
		if p.EBM != nil && p.EBM.MsgContent != nil {
			p.EBM.MsgContent.Auxiliary = nil // keep the seeds small
		}
		signed, err := id.Pack(rand.Reader, p, nil, fuzzNow)
		if err != nil {
			t.Fatal(err)
		}
		write("FuzzReceive", base, signed)
	}
	bad, _ := filepath.Glob(filepath.Join("testdata", "bad", "*.xml"))
	for _, n := range bad {
		write("FuzzDecode", "bad-"+filepath.Base(n), readFile(t, n))
	}
	sig, err := id.Sign(rand.Reader, heartbeatID, readFile(t, filepath.Join("testdata", "heartbeat.xml")), fuzzNow)
	if err != nil {
		t.Fatal(err)
	}
	write("FuzzDecodeSignature", "signature.xml", sig)
}

// refusal fails t unless err is a clerk-readable refusal.
func refusal(t *testing.T, err error) {
	t.Helper()
	if c := cx.Code(err); c != cx.EINVALID && c != cx.ETOOLARGE && c != cx.EUNAUTHORIZED {
		t.Fatalf("refused with a non-domain error: %v", err)
	}
	if r, _ := cx.Reason(err); r == "" {
		t.Fatalf("refused without a reason: %v", err)
	}
}

// checkAccepted holds what every accepted packet must be: IDs of the
// standard's shapes, a time that parses, and a round trip through
// Marshal that changes nothing.
func checkAccepted(t *testing.T, p *ebd.Packet) {
	t.Helper()
	if !ebd.ValidEBDID(p.EBDID) || !ebd.ValidEBRID(p.SRC.EBRID) {
		t.Fatalf("accepted IDs %q %q", p.EBDID, p.SRC.EBRID)
	}
	if _, err := ebd.ParseTime(p.EBDTime); err != nil {
		t.Fatal(err)
	}
	if p.EBM != nil && p.EBM.MsgContent != nil && p.EBM.MsgBasicInfo.MsgType != ebd.MsgCancel {
		if len(p.EBM.MsgContent.AreaCodes()) == 0 {
			t.Fatal("a broadcast for no area")
		}
		for _, c := range p.EBM.MsgContent.AreaCodes() {
			if !ebd.ValidAreaCode(c) {
				t.Fatalf("area code %q", c)
			}
		}
	}
	out, err := ebd.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	q, err := ebd.Decode("again", out)
	if err != nil {
		t.Fatalf("own output refused: %v\n%s", err, out)
	}
	if !reflect.DeepEqual(p, q) {
		t.Fatalf("round trip changed the packet:\n%+v\n%+v", p, q)
	}
}

// FuzzDecode: no input crashes the packet decoder; every refusal is a
// domain error with a reason; everything accepted holds checkAccepted.
func FuzzDecode(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := ebd.Decode("fuzz.xml", data)
		if err != nil {
			refusal(t, err)
			return
		}
		checkAccepted(t, p)
	})
}

// FuzzDecodeSignature: no input crashes the signature-file decoder.
func FuzzDecodeSignature(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := ebd.DecodeSignature("fuzz.xml", data)
		if err != nil {
			refusal(t, err)
			return
		}
		_ = ebd.NormalizeSN(s.SN())
	})
}

// FuzzReadTar: no archive crashes the tar reader or gets past its bounds
// or name rules.
func FuzzReadTar(f *testing.F) {
	lim := ebd.Limits{MaxFiles: 8, MaxFile: 1 << 16, MaxTotal: 1 << 17}
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := ebd.ReadTar(bytes.NewReader(data), lim)
		if err != nil {
			refusal(t, err)
			return
		}
		if !ebd.ValidEBDID(b.EBDID) || b.Packet == nil || len(b.Files)+2 > lim.MaxFiles+1 {
			t.Fatalf("accepted %+v", b)
		}
		total := len(b.Packet) + len(b.Signature)
		for _, fl := range b.Files {
			total += len(fl.Data)
			if fl.Name == "" || fl.Name == "." || fl.Name == ".." || bytes.ContainsAny([]byte(fl.Name), "/\\\x00") {
				t.Fatalf("accepted the name %q", fl.Name)
			}
		}
		if int64(total) > lim.MaxTotal {
			t.Fatalf("accepted %d bytes", total)
		}
	})
}

// FuzzReceive: whatever archive arrives, Receive neither crashes nor
// accepts anything the fuzz province did not sign; what it accepts holds
// checkAccepted and is named as its file is.
func FuzzReceive(f *testing.F) {
	_, trust := fuzzProvince(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		in, err := ebd.Receive(bytes.NewReader(data), ebd.Limits{MaxFiles: 8, MaxFile: 1 << 16, MaxTotal: 1 << 17}, trust, fuzzNow)
		if err != nil {
			refusal(t, err)
			if code, desc := ebd.ResultOf(err); code < ebd.ResultParseFailed || code > ebd.ResultOther || desc == "" {
				t.Fatalf("result %d %q", code, desc)
			}
			return
		}
		if in.Verified == nil || in.Packet.EBDID != in.Bundle.EBDID {
			t.Fatalf("accepted %s", fmt.Sprint(in))
		}
		checkAccepted(t, in.Packet)
	})
}

// TestFuzzReceiveSeedsAccepted: the signed seeds reach the accepting
// branch of FuzzReceive, so the fuzzer starts from valid archives.
func TestFuzzReceiveSeedsAccepted(t *testing.T) {
	_, trust := fuzzProvince(t)
	seeds, _ := filepath.Glob(filepath.Join("testdata", "fuzz", "FuzzReceive", "*"))
	if len(seeds) < 10 {
		t.Fatalf("%d seeds", len(seeds))
	}
	for _, s := range seeds {
		raw := readFile(t, s)
		lines := bytes.SplitN(raw, []byte("\n"), 2)
		body := bytes.TrimSuffix(bytes.TrimSpace(lines[1]), []byte(")"))
		data, err := strconv.Unquote(string(bytes.TrimPrefix(body, []byte("[]byte("))))
		if err != nil {
			t.Fatalf("%s: %v", s, err)
		}
		if _, err := ebd.Receive(bytes.NewReader([]byte(data)), ebd.Limits{}, trust, fuzzNow); err != nil {
			t.Errorf("%s: %v", filepath.Base(s), err)
		}
	}
}
