package ebd

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/pem"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"math/big"
	"reflect"
	"strings"
	"time"

	"github.com/emmansun/gmsm/sm2"
	"github.com/emmansun/gmsm/sm3"
	"github.com/emmansun/gmsm/smx509"

	"github.com/cunxiang/cunxiang/api"
	"github.com/cunxiang/cunxiang/controller/internal/cx"
)

// DefaultUserID is the SM2 distinguishing identifier both sides use when
// none is agreed (GM/T 0009; OpenSSL 3's default for SM2 too).
const DefaultUserID = "1234567812345678"

// SignatureFile is an <Signature> element, the EBDS file. CertSN names the
// signing certificate by its serial number in hex; some senders put it
// directly under <Signature> instead of in <SignatureCert>.
type SignatureFile struct {
	XMLName            xml.Name       `xml:"Signature"`
	Version            string         `xml:"Version"`
	RelatedEBD         RelatedEBD     `xml:"RelatedEBD"`
	SignatureCert      *SignatureCert `xml:"SignatureCert,omitempty"`
	CertSN             string         `xml:"CertSN,omitempty"`
	SignatureTime      string         `xml:"SignatureTime,omitempty"`
	DigestAlgorithm    string         `xml:"DigestAlgorithm,omitempty"`
	SignatureAlgorithm string         `xml:"SignatureAlgorithm"`
	SignatureValue     string         `xml:"SignatureValue"`
}

// SignatureCert names the signing certificate.
type SignatureCert struct {
	CertType string `xml:"CertType,omitempty"`
	IssuerID string `xml:"IssuerID,omitempty"`
	CertSN   string `xml:"CertSN"`
}

// SN returns the certificate serial the file names.
func (s *SignatureFile) SN() string {
	if s.SignatureCert != nil && s.SignatureCert.CertSN != "" {
		return s.SignatureCert.CertSN
	}
	return s.CertSN
}

// DecodeSignature reads an EBDS file.
func DecodeSignature(name string, data []byte) (*SignatureFile, error) {
	var s SignatureFile
	if err := decodeXML(name, data, "Signature", &s); err != nil {
		return nil, err
	}
	trimStrings(reflect.ValueOf(&s))
	return &s, nil
}

// NormalizeSN writes a certificate serial as this package compares them:
// lower-case hex without leading zeros, separators or a 0x prefix. It
// returns "" for anything that is not hex.
func NormalizeSN(sn string) string {
	sn = strings.ToLower(strings.TrimSpace(sn))
	sn = strings.TrimPrefix(sn, "0x")
	sn = strings.NewReplacer(":", "", " ", "", "-", "").Replace(sn)
	if sn == "" || len(sn) > 64 {
		return ""
	}
	n, ok := new(big.Int).SetString(sn, 16)
	if !ok || n.Sign() < 0 {
		return ""
	}
	return n.Text(16)
}

// SerialHex is how a certificate's serial is written in CertSN.
func SerialHex(c *smx509.Certificate) string { return c.SerialNumber.Text(16) }

// TrustStore holds the upper platforms' certificates, by serial.
type TrustStore struct {
	bySN  map[string][]*smx509.Certificate
	certs []*smx509.Certificate
}

// ParseTrust reads PEM X.509 certificates with SM2 public keys, as OpenSSL
// 3 writes them. Blocks other than CERTIFICATE are refused, as is a file
// with no certificate: a trust file that trusts nobody is a mistake.
func ParseTrust(pemData []byte) (*TrustStore, error) {
	t := &TrustStore{bySN: map[string][]*smx509.Certificate{}}
	rest := pemData
	for {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("trust file: a %q block; only CERTIFICATE blocks belong in it", blk.Type)
		}
		c, err := smx509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("trust file: certificate %d: %w", len(t.certs)+1, err)
		}
		if !sm2.IsSM2PublicKey(c.PublicKey) {
			return nil, fmt.Errorf("trust file: certificate %q (serial %s) has no SM2 public key", c.Subject.String(), SerialHex(c))
		}
		t.add(c)
	}
	if len(bytes.TrimSpace(rest)) > 0 {
		return nil, errors.New("trust file: text after the last PEM block is not a certificate")
	}
	if len(t.certs) == 0 {
		return nil, errors.New("trust file: no certificate in it")
	}
	return t, nil
}

func (t *TrustStore) add(c *smx509.Certificate) {
	sn := SerialHex(c)
	t.bySN[sn] = append(t.bySN[sn], c)
	t.certs = append(t.certs, c)
}

// Certificates returns the trusted certificates, in file order.
func (t *TrustStore) Certificates() []*smx509.Certificate {
	return append([]*smx509.Certificate(nil), t.certs...)
}

// Verified says who signed a packet and in which form.
type Verified struct {
	Cert      *smx509.Certificate
	CertSN    string // normalized
	Form      SigForm
	UserID    string // the SM2 distinguishing ID it verified with
	Signature *SignatureFile
}

// verifyUserIDs are the SM2 distinguishing IDs Verify accepts: the
// standard's default, and the empty ID, which is what OpenSSL 3.0's
// pkeyutl uses when none is given (measured with 3.0.19, docs/ebd.md).
var verifyUserIDs = [][]byte{[]byte(DefaultUserID), {}}

// digest is SM2's e = SM3(Z || msg), with Z for the distinguishing ID uid
// (which may be empty: ENTL 0, as OpenSSL 3.0 computes it).
func digest(pub *ecdsa.PublicKey, uid, msg []byte) ([]byte, error) {
	if len(uid) > 0 {
		return sm2.CalculateSM2Hash(pub, msg, uid)
	}
	// gmsm substitutes the default ID for an empty one, so Z is made
	// here: SM3(ENTL=0 || a || b || xG || yG || xA || yA).
	params := sm2.P256().Params()
	h := sm3.New()
	h.Write([]byte{0, 0})
	a := new(big.Int).Sub(params.P, big.NewInt(3))
	for _, n := range []*big.Int{a, params.B, params.Gx, params.Gy, pub.X, pub.Y} {
		var b [32]byte
		n.FillBytes(b[:])
		h.Write(b[:])
	}
	z := h.Sum(nil)
	h.Reset()
	h.Write(z)
	h.Write(msg)
	return h.Sum(nil), nil
}

// SigForm is how a SignatureValue encodes the SM2 signature.
type SigForm string

// The forms accepted. Each is base64 (or hex) in SignatureValue.
const (
	FormDER SigForm = "der" // ASN.1 SEQUENCE{r, s}, as OpenSSL writes
	FormRaw SigForm = "raw" // r‖s, 32 bytes each, as signing devices emit
	// FormPrefixed is r‖s after a 4-byte signature time and the 4-byte
	// certificate serial, as one public sample has it. Verify accepts it
	// over the EBDB bytes, or over the EBDB bytes followed by those 8.
	FormPrefixed SigForm = "prefixed"
)

var sigAlgorithms = []string{"SM2", "SM2-SM3", "SM3-SM2", "SM2WITHSM3", "SM3WITHSM2"}

// Verify checks that sig (an EBDS file) is a valid SM2 signature, with the
// default user ID, by a trusted certificate valid at now, over the exact
// bytes of packet, and that it names the packet ebdid. Refusals: unsigned
// (no file, or no value), an algorithm other than SM2/SM3, an unknown
// certificate, a certificate expired or not yet valid, an unreadable or
// wrong signature.
func (t *TrustStore) Verify(ebdid string, packet, sig []byte, now time.Time) (*Verified, error) {
	if len(bytes.TrimSpace(sig)) == 0 {
		return nil, unsigned(ebdid)
	}
	sf, err := DecodeSignature(SignatureName(ebdid), sig)
	if err != nil {
		return nil, err
	}
	if sf.SignatureValue == "" {
		return nil, unsigned(ebdid)
	}
	if sf.RelatedEBD.EBDID != ebdid {
		return nil, cx.Invalid("Signature/RelatedEBD/EBDID", fmt.Sprintf("is %q, not the packet %s", clip(sf.RelatedEBD.EBDID), ebdid)).
			With(api.ReasonEBDIDMismatch, "field", "Signature/RelatedEBD/EBDID", "value", clip(sf.RelatedEBD.EBDID), "want", ebdid)
	}
	if d := strings.ToUpper(sf.DigestAlgorithm); d != "" && d != "SM3" {
		return nil, cx.Invalid("Signature/DigestAlgorithm", fmt.Sprintf("%q is not SM3", clip(sf.DigestAlgorithm))).
			With(api.ReasonEBDSigAlgorithm, "value", clip(sf.DigestAlgorithm))
	}
	if a := strings.ToUpper(sf.SignatureAlgorithm); a != "" && !contains(sigAlgorithms, a) {
		return nil, cx.Invalid("Signature/SignatureAlgorithm", fmt.Sprintf("%q is not SM2", clip(sf.SignatureAlgorithm))).
			With(api.ReasonEBDSigAlgorithm, "value", clip(sf.SignatureAlgorithm))
	}
	raw := sf.SN()
	if raw == "" {
		return nil, required("Signature/SignatureCert/CertSN", "")
	}
	sn := NormalizeSN(raw)
	certs := t.bySN[sn]
	if len(certs) == 0 {
		return nil, cx.Errorf(cx.EUNAUTHORIZED, "the signing certificate %s is not among the trusted ones", clip(raw)).
			With(api.ReasonEBDCertUnknown, "value", clip(raw))
	}
	cands := signatureCandidates(sf.SignatureValue)
	if len(cands) == 0 {
		return nil, cx.Errorf(cx.EUNAUTHORIZED, "the signature value cannot be read: it is not base64 or hex of an SM2 signature").With(api.ReasonEBDSigFormat)
	}
	var timeErr error
	for _, c := range certs {
		if now.Before(c.NotBefore) {
			timeErr = cx.Errorf(cx.EUNAUTHORIZED, "the signing certificate %s is valid only from %s", sn, c.NotBefore.UTC().Format(time.RFC3339)).
				With(api.ReasonEBDCertNotYet, "value", sn, "at", c.NotBefore.UTC().Format(time.RFC3339))
			continue
		}
		if now.After(c.NotAfter) {
			timeErr = cx.Errorf(cx.EUNAUTHORIZED, "the signing certificate %s expired at %s", sn, c.NotAfter.UTC().Format(time.RFC3339)).
				With(api.ReasonEBDCertExpired, "value", sn, "at", c.NotAfter.UTC().Format(time.RFC3339))
			continue
		}
		pub, ok := c.PublicKey.(*ecdsa.PublicKey)
		if !ok {
			continue
		}
		for _, uid := range verifyUserIDs {
			for _, cand := range cands {
				msg := packet
				if cand.suffix != nil {
					msg = append(append([]byte(nil), packet...), cand.suffix...)
				}
				e, err := digest(pub, uid, msg)
				if err != nil {
					continue
				}
				if sm2.VerifyASN1(pub, e, cand.der) {
					return &Verified{Cert: c, CertSN: sn, Form: cand.form, UserID: string(uid), Signature: sf}, nil
				}
			}
		}
		timeErr = nil
	}
	if timeErr != nil {
		return nil, timeErr
	}
	return nil, cx.Errorf(cx.EUNAUTHORIZED, "the signature does not verify: the packet was changed, or not signed with certificate %s", sn).With(api.ReasonEBDSigBad)
}

func unsigned(ebdid string) error {
	return cx.Errorf(cx.EUNAUTHORIZED, "packet %s is not signed: it has no %s or an empty SignatureValue", ebdid, SignatureName(ebdid)).
		With(api.ReasonEBDUnsigned, "value", ebdid)
}

func contains(list []string, v string) bool {
	for _, s := range list {
		if s == v {
			return true
		}
	}
	return false
}

type candidate struct {
	form   SigForm
	der    []byte
	suffix []byte // bytes signed after the packet's, for FormPrefixed
}

// signatureCandidates reads a SignatureValue every way it may be meant:
// base64 or hex, of DER, r‖s or prefixed r‖s.
func signatureCandidates(v string) []candidate {
	v = strings.Join(strings.Fields(v), "")
	var blobs [][]byte
	if b, err := base64.StdEncoding.DecodeString(v); err == nil {
		blobs = append(blobs, b)
	} else if b, err := base64.RawStdEncoding.DecodeString(v); err == nil {
		blobs = append(blobs, b)
	}
	if b, err := hex.DecodeString(v); err == nil {
		blobs = append(blobs, b)
	}
	var out []candidate
	for _, b := range blobs {
		var rs struct{ R, S *big.Int }
		if rest, err := asn1.Unmarshal(b, &rs); err == nil && len(rest) == 0 {
			out = append(out, candidate{form: FormDER, der: b})
		}
		switch len(b) {
		case 64:
			out = append(out, candidate{form: FormRaw, der: rawToDER(b)})
		case 72:
			der := rawToDER(b[8:])
			out = append(out,
				candidate{form: FormPrefixed, der: der},
				candidate{form: FormPrefixed, der: der, suffix: append([]byte(nil), b[:8]...)})
		}
	}
	return out
}

// rawToDER turns r‖s into ASN.1 SEQUENCE{r, s}.
func rawToDER(rs []byte) []byte {
	r := new(big.Int).SetBytes(rs[:32])
	s := new(big.Int).SetBytes(rs[32:64])
	der, _ := asn1.Marshal(struct{ R, S *big.Int }{r, s})
	return der
}

// derToRaw turns ASN.1 SEQUENCE{r, s} into r‖s.
func derToRaw(der []byte) ([]byte, error) {
	var rs struct{ R, S *big.Int }
	if _, err := asn1.Unmarshal(der, &rs); err != nil {
		return nil, fmt.Errorf("parse SM2 signature: %w", err)
	}
	out := make([]byte, 64)
	rs.R.FillBytes(out[:32])
	rs.S.FillBytes(out[32:])
	return out, nil
}

// Identity is this platform's SM2 key and self-signed certificate.
type Identity struct {
	Key     *sm2.PrivateKey
	Cert    *smx509.Certificate
	CertPEM []byte
	// Form is how Sign writes SignatureValue; the zero value is FormRaw,
	// base64 of r‖s, the form signing devices in the chain emit.
	Form SigForm
	// UserID is the SM2 distinguishing ID Sign uses: nil for
	// DefaultUserID, as the chain's devices do; empty (not nil) for
	// the empty ID, OpenSSL 3.0's default.
	UserID []byte
}

// GenerateIdentity makes a new SM2 key and a self-signed SM2-with-SM3
// certificate for the platform ebrid, valid from an hour before now for
// ten years, with a random 64-bit serial. It returns the key as PKCS#8
// PEM ("PRIVATE KEY", as OpenSSL 3 writes SM2 keys) and the certificate
// as PEM; the caller stores the key with mode 0600.
func GenerateIdentity(rand io.Reader, ebrid string, now time.Time) (keyPEM, certPEM []byte, err error) {
	key, err := sm2.GenerateKey(rand)
	if err != nil {
		return nil, nil, fmt.Errorf("generate SM2 key: %w", err)
	}
	var sn [8]byte
	if _, err := io.ReadFull(rand, sn[:]); err != nil {
		return nil, nil, fmt.Errorf("generate serial: %w", err)
	}
	sn[0] &= 0x7f
	sn[0] |= 0x40 // positive, and 16 hex digits
	tmpl := &smx509.Certificate{
		SerialNumber:          new(big.Int).SetBytes(sn[:]),
		Subject:               pkixName(ebrid),
		NotBefore:             now.Add(-time.Hour).UTC(),
		NotAfter:              now.AddDate(10, 0, 0).UTC(),
		KeyUsage:              smx509.KeyUsageDigitalSignature | smx509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		SignatureAlgorithm:    smx509.SM2WithSM3,
	}
	der, err := smx509.CreateCertificate(rand, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("create certificate: %w", err)
	}
	pk, err := smx509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("marshal SM2 key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pk}),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), nil
}

// LoadIdentity reads a key (PKCS#8 or SEC1 "EC PRIVATE KEY" PEM, as
// OpenSSL writes SM2 keys) and the certificate that goes with it.
func LoadIdentity(keyPEM, certPEM []byte) (*Identity, error) {
	kb, _ := pem.Decode(keyPEM)
	if kb == nil {
		return nil, errors.New("identity key: no PEM block")
	}
	var key *sm2.PrivateKey
	switch kb.Type {
	case "PRIVATE KEY":
		k, err := smx509.ParsePKCS8PrivateKey(kb.Bytes)
		if err != nil {
			return nil, fmt.Errorf("identity key: %w", err)
		}
		sk, ok := k.(*sm2.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("identity key: a %T, not an SM2 key", k)
		}
		key = sk
	case "EC PRIVATE KEY":
		k, err := smx509.ParseSM2PrivateKey(kb.Bytes)
		if err != nil {
			return nil, fmt.Errorf("identity key: %w", err)
		}
		key = k
	default:
		return nil, fmt.Errorf("identity key: a %q block, not a private key", kb.Type)
	}
	cb, _ := pem.Decode(certPEM)
	if cb == nil || cb.Type != "CERTIFICATE" {
		return nil, errors.New("identity certificate: no CERTIFICATE block")
	}
	cert, err := smx509.ParseCertificate(cb.Bytes)
	if err != nil {
		return nil, fmt.Errorf("identity certificate: %w", err)
	}
	pub, ok := cert.PublicKey.(*ecdsa.PublicKey)
	if !ok || !sm2.IsSM2PublicKey(pub) || !pub.Equal(&key.PublicKey) {
		return nil, errors.New("identity: the certificate's public key is not the key's")
	}
	return &Identity{Key: key, Cert: cert, CertPEM: pem.EncodeToMemory(cb)}, nil
}

// CertSN is the serial of this platform's certificate in hex.
func (id *Identity) CertSN() string { return SerialHex(id.Cert) }

// Sign signs the exact bytes of an EBDB file for packet ebdid and returns
// the EBDS file.
func (id *Identity) Sign(rand io.Reader, ebdid string, packet []byte, now time.Time) ([]byte, error) {
	uid := id.UserID
	if uid == nil {
		uid = []byte(DefaultUserID)
	}
	e, err := digest(&id.Key.PublicKey, uid, packet)
	if err != nil {
		return nil, fmt.Errorf("sign packet %s: %w", ebdid, err)
	}
	der, err := sm2.SignASN1(rand, id.Key, e, nil)
	if err != nil {
		return nil, fmt.Errorf("sign packet %s: %w", ebdid, err)
	}
	value := der
	if id.Form != FormDER {
		if value, err = derToRaw(der); err != nil {
			return nil, err
		}
		if id.Form == FormPrefixed {
			var pre [8]byte
			binary.BigEndian.PutUint32(pre[:4], uint32(now.Unix()))
			sn := id.Cert.SerialNumber.Bytes()
			if len(sn) > 4 {
				sn = sn[len(sn)-4:]
			}
			copy(pre[8-len(sn):], sn)
			value = append(pre[:], value...)
		}
	}
	sf := SignatureFile{
		Version:    "1.0",
		RelatedEBD: RelatedEBD{EBDID: ebdid},
		SignatureCert: &SignatureCert{
			CertType: "01",
			// Self-signed: the issuer is the certificate itself.
			IssuerID: id.CertSN(),
			CertSN:   id.CertSN(),
		},
		SignatureTime:      FormatTime(now),
		DigestAlgorithm:    "SM3",
		SignatureAlgorithm: "SM2",
		SignatureValue:     base64.StdEncoding.EncodeToString(value),
	}
	return marshal(&sf)
}

func pkixName(ebrid string) pkix.Name {
	return pkix.Name{CommonName: "Cunxiang EBR " + ebrid, Organization: []string{"Cunxiang"}, SerialNumber: ebrid}
}
