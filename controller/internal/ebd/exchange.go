package ebd

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/emmansun/gmsm/sm3"

	"github.com/cunxiang/cunxiang/api"
	"github.com/cunxiang/cunxiang/controller/internal/cx"
)

// Inbound is a packet that passed Receive: signed by a trusted
// certificate, well-formed, its attachments present and intact.
type Inbound struct {
	Bundle   *Bundle
	Packet   *Packet
	Verified *Verified
}

// Receive reads a tar archive from the upper platform and checks it in
// the order that matters: the archive within lim; the signature over the
// exact bytes of the EBDB file, before anything of the packet is parsed;
// then the packet, that its EBDID is the one its file is named by, and the
// files a message names (size and SM3 digest when given).
func Receive(r io.Reader, lim Limits, trust *TrustStore, now time.Time) (*Inbound, error) {
	b, err := ReadTar(r, lim)
	if err != nil {
		return nil, err
	}
	v, err := trust.Verify(b.EBDID, b.Packet, b.Signature, now)
	if err != nil {
		return nil, err
	}
	p, err := Decode(PacketName(b.EBDID), b.Packet)
	if err != nil {
		return nil, err
	}
	if p.EBDID != b.EBDID {
		return nil, cx.Invalid("EBD/EBDID", fmt.Sprintf("is %s, but the file is named for %s", p.EBDID, b.EBDID)).
			With(api.ReasonEBDIDMismatch, "field", "EBD/EBDID", "value", p.EBDID, "want", b.EBDID)
	}
	if err := CheckAuxiliary(p, b); err != nil {
		return nil, err
	}
	return &Inbound{Bundle: b, Packet: p, Verified: v}, nil
}

// CheckAuxiliary checks that every file an EBM names is in the bundle, of
// the size and SM3 digest the message gives (when it gives them).
func CheckAuxiliary(p *Packet, b *Bundle) error {
	if p.EBM == nil || p.EBM.MsgContent == nil {
		return nil
	}
	for _, a := range p.EBM.MsgContent.Auxiliary {
		f := b.File(a.AuxiliaryDesc)
		if f == nil {
			return cx.Errorf(cx.EINVALID, "the attachment %q named by the message is not in the archive", clip(a.AuxiliaryDesc)).
				With(api.ReasonEBDAuxMissing, "value", clip(a.AuxiliaryDesc))
		}
		if a.Size != "" {
			if n, err := strconv.ParseInt(a.Size, 10, 64); err != nil || n != int64(len(f.Data)) {
				return cx.Errorf(cx.EINVALID, "the attachment %q has %d bytes, not the %s the message says", clip(f.Name), len(f.Data), a.Size).
					With(api.ReasonEBDAuxSize, "value", clip(f.Name))
			}
		}
		if a.Digest != "" {
			sum := sm3.Sum(f.Data)
			if !strings.EqualFold(hex.EncodeToString(sum[:]), a.Digest) {
				return cx.Errorf(cx.EINVALID, "the attachment %q does not match the SM3 digest the message gives", clip(f.Name)).
					With(api.ReasonEBDAuxDigest, "value", clip(f.Name))
			}
		}
	}
	return nil
}

// ResultOf returns the EBDResponse result code and description for the
// outcome of Receive: ResultOK for nil; ResultBadSig for signature
// refusals; ResultIncomplete for missing parts; ResultParseFailed for
// what cannot be read or is malformed; ResultOther otherwise. The
// description is the standard's Chinese text, then the English detail.
func ResultOf(err error) (code int, desc string) {
	if err == nil {
		return ResultOK, ResultTexts[ResultOK]
	}
	reason, _ := cx.Reason(err)
	switch reason {
	case api.ReasonEBDUnsigned, api.ReasonEBDSigAlgorithm, api.ReasonEBDSigFormat, api.ReasonEBDSigBad,
		api.ReasonEBDCertUnknown, api.ReasonEBDCertExpired, api.ReasonEBDCertNotYet:
		code = ResultBadSig
	case api.ReasonEBDMissing, api.ReasonEBDBodyMissing, api.ReasonEBDNoPacket, api.ReasonEBDAuxMissing:
		code = ResultIncomplete
	case "":
		code = ResultOther
	default:
		code = ResultParseFailed
	}
	if reason == api.ReasonEBDIDMismatch && strings.HasPrefix(fieldOf(err), "Signature/") {
		code = ResultBadSig
	}
	return code, ResultTexts[code] + ": " + cx.Message(err)
}

func fieldOf(err error) string {
	var e *cx.Error
	if errors.As(err, &e) {
		return e.Field
	}
	return ""
}

// Header fills the header of a packet that platform src sends to dest
// (which may be ""), with ID ebdid, at now.
func Header(typ, ebdid, src, dest string, now time.Time) Packet {
	p := Packet{EBDVersion: "1.0", EBDID: ebdid, EBDType: typ, SRC: Source{EBRID: src}, EBDTime: FormatTime(now)}
	if dest != "" {
		p.DEST = &Dest{EBRID: dest}
	}
	return p
}

// Response makes the EBDResponse packet (ID ebdid) with which src answers
// the packet related, sent by dest, for the outcome err of receiving it.
func Response(ebdid, src, dest, related string, err error, now time.Time) *Packet {
	p := Header(TypeEBDResponse, ebdid, src, dest, now)
	code, desc := ResultOf(err)
	p.RelatedEBD = &RelatedEBD{EBDID: related}
	p.EBDResponse = &EBDResponse{ResultCode: strconv.Itoa(code), ResultDesc: desc}
	return &p
}

// Pack writes p as a signed tar archive: EBDB_<EBDID>.xml, its signature
// EBDS_EBDB_<EBDID>.xml and files, in that order.
func (id *Identity) Pack(rand io.Reader, p *Packet, files []File, now time.Time) ([]byte, error) {
	data, err := Marshal(p)
	if err != nil {
		return nil, err
	}
	sig, err := id.Sign(rand, p.EBDID, data, now)
	if err != nil {
		return nil, err
	}
	all := append([]File{{Name: PacketName(p.EBDID), Data: data}, {Name: SignatureName(p.EBDID), Data: sig}}, files...)
	return WriteTar(all, now)
}
