package ebd

import (
	"fmt"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/cunxiang/cunxiang/api"
	"github.com/cunxiang/cunxiang/controller/internal/cx"
)

// Bounds of what a packet may hold.
const (
	MaxItems     = 20000 // resources in one report, items in one log
	MaxAuxiliary = 16    // files one message names
	maxText      = 1024  // a name, a title, a description of a state
	maxMsgDesc   = 16384 // the text of a message, spoken by TTS when there is no audio
)

// Decode reads an EBDB file and checks it: the header (EBDID, EBRIDs,
// EBDTime), that the one body EBDType names is there and no other, and
// that body's required elements, codes, times and area codes. name is the
// file's name for messages ("EBDB_….xml"). Errors are *cx.Error values
// whose Field is the element's path.
func Decode(name string, data []byte) (*Packet, error) {
	var p Packet
	if err := decodeXML(name, data, "EBD", &p); err != nil {
		return nil, err
	}
	trimStrings(reflect.ValueOf(&p))
	if p.EBM != nil && p.EBM.MsgBasicInfo != nil {
		b := p.EBM.MsgBasicInfo
		if b.SendTime == "" {
			b.SendTime = b.SentTime
		}
		b.SentTime = ""
	}
	if err := p.check(); err != nil {
		return nil, err
	}
	return &p, nil
}

// trimStrings trims the white space around every string reachable from v.
func trimStrings(v reflect.Value) {
	switch v.Kind() {
	case reflect.Pointer:
		if !v.IsNil() {
			trimStrings(v.Elem())
		}
	case reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			if v.Type().Field(i).IsExported() {
				trimStrings(v.Field(i))
			}
		}
	case reflect.Slice:
		for i := 0; i < v.Len(); i++ {
			trimStrings(v.Index(i))
		}
	case reflect.String:
		v.SetString(strings.TrimSpace(v.String()))
	}
}

// invalid refuses field for reason; format and args are the English.
func invalid(field, reason, value, format string, args ...any) error {
	return cx.Invalid(field, fmt.Sprintf(format, args...)).With(reason, "field", field, "value", value)
}

func required(field, v string) error {
	if v == "" {
		return cx.Invalid(field, "no value").With(api.ReasonEBDMissing, "field", field)
	}
	return nil
}

// text checks a free text: at most max characters, valid UTF-8, no
// control characters but line breaks and tabs.
func text(field, v string, max int) error {
	if !utf8.ValidString(v) {
		return invalid(field, api.ReasonEBDValue, "", "is not valid UTF-8")
	}
	if n := utf8.RuneCountInString(v); n > max {
		return cx.Invalid(field, fmt.Sprintf("is %d characters long; at most %d are accepted", n, max)).
			With(api.ReasonEBDTooLong, "field", field, "max", max)
	}
	for _, r := range v {
		if unicode.IsControl(r) && r != '\n' && r != '\r' && r != '\t' {
			return invalid(field, api.ReasonEBDValue, v, "contains a control character")
		}
	}
	return nil
}

func requiredText(field, v string, max int) error {
	if err := required(field, v); err != nil {
		return err
	}
	return text(field, v, max)
}

func oneOf(field, v string, allowed ...string) error {
	if err := required(field, v); err != nil {
		return err
	}
	if slices.Contains(allowed, v) {
		return nil
	}
	if len(v) > 64 {
		v = v[:64]
	}
	return cx.Invalid(field, fmt.Sprintf("%q is not one of %s", v, strings.Join(allowed, ", "))).
		With(api.ReasonEBDValue, "field", field, "value", v, "allowed", strings.Join(allowed, ", "))
}

func timeField(field, v string) error {
	if err := required(field, v); err != nil {
		return err
	}
	if _, err := ParseTime(v); err != nil {
		return invalid(field, api.ReasonEBDTime, clip(v), "%s", err)
	}
	return nil
}

func optionalTime(field, v string) error {
	if v == "" {
		return nil
	}
	return timeField(field, v)
}

// clip shortens a value quoted back in a message.
func clip(v string) string {
	if len(v) <= 64 {
		return v
	}
	cut := 64
	for cut > 0 && !utf8.RuneStart(v[cut]) {
		cut--
	}
	return v[:cut] + "…"
}

func ebrid(field, v string) error {
	if err := required(field, v); err != nil {
		return err
	}
	if !ValidEBRID(v) {
		return invalid(field, api.ReasonEBDIDShape, clip(v), "%q is not a resource code of %d or %d digits", clip(v), EBRIDShort, EBRIDLong)
	}
	return nil
}

func ebdid(field, v string) error {
	if err := required(field, v); err != nil {
		return err
	}
	if !ValidEBDID(v) {
		return invalid(field, api.ReasonEBDIDShape, clip(v), "%q is not a packet ID of %d or %d digits", clip(v), 2+EBRIDShort+16, 2+EBRIDLong+16)
	}
	return nil
}

func ebmid(field, v string) error {
	if err := required(field, v); err != nil {
		return err
	}
	if !ValidEBMID(v) {
		return invalid(field, api.ReasonEBDIDShape, clip(v), "%q is not a message ID of %d or %d digits", clip(v), EBRIDShort+12, EBRIDLong+12)
	}
	return nil
}

func areaCodes(field, v string) error {
	if err := required(field, v); err != nil {
		return err
	}
	codes := SplitAreaCodes(v)
	if len(codes) > MaxItems {
		return cx.Invalid(field, fmt.Sprintf("lists %d codes; at most %d are accepted", len(codes), MaxItems)).
			With(api.ReasonEBDTooMany, "field", field, "max", MaxItems)
	}
	for _, c := range codes {
		if !ValidAreaCode(c) {
			return invalid(field, api.ReasonEBDAreaCode, clip(c), "%q is not a 12-digit administrative-division code", clip(c))
		}
	}
	if len(codes) == 0 {
		return required(field, "")
	}
	return nil
}

// number checks a decimal number between lo and hi.
func number(field, v string, lo, hi float64) error {
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || f < lo || f > hi || strings.ContainsAny(v, "xXpPeEnN_") {
		return invalid(field, api.ReasonEBDValue, clip(v), "%q is not a number from %g to %g", clip(v), lo, hi)
	}
	return nil
}

// checkURL checks an http or https address.
func checkURL(field, v string) error {
	if err := text(field, v, maxText); err != nil {
		return err
	}
	if u, err := url.Parse(v); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return invalid(field, api.ReasonEBDValue, clip(v), "%q is not an http or https address", clip(v))
	}
	return nil
}

func tooMany(field string, n, max int) error {
	if n > max {
		return cx.Invalid(field, fmt.Sprintf("has %d entries; at most %d are accepted", n, max)).
			With(api.ReasonEBDTooMany, "field", field, "max", max)
	}
	return nil
}

// item names the i-th of n elements in a path.
func item(parent, name string, i, n int) string {
	if n > 1 {
		return fmt.Sprintf("%s/%s[%d]", parent, name, i+1)
	}
	return parent + "/" + name
}

func (p *Packet) check() error {
	if err := requiredText("EBD/EBDVersion", p.EBDVersion, 16); err != nil {
		return err
	}
	if err := ebdid("EBD/EBDID", p.EBDID); err != nil {
		return err
	}
	if err := oneOf("EBD/EBDType", p.EBDType, Types...); err != nil {
		return err
	}
	if err := ebrid("EBD/SRC/EBRID", p.SRC.EBRID); err != nil {
		return err
	}
	if p.SRC.URL != "" {
		if err := checkURL("EBD/SRC/URL", p.SRC.URL); err != nil {
			return err
		}
	}
	if p.DEST != nil {
		if err := ebrid("EBD/DEST/EBRID", p.DEST.EBRID); err != nil {
			return err
		}
	}
	if err := timeField("EBD/EBDTime", p.EBDTime); err != nil {
		return err
	}
	if p.RelatedEBD != nil && p.RelatedEBD.EBDID != "" {
		if err := ebdid("EBD/RelatedEBD/EBDID", p.RelatedEBD.EBDID); err != nil {
			return err
		}
	}
	bodies := p.bodies()
	if !slices.Contains(bodies, p.EBDType) {
		return cx.Invalid("EBD/"+p.EBDType, fmt.Sprintf("no value; a packet of type %s carries a <%s> element", p.EBDType, p.EBDType)).
			With(api.ReasonEBDBodyMissing, "value", p.EBDType)
	}
	for _, b := range bodies {
		if b != p.EBDType {
			return cx.Invalid("EBD/"+b, fmt.Sprintf("a packet of type %s carries no <%s> element", p.EBDType, b)).
				With(api.ReasonEBDBodyExtra, "value", b, "type", p.EBDType)
		}
	}
	const b = "EBD/"
	switch p.EBDType {
	case TypeEBM:
		return p.EBM.check(b + "EBM")
	case TypeEBMStateRequest:
		return checkEBMRef(b+"EBMStateRequest/EBM", p.EBMStateRequest.EBM)
	case TypeEBMStateResponse:
		r := p.EBMStateResponse
		const f = b + "EBMStateResponse"
		if err := timeField(f+"/RptTime", r.RptTime); err != nil {
			return err
		}
		if err := checkEBMRef(f+"/EBM", r.EBM); err != nil {
			return err
		}
		return checkBrdState(f, r.BrdStateCode, r.BrdStateDesc, r.Coverage)
	case TypeEBMBrdLog:
		return p.EBMBrdLog.check(b + "EBMBrdLog")
	case TypeOMDRequest:
		r := p.OMDRequest
		if err := oneOf(b+"OMDRequest/OMDType", r.OMDType, reportTypes...); err != nil {
			return err
		}
		return r.Params.check(b + "OMDRequest/Params")
	case TypeEBRPSInfo:
		return checkResources(b+"EBRPSInfo", "EBRPS", p.EBRPSInfo.Params, p.EBRPSInfo.Items, false)
	case TypeEBRSTInfo:
		return checkResources(b+"EBRSTInfo", "EBRST", p.EBRSTInfo.Params, p.EBRSTInfo.Items, false)
	case TypeEBRASInfo:
		return checkResources(b+"EBRASInfo", "EBRAS", p.EBRASInfo.Params, p.EBRASInfo.Items, false)
	case TypeEBRBSInfo:
		return checkResources(b+"EBRBSInfo", "EBRBS", p.EBRBSInfo.Params, p.EBRBSInfo.Items, false)
	case TypeEBRDTInfo:
		return checkResources(b+"EBRDTInfo", "EBRDT", p.EBRDTInfo.Params, p.EBRDTInfo.Items, false)
	case TypeEBRPSState:
		return checkResources(b+"EBRPSState", "EBRPS", p.EBRPSState.Params, p.EBRPSState.Items, true)
	case TypeEBRASState:
		return checkResources(b+"EBRASState", "EBRAS", p.EBRASState.Params, p.EBRASState.Items, true)
	case TypeEBRBSState:
		return checkResources(b+"EBRBSState", "EBRBS", p.EBRBSState.Params, p.EBRBSState.Items, true)
	case TypeEBRDTState:
		return checkResources(b+"EBRDTState", "EBRDT", p.EBRDTState.Params, p.EBRDTState.Items, true)
	case TypeConnectionCheck:
		return timeField(b+"ConnectionCheck/RptTime", p.ConnectionCheck.RptTime)
	case TypeEBDResponse:
		if p.RelatedEBD == nil || p.RelatedEBD.EBDID == "" {
			return required("EBD/RelatedEBD/EBDID", "")
		}
		r := p.EBDResponse
		if err := oneOf(b+"EBDResponse/ResultCode", r.ResultCode, "0", "1", "2", "3", "4", "5"); err != nil {
			return err
		}
		return text(b+"EBDResponse/ResultDesc", r.ResultDesc, maxText)
	}
	return nil
}

// reportTypes are the packet types an OMDRequest may ask for.
var reportTypes = []string{
	TypeEBRPSInfo, TypeEBRSTInfo, TypeEBRASInfo, TypeEBRBSInfo, TypeEBRDTInfo,
	TypeEBMBrdLog, TypeEBRPSState, TypeEBRASState, TypeEBRBSState, TypeEBRDTState,
}

var (
	msgTypes   = []string{MsgBroadcast, MsgCancel, MsgDrillSimulated, MsgDrillReal}
	severities = []string{SeverityUnknown, SeverityRed, SeverityOrange, SeverityYellow, SeverityBlue, SeverityRoutine, SeverityTest, "21", "22", "23"}
	brdStates  = []string{BrdUnprocessed, BrdWaiting, BrdInProgress, BrdSucceeded, BrdFailed, BrdCancelled}
	resStates  = []string{StateOn, StateOff, StateFault, StateRecovered, StateBroadcasting}
)

// checkEBMRef checks an EBM that only names a message.
func checkEBMRef(f string, m *EBM) error {
	if m == nil {
		return required(f, "")
	}
	return ebmid(f+"/EBMID", m.EBMID)
}

func (m *EBM) check(f string) error {
	if err := text(f+"/EBMVersion", m.EBMVersion, 16); err != nil {
		return err
	}
	if err := ebmid(f+"/EBMID", m.EBMID); err != nil {
		return err
	}
	if r := m.RelatedInfo; r != nil {
		if r.EBMID != "" {
			if err := ebmid(f+"/RelatedInfo/EBMID", r.EBMID); err != nil {
				return err
			}
		}
		if err := text(f+"/RelatedInfo/EBIID", r.EBIID, 64); err != nil {
			return err
		}
	}
	bi := m.MsgBasicInfo
	if bi == nil {
		return required(f+"/MsgBasicInfo", "")
	}
	bf := f + "/MsgBasicInfo"
	if err := oneOf(bf+"/MsgType", bi.MsgType, msgTypes...); err != nil {
		return err
	}
	if err := requiredText(bf+"/SenderName", bi.SenderName, maxText); err != nil {
		return err
	}
	if err := requiredText(bf+"/SenderCode", bi.SenderCode, 64); err != nil {
		return err
	}
	if err := timeField(bf+"/SendTime", bi.SendTime); err != nil {
		return err
	}
	if bi.MsgType == MsgCancel {
		// A cancel names the message by EBMID; the rest may be absent.
		if m.MsgContent != nil {
			return m.MsgContent.check(f+"/MsgContent", true)
		}
		return nil
	}
	if err := required(bf+"/EventType", bi.EventType); err != nil {
		return err
	}
	if !eventType(bi.EventType) {
		return invalid(bf+"/EventType", api.ReasonEBDIDShape, clip(bi.EventType), "%q is not an event type code of 5 digits or capital letters, like 11B03", clip(bi.EventType))
	}
	if err := oneOf(bf+"/Severity", bi.Severity, severities...); err != nil {
		return err
	}
	if err := timeField(bf+"/StartTime", bi.StartTime); err != nil {
		return err
	}
	if err := timeField(bf+"/EndTime", bi.EndTime); err != nil {
		return err
	}
	start, _ := ParseTime(bi.StartTime)
	end, _ := ParseTime(bi.EndTime)
	if !end.After(start) {
		return invalid(bf+"/EndTime", api.ReasonEBDTimeOrder, bi.EndTime, "%s is not after StartTime %s", bi.EndTime, bi.StartTime)
	}
	if m.MsgContent == nil {
		return required(f+"/MsgContent", "")
	}
	return m.MsgContent.check(f+"/MsgContent", false)
}

// eventType: GB/T 35965.1-style codes, five digits or capital letters.
func eventType(v string) bool {
	if len(v) != 5 {
		return false
	}
	for i := 0; i < len(v); i++ {
		if !(v[i] >= '0' && v[i] <= '9' || v[i] >= 'A' && v[i] <= 'Z') {
			return false
		}
	}
	return true
}

func (c *MsgContent) check(f string, cancel bool) error {
	if cancel {
		// Checked if given, required only of a broadcast.
		if c.AreaCode != "" {
			if err := areaCodes(f+"/AreaCode", c.AreaCode); err != nil {
				return err
			}
		}
		return text(f+"/MsgDesc", c.MsgDesc, maxMsgDesc)
	}
	if err := required(f+"/LanguageCode", c.LanguageCode); err != nil {
		return err
	}
	if !languageCode(c.LanguageCode) {
		return invalid(f+"/LanguageCode", api.ReasonEBDValue, clip(c.LanguageCode), "%q is not a language code like zho", clip(c.LanguageCode))
	}
	if err := requiredText(f+"/MsgTitle", c.MsgTitle, maxText); err != nil {
		return err
	}
	if err := text(f+"/MsgDesc", c.MsgDesc, maxMsgDesc); err != nil {
		return err
	}
	if err := areaCodes(f+"/AreaCode", c.AreaCode); err != nil {
		return err
	}
	if c.ProgramNum != "" {
		if err := number(f+"/ProgramNum", c.ProgramNum, 0, 65535); err != nil {
			return err
		}
	}
	if err := tooMany(f+"/Auxiliary", len(c.Auxiliary), MaxAuxiliary); err != nil {
		return err
	}
	if len(c.Auxiliary) == 0 && c.MsgDesc == "" {
		return cx.Invalid(f+"/MsgDesc", "no value; a message without audio must have a text to speak").
			With(api.ReasonEBDMissing, "field", f+"/MsgDesc")
	}
	for i, a := range c.Auxiliary {
		af := item(f, "Auxiliary", i, len(c.Auxiliary))
		if err := required(af+"/AuxiliaryType", a.AuxiliaryType); err != nil {
			return err
		}
		if err := number(af+"/AuxiliaryType", a.AuxiliaryType, 0, 255); err != nil {
			return err
		}
		if err := required(af+"/AuxiliaryDesc", a.AuxiliaryDesc); err != nil {
			return err
		}
		if !safeName(a.AuxiliaryDesc) {
			return invalid(af+"/AuxiliaryDesc", api.ReasonEBDValue, clip(a.AuxiliaryDesc), "%q is not a plain file name", clip(a.AuxiliaryDesc))
		}
		if a.Size != "" {
			if n, err := strconv.ParseInt(a.Size, 10, 64); err != nil || n < 0 {
				return invalid(af+"/Size", api.ReasonEBDValue, clip(a.Size), "%q is not a size in bytes", clip(a.Size))
			}
		}
		if a.Digest != "" && !sm3Hex(a.Digest) {
			return invalid(af+"/Digest", api.ReasonEBDValue, clip(a.Digest), "%q is not an SM3 digest in 64 hexadecimal digits", clip(a.Digest))
		}
	}
	return nil
}

// languageCode: GB/T 4880.2 three-letter codes (zho), or a tag like zh-CN.
func languageCode(v string) bool {
	if len(v) < 2 || len(v) > 16 {
		return false
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '-' && i > 0) {
			return false
		}
	}
	return true
}

func sm3Hex(v string) bool {
	if len(v) != 64 {
		return false
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}

func checkBrdState(f, code, desc string, cov *Coverage) error {
	if err := oneOf(f+"/BrdStateCode", code, brdStates...); err != nil {
		return err
	}
	if err := text(f+"/BrdStateDesc", desc, maxText); err != nil {
		return err
	}
	if cov == nil {
		return nil
	}
	if err := required(f+"/Coverage/CoverageRate", cov.CoverageRate); err != nil {
		return err
	}
	if err := number(f+"/Coverage/CoverageRate", cov.CoverageRate, 0, 100); err != nil {
		return err
	}
	if cov.AreaCode != "" {
		if err := areaCodes(f+"/Coverage/AreaCode", cov.AreaCode); err != nil {
			return err
		}
	}
	return text(f+"/Coverage/ResBrdStat", cov.ResBrdStat, maxText)
}

func (l *EBMBrdLog) check(f string) error {
	if err := l.Params.check(f + "/Params"); err != nil {
		return err
	}
	if err := tooMany(f+"/EBMBrdItem", len(l.Items), MaxItems); err != nil {
		return err
	}
	for i, it := range l.Items {
		itf := item(f, "EBMBrdItem", i, len(l.Items))
		if err := checkEBMRef(itf+"/EBM", it.EBM); err != nil {
			return err
		}
		if err := checkBrdState(itf, it.BrdStateCode, it.BrdStateDesc, it.Coverage); err != nil {
			return err
		}
		if it.ResBrdInfo == nil {
			continue
		}
		if err := tooMany(itf+"/ResBrdInfo/ResBrdItem", len(it.ResBrdInfo.Items), MaxItems); err != nil {
			return err
		}
		for j, r := range it.ResBrdInfo.Items {
			rf := item(itf+"/ResBrdInfo", "ResBrdItem", j, len(it.ResBrdInfo.Items))
			if err := ebrid(rf+"/EBRID", r.EBRID); err != nil {
				return err
			}
			if err := optionalTime(rf+"/StartTime", r.StartTime); err != nil {
				return err
			}
			if err := optionalTime(rf+"/EndTime", r.EndTime); err != nil {
				return err
			}
			if r.BrdStateCode != "" {
				if err := oneOf(rf+"/BrdStateCode", r.BrdStateCode, brdStates...); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

func (p *Params) check(f string) error {
	if p == nil {
		return nil
	}
	if err := optionalTime(f+"/RptStartTime", p.RptStartTime); err != nil {
		return err
	}
	if err := optionalTime(f+"/RptEndTime", p.RptEndTime); err != nil {
		return err
	}
	if p.RptStartTime != "" && p.RptEndTime != "" {
		s, _ := ParseTime(p.RptStartTime)
		e, _ := ParseTime(p.RptEndTime)
		if e.Before(s) {
			return invalid(f+"/RptEndTime", api.ReasonEBDTimeOrder, p.RptEndTime, "%s is before RptStartTime %s", p.RptEndTime, p.RptStartTime)
		}
	}
	if p.RptType != "" {
		return oneOf(f+"/RptType", p.RptType, RptFull, RptIncremental)
	}
	return nil
}

// checkResources checks an inventory (state false) or state report.
func checkResources(f, name string, params *Params, items []Resource, state bool) error {
	if err := params.check(f + "/Params"); err != nil {
		return err
	}
	if err := tooMany(f+"/"+name, len(items), MaxItems); err != nil {
		return err
	}
	for i, r := range items {
		rf := item(f, name, i, len(items))
		if err := timeField(rf+"/RptTime", r.RptTime); err != nil {
			return err
		}
		if err := ebrid(rf+"/EBRID", r.EBRID); err != nil {
			return err
		}
		for _, rel := range []struct {
			name string
			r    *Related
		}{{"RelatedEBRPS", r.RelatedEBRPS}, {"RelatedEBRST", r.RelatedEBRST}, {"RelatedEBRAS", r.RelatedEBRAS}} {
			if rel.r != nil {
				if err := ebrid(rf+"/"+rel.name+"/EBRID", rel.r.EBRID); err != nil {
					return err
				}
			}
		}
		for _, t := range []struct{ name, v string }{
			{"EBRName", r.EBRName}, {"Address", r.Address}, {"Contact", r.Contact}, {"PhoneNumber", r.PhoneNumber}, {"StateDesc", r.StateDesc},
		} {
			if err := text(rf+"/"+t.name, t.v, maxText); err != nil {
				return err
			}
		}
		if r.Longitude != "" {
			if err := number(rf+"/Longitude", r.Longitude, -180, 180); err != nil {
				return err
			}
		}
		if r.Latitude != "" {
			if err := number(rf+"/Latitude", r.Latitude, -90, 90); err != nil {
				return err
			}
		}
		if r.AreaCode != "" {
			if err := areaCodes(rf+"/AreaCode", r.AreaCode); err != nil {
				return err
			}
		}
		if r.URL != "" {
			if err := checkURL(rf+"/URL", r.URL); err != nil {
				return err
			}
		}
		if state {
			if err := oneOf(rf+"/StateCode", r.StateCode, resStates...); err != nil {
				return err
			}
			continue
		}
		if err := oneOf(rf+"/RptType", r.RptType, OpSync, OpDelete); err != nil {
			return err
		}
		if r.RptType == OpSync {
			if err := required(rf+"/EBRName", r.EBRName); err != nil {
				return err
			}
		}
		if r.StateCode != "" {
			if err := oneOf(rf+"/StateCode", r.StateCode, resStates...); err != nil {
				return err
			}
		}
	}
	return nil
}

// safeName reports whether s is a plain file name: no path, no "." or
// "..", no control characters, no characters Windows forbids, at most 255
// bytes.
func safeName(s string) bool {
	if s == "" || s == "." || s == ".." || len(s) > 255 || !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if unicode.IsControl(r) || strings.ContainsRune(`/\:*?"<>|`, r) {
			return false
		}
	}
	return true
}
