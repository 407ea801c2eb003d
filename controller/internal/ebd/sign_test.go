package ebd_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cunxiang/cunxiang/api"
	"github.com/cunxiang/cunxiang/controller/internal/cx"
	"github.com/cunxiang/cunxiang/controller/internal/ebd"
)

var t0 = time.Date(2024, 7, 10, 6, 20, 0, 0, ebd.Beijing)

// identity makes a platform identity and a trust store holding its
// certificate.
func identity(tb testing.TB, ebrid string, now time.Time) (*ebd.Identity, *ebd.TrustStore) {
	tb.Helper()
	keyPEM, certPEM, err := ebd.GenerateIdentity(rand.Reader, ebrid, now)
	if err != nil {
		tb.Fatal(err)
	}
	id, err := ebd.LoadIdentity(keyPEM, certPEM)
	if err != nil {
		tb.Fatal(err)
	}
	trust, err := ebd.ParseTrust(certPEM)
	if err != nil {
		tb.Fatal(err)
	}
	return id, trust
}

const heartbeatID = "010103331124000000010000000000000000"

func reasonOf(err error) string { r, _ := cx.Reason(err); return r }

// TestSignVerify: what Identity signs verifies, in each form it writes;
// one changed byte of the packet, a signature by another key, and each
// way of not being trusted are refused with their reason.
func TestSignVerify(t *testing.T) {
	id, trust := identity(t, "010233110000000001", t0)
	other, _ := identity(t, "010233110000000001", t0)
	packet := readFile(t, filepath.Join("testdata", "heartbeat.xml"))
	for _, form := range []ebd.SigForm{"", ebd.FormDER, ebd.FormRaw, ebd.FormPrefixed} {
		t.Run("form "+string(form), func(t *testing.T) {
			id.Form = form
			sig, err := id.Sign(rand.Reader, heartbeatID, packet, t0)
			if err != nil {
				t.Fatal(err)
			}
			v, err := trust.Verify(heartbeatID, packet, sig, t0.Add(time.Minute))
			if err != nil {
				t.Fatal(err)
			}
			want := form
			if want == "" {
				want = ebd.FormRaw
			}
			if v.Form != want || v.CertSN != id.CertSN() || v.Signature.SignatureTime != "2024-07-10 06:20:00" {
				t.Errorf("verified %+v", v)
			}
			for i := range packet {
				bad := append([]byte(nil), packet...)
				bad[i] ^= 0x01
				if _, err := trust.Verify(heartbeatID, bad, sig, t0); reasonOf(err) != api.ReasonEBDSigBad {
					t.Fatalf("byte %d changed: %v", i, err)
				}
			}
		})
	}
	id.Form = ""
	sig, err := id.Sign(rand.Reader, heartbeatID, packet, t0)
	if err != nil {
		t.Fatal(err)
	}
	forged, err := other.Sign(rand.Reader, heartbeatID, packet, t0)
	if err != nil {
		t.Fatal(err)
	}
	// The forger names the trusted certificate.
	forged = []byte(strings.ReplaceAll(string(forged), other.CertSN(), id.CertSN()))
	sf, _ := ebd.DecodeSignature("s", sig)
	tests := []struct {
		name   string
		sig    []byte
		now    time.Time
		reason string
	}{
		{"no signature file", nil, t0, api.ReasonEBDUnsigned},
		{"empty value", []byte(strings.Replace(string(sig), sf.SignatureValue, "", 1)), t0, api.ReasonEBDUnsigned},
		{"forged by another key", forged, t0, api.ReasonEBDSigBad},
		{"value changed", []byte(strings.Replace(string(sig), sf.SignatureValue, base64.StdEncoding.EncodeToString(make([]byte, 64)), 1)), t0, api.ReasonEBDSigBad},
		{"value unreadable", []byte(strings.Replace(string(sig), sf.SignatureValue, "!!not base64!!", 1)), t0, api.ReasonEBDSigFormat},
		{"unknown certificate", []byte(strings.ReplaceAll(string(sig), id.CertSN(), "1234abcd")), t0, api.ReasonEBDCertUnknown},
		{"expired", sig, t0.AddDate(10, 0, 1), api.ReasonEBDCertExpired},
		{"not yet valid", sig, t0.Add(-2 * time.Hour), api.ReasonEBDCertNotYet},
		{"other algorithm", []byte(strings.Replace(string(sig), "<SignatureAlgorithm>SM2<", "<SignatureAlgorithm>RSA<", 1)), t0, api.ReasonEBDSigAlgorithm},
		{"other digest", []byte(strings.Replace(string(sig), "<DigestAlgorithm>SM3<", "<DigestAlgorithm>SHA256<", 1)), t0, api.ReasonEBDSigAlgorithm},
		{"for another packet", []byte(strings.Replace(string(sig), heartbeatID, "010103331124000000010000000000000001", 1)), t0, api.ReasonEBDIDMismatch},
		{"not XML", []byte("MEUCIQ=="), t0, api.ReasonEBDNotXML},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := trust.Verify(heartbeatID, packet, tt.sig, tt.now)
			if reasonOf(err) != tt.reason {
				t.Fatalf("got %v (%s), want %s", err, reasonOf(err), tt.reason)
			}
			if code, _ := ebd.ResultOf(err); code != ebd.ResultBadSig && code != ebd.ResultParseFailed {
				t.Errorf("result code %d", code)
			}
		})
	}
	if _, err := trust.Verify(heartbeatID, packet, sig, t0); err != nil {
		t.Fatalf("the untouched signature: %v", err)
	}
}

// TestSignatureFileForms: both public shapes of the EBDS file are read,
// and CertSN is compared as a number in hex.
func TestSignatureFileForms(t *testing.T) {
	tests := []struct{ name, xml, sn string }{
		{"SignatureCert", `<?xml version="1.0" encoding="utf-8"?><Signature><Version>1.0</Version><RelatedEBD><EBDID>` + heartbeatID +
			`</EBDID></RelatedEBD><SignatureCert><CertType>01</CertType><IssuerID>0A0B</IssuerID><CertSN>00001A2B3C4D</CertSN></SignatureCert>` +
			`<SignatureTime>5f3c2a10</SignatureTime><DigestAlgorithm>SM3</DigestAlgorithm><SignatureAlgorithm>SM2</SignatureAlgorithm><SignatureValue>AAAA</SignatureValue></Signature>`, "1a2b3c4d"},
		{"CertSN at the top", `<Signature><Version>1</Version><RelatedEBD><EBDID>` + heartbeatID +
			`</EBDID></RelatedEBD><CertSN>0001230000000001</CertSN><SignatureAlgorithm>SM2-SM3</SignatureAlgorithm><SignatureValue>AAAA</SignatureValue></Signature>`, "1230000000001"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := ebd.DecodeSignature("s.xml", []byte(tt.xml))
			if err != nil {
				t.Fatal(err)
			}
			if got := ebd.NormalizeSN(s.SN()); got != tt.sn {
				t.Errorf("SN %q, want %q", got, tt.sn)
			}
		})
	}
	for _, in := range []string{"1A:2B:3C:4D", "0x1a2b3c4d", " 001A2B3C4D "} {
		if got := ebd.NormalizeSN(in); got != "1a2b3c4d" {
			t.Errorf("NormalizeSN(%q) = %q", in, got)
		}
	}
	if got := ebd.NormalizeSN("xyz"); got != "" {
		t.Errorf("NormalizeSN(xyz) = %q", got)
	}
}

func TestParseTrustRefuses(t *testing.T) {
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "p256"}, NotBefore: t0, NotAfter: t0.AddDate(1, 0, 0)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &ec.PublicKey, ec)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, certPEM, err := ebd.GenerateIdentity(rand.Reader, "010333112400000001", t0)
	if err != nil {
		t.Fatal(err)
	}
	for name, in := range map[string][]byte{
		"empty":          nil,
		"not SM2":        pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		"a private key":  append(append([]byte(nil), certPEM...), keyPEM...),
		"garbage after":  append(append([]byte(nil), certPEM...), "junk"...),
		"broken":         pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{1, 2, 3}}),
		"only plaintext": []byte("hello"),
	} {
		if _, err := ebd.ParseTrust(in); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := ebd.LoadIdentity(keyPEM, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})); err == nil {
		t.Error("identity with another key's certificate accepted")
	}
}

// openssl returns the path of an openssl that does SM2, or skips.
func openssl(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("openssl")
	if err != nil {
		t.Skip("no openssl on this machine")
	}
	if out, err := exec.Command(path, "ecparam", "-name", "SM2", "-genkey", "-noout", "-out", filepath.Join(t.TempDir(), "k.pem")).CombinedOutput(); err != nil {
		t.Skipf("this openssl does not do SM2: %v: %s", err, out)
	}
	return path
}

func run(t *testing.T, dir, name string, args ...string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

func ebds(ebdid, sn string, sig []byte) []byte {
	return []byte(fmt.Sprintf(`<?xml version="1.0" encoding="UTF-8"?>
<Signature><Version>1.0</Version><RelatedEBD><EBDID>%s</EBDID></RelatedEBD>
<SignatureCert><CertType>01</CertType><IssuerID>01</IssuerID><CertSN>%s</CertSN></SignatureCert>
<SignatureTime>2024-07-10 06:20:00</SignatureTime><DigestAlgorithm>SM3</DigestAlgorithm><SignatureAlgorithm>SM2</SignatureAlgorithm>
<SignatureValue>%s</SignatureValue></Signature>`, ebdid, sn, base64.StdEncoding.EncodeToString(sig)))
}

// TestOpenSSLSignsControllerVerifies: a province that signs with OpenSSL
// 3 (SM2 key by genpkey, certificate by req -x509 -sm3, signature by
// pkeyutl -sign -rawin -digest sm3 with the default distinguishing ID)
// is verified, in DER as OpenSSL writes it, as r‖s and as prefixed r‖s.
func TestOpenSSLSignsControllerVerifies(t *testing.T) {
	ossl := openssl(t)
	dir := t.TempDir()
	run(t, dir, ossl, "genpkey", "-algorithm", "SM2", "-out", "k.pem")
	run(t, dir, ossl, "req", "-x509", "-new", "-key", "k.pem", "-sm3", "-subj", "/CN=province", "-days", "3650", "-set_serial", "0x1A2B3C4D", "-out", "c.pem")
	packet := readFile(t, filepath.Join("testdata", "ebm-township.xml"))
	const ebdid = "100102331100000000012024071000000001"
	if err := os.WriteFile(filepath.Join(dir, "ebdb.xml"), packet, 0o644); err != nil {
		t.Fatal(err)
	}
	run(t, dir, ossl, "pkeyutl", "-sign", "-rawin", "-digest", "sm3", "-inkey", "k.pem", "-in", "ebdb.xml", "-out", "sig.der")
	run(t, dir, ossl, "pkeyutl", "-sign", "-rawin", "-digest", "sm3", "-inkey", "k.pem", "-in", "ebdb.xml", "-out", "sig-gm.der", "-pkeyopt", "distid:"+ebd.DefaultUserID)
	trust, err := ebd.ParseTrust(readFile(t, filepath.Join(dir, "c.pem")))
	if err != nil {
		t.Fatal(err)
	}
	der := readFile(t, filepath.Join(dir, "sig.der"))
	var rs struct{ R, S *big.Int }
	if _, err := asn1.Unmarshal(der, &rs); err != nil {
		t.Fatal(err)
	}
	raw := make([]byte, 64)
	rs.R.FillBytes(raw[:32])
	rs.S.FillBytes(raw[32:])
	prefixed := append([]byte{0x66, 0x8d, 0xb8, 0x40, 0x1a, 0x2b, 0x3c, 0x4d}, raw...)
	now := time.Now()
	for _, tt := range []struct {
		form ebd.SigForm
		sig  []byte
		uid  string
	}{
		{ebd.FormDER, der, ""}, {ebd.FormRaw, raw, ""}, {ebd.FormPrefixed, prefixed, ""},
		{ebd.FormDER, readFile(t, filepath.Join(dir, "sig-gm.der")), ebd.DefaultUserID},
	} {
		v, err := trust.Verify(ebdid, packet, ebds(ebdid, "1A2B3C4D", tt.sig), now)
		if err != nil {
			t.Fatalf("%s: %v", tt.form, err)
		}
		if v.Form != tt.form || v.CertSN != "1a2b3c4d" || v.UserID != tt.uid {
			t.Errorf("%s: %+v", tt.form, v)
		}
	}
	bad := append([]byte(nil), packet...)
	bad[len(bad)/2] ^= 0x20
	if _, err := trust.Verify(ebdid, bad, ebds(ebdid, "1A2B3C4D", der), now); reasonOf(err) != api.ReasonEBDSigBad {
		t.Fatalf("changed packet: %v", err)
	}
}

// TestControllerSignsOpenSSLVerifies: what the controller signs verifies
// with openssl pkeyutl -verify (DER as is, r‖s once wrapped in DER), both
// with a generated identity and with a key from openssl ecparam: with
// -pkeyopt distid:1234567812345678 for the standard's ID, which the
// controller uses, and with no option for an identity set to the empty ID.
func TestControllerSignsOpenSSLVerifies(t *testing.T) {
	ossl := openssl(t)
	dir := t.TempDir()
	keyPEM, certPEM, err := ebd.GenerateIdentity(rand.Reader, "010333112400000001", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	gen, err := ebd.LoadIdentity(keyPEM, certPEM)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "gen-key.pem"), keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	// OpenSSL reads the key and the certificate the controller made.
	run(t, dir, ossl, "pkey", "-in", "gen-key.pem", "-noout")
	run(t, dir, ossl, "ecparam", "-name", "SM2", "-genkey", "-noout", "-out", "ec-key.pem")
	run(t, dir, ossl, "req", "-x509", "-new", "-key", "ec-key.pem", "-sm3", "-subj", "/CN=county", "-days", "30", "-out", "ec-cert.pem")
	ec, err := ebd.LoadIdentity(readFile(t, filepath.Join(dir, "ec-key.pem")), readFile(t, filepath.Join(dir, "ec-cert.pem")))
	if err != nil {
		t.Fatal(err)
	}
	packet := readFile(t, filepath.Join("testdata", "heartbeat.xml"))
	if err := os.WriteFile(filepath.Join(dir, "ebdb.xml"), packet, 0o644); err != nil {
		t.Fatal(err)
	}
	for name, id := range map[string]*ebd.Identity{"gen": gen, "ec": ec} {
		if err := os.WriteFile(filepath.Join(dir, name+"-cert.pem"), id.CertPEM, 0o644); err != nil {
			t.Fatal(err)
		}
		run(t, dir, ossl, "x509", "-in", name+"-cert.pem", "-pubkey", "-noout", "-out", name+"-pub.pem")
		for _, tt := range []struct {
			form ebd.SigForm
			uid  []byte
			opts []string
		}{
			{ebd.FormDER, nil, []string{"-pkeyopt", "distid:" + ebd.DefaultUserID}},
			{ebd.FormRaw, nil, []string{"-pkeyopt", "distid:" + ebd.DefaultUserID}},
			{ebd.FormDER, []byte{}, nil}, // OpenSSL 3.0's default ID
		} {
			form := tt.form
			id.Form, id.UserID = tt.form, tt.uid
			sigXML, err := id.Sign(rand.Reader, heartbeatID, packet, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			sf, err := ebd.DecodeSignature("s", sigXML)
			if err != nil {
				t.Fatal(err)
			}
			sig, err := base64.StdEncoding.DecodeString(sf.SignatureValue)
			if err != nil {
				t.Fatal(err)
			}
			if form == ebd.FormRaw {
				if len(sig) != 64 {
					t.Fatalf("raw signature of %d bytes", len(sig))
				}
				sig, _ = asn1.Marshal(struct{ R, S *big.Int }{new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])})
			}
			sigFile := fmt.Sprintf("%s-%s-%d.sig", name, form, len(tt.opts))
			if err := os.WriteFile(filepath.Join(dir, sigFile), sig, 0o644); err != nil {
				t.Fatal(err)
			}
			run(t, dir, ossl, append([]string{"pkeyutl", "-verify", "-rawin", "-digest", "sm3", "-pubin", "-inkey", name + "-pub.pem", "-sigfile", sigFile, "-in", "ebdb.xml"}, tt.opts...)...)
			// A changed packet does not verify with OpenSSL either.
			if err := os.WriteFile(filepath.Join(dir, "bad.xml"), append(append([]byte(nil), packet...), ' '), 0o644); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(ossl, append([]string{"pkeyutl", "-verify", "-rawin", "-digest", "sm3", "-pubin", "-inkey", name + "-pub.pem", "-sigfile", sigFile, "-in", "bad.xml"}, tt.opts...)...)
			cmd.Dir = dir
			if out, err := cmd.CombinedOutput(); err == nil {
				t.Fatalf("openssl verified a changed packet: %s", out)
			}
		}
	}
}
