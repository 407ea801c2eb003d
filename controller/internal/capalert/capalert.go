// Package capalert reads OASIS Common Alerting Protocol 1.2 messages, the
// international format in which weather services and emergency platforms
// send warnings, and turns them into broadcast requests for the villages
// they name.
//
// Parse checks a message strictly and says which element is wrong in the
// path form a clerk can find in the file ("alert/info/area/geocode: no
// value"). It refuses any <!DOCTYPE> (and so any entity declaration)
// outright, caps the input at MaxBytes, and accepts UTF-8 or, as Chinese
// platforms often send, GB2312/GBK/GB18030. Alert.Request maps a checked
// message to a Request; ParseRequest does both.
package capalert

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/text/encoding/simplifiedchinese"

	"github.com/cunxiang/cunxiang/api"
	"github.com/cunxiang/cunxiang/controller/internal/cx"
)

// Namespace is the XML namespace of CAP 1.2.
const Namespace = "urn:oasis:names:tc:emergency:cap:1.2"

// MaxBytes is the largest message accepted. A CAP message is a few
// kilobytes; only an embedded resource (derefUri) makes one larger, and
// this package uses resources by their uri only.
const MaxBytes = 1 << 20

// Alert is a CAP 1.2 alert as written, every value a trimmed string.
type Alert struct {
	Identifier  string   `xml:"identifier"`
	Sender      string   `xml:"sender"`
	Sent        string   `xml:"sent"`
	Status      string   `xml:"status"`
	MsgType     string   `xml:"msgType"`
	Source      string   `xml:"source"`
	Scope       string   `xml:"scope"`
	Restriction string   `xml:"restriction"`
	Addresses   string   `xml:"addresses"`
	Code        []string `xml:"code"`
	Note        string   `xml:"note"`
	References  string   `xml:"references"`
	Incidents   string   `xml:"incidents"`
	Info        []Info   `xml:"info"`
}

// Info is one info block: the event and what to do about it, in one
// language, for some areas.
type Info struct {
	Language     string       `xml:"language"`
	Category     []string     `xml:"category"`
	Event        string       `xml:"event"`
	ResponseType []string     `xml:"responseType"`
	Urgency      string       `xml:"urgency"`
	Severity     string       `xml:"severity"`
	Certainty    string       `xml:"certainty"`
	Audience     string       `xml:"audience"`
	EventCode    []NamedValue `xml:"eventCode"`
	Effective    string       `xml:"effective"`
	Onset        string       `xml:"onset"`
	Expires      string       `xml:"expires"`
	SenderName   string       `xml:"senderName"`
	Headline     string       `xml:"headline"`
	Description  string       `xml:"description"`
	Instruction  string       `xml:"instruction"`
	Web          string       `xml:"web"`
	Contact      string       `xml:"contact"`
	Parameter    []NamedValue `xml:"parameter"`
	Resource     []Resource   `xml:"resource"`
	Area         []Area       `xml:"area"`
}

// NamedValue is CAP's valueName/value pair (eventCode, parameter, geocode).
type NamedValue struct {
	ValueName string `xml:"valueName"`
	Value     string `xml:"value"`
}

// Resource is a file that goes with an info block.
type Resource struct {
	ResourceDesc string `xml:"resourceDesc"`
	MimeType     string `xml:"mimeType"`
	Size         string `xml:"size"`
	URI          string `xml:"uri"`
	DerefURI     string `xml:"derefUri"`
	Digest       string `xml:"digest"`
}

// Area is where an info block applies.
type Area struct {
	AreaDesc string       `xml:"areaDesc"`
	Polygon  []string     `xml:"polygon"`
	Circle   []string     `xml:"circle"`
	Geocode  []NamedValue `xml:"geocode"`
	Altitude string       `xml:"altitude"`
	Ceiling  string       `xml:"ceiling"`
}

// The values CAP 1.2 allows.
var (
	statuses   = []string{"Actual", "Exercise", "System", "Test", "Draft"}
	msgTypes   = []string{"Alert", "Update", "Cancel", "Ack", "Error"}
	scopes     = []string{"Public", "Restricted", "Private"}
	categories = []string{"Geo", "Met", "Safety", "Security", "Rescue", "Fire", "Health", "Env", "Transport", "Infra", "CBRNE", "Other"}
	urgencies  = []string{"Immediate", "Expected", "Future", "Past", "Unknown"}
	severities = []string{"Extreme", "Severe", "Moderate", "Minor", "Unknown"}
	certainty  = []string{"Observed", "Likely", "Possible", "Unlikely", "Unknown"}
)

// Parse reads one CAP 1.2 alert (at most MaxBytes) and checks it: the
// elements CAP requires (and an info block with an area for anything but
// a Cancel, which this system needs to broadcast), the allowed values,
// times with a time zone, references, and every geocode as an
// administrative-division code (see Geocode). Errors are *cx.Error
// values whose Field is the element's path.
func Parse(r io.Reader) (*Alert, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read CAP message: %w", err)
	}
	if len(data) > MaxBytes {
		return nil, cx.Errorf(cx.ETOOLARGE, "the CAP message is larger than %d KiB; if it embeds a file (derefUri), link the file by uri instead", MaxBytes>>10).
			With(api.ReasonCAPTooLarge, "max", MaxBytes>>10)
	}
	a, err := decode(data)
	if err != nil {
		return nil, err
	}
	if err := a.check(); err != nil {
		return nil, err
	}
	return a, nil
}

// ParseRequest parses a CAP alert and maps it to a Request.
func ParseRequest(r io.Reader) (Request, error) {
	a, err := Parse(r)
	if err != nil {
		return Request{}, err
	}
	return a.Request()
}

// decode reads the XML, refusing declarations and anything but one alert
// element in the CAP 1.2 namespace.
func decode(data []byte) (*Alert, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, cx.Errorf(cx.EINVALID, "the CAP message is empty").With(api.ReasonCAPEmpty)
	}
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf")) // a UTF-8 byte order mark, as Windows tools write
	d := xml.NewDecoder(bytes.NewReader(data))
	var charset string // a declared encoding that is refused
	d.CharsetReader = func(label string, input io.Reader) (io.Reader, error) {
		r, err := charsetReader(label, input)
		if err != nil {
			charset = label
		}
		return r, err
	}
	var root *xml.StartElement
	for root == nil {
		tok, err := d.Token()
		if charset != "" {
			return nil, cx.Errorf(cx.EINVALID, "the CAP message is in the %q character encoding; send it as UTF-8 (or GB18030)", charset).With(api.ReasonCAPCharset, "value", charset)
		}
		if err != nil {
			return nil, xmlError(err)
		}
		switch t := tok.(type) {
		case xml.Directive:
			return nil, refuseDirective(t)
		case xml.StartElement:
			root = &t
		case xml.CharData:
			if len(bytes.TrimSpace(t)) > 0 {
				return nil, cx.Errorf(cx.EINVALID, "the CAP message is not XML: it has text before its <alert> element").With(api.ReasonCAPNotXML)
			}
		}
	}
	if root.Name.Local != "alert" {
		return nil, cx.Errorf(cx.EINVALID, "this is not a CAP alert: its outermost element is <%s>, not <alert>", root.Name.Local).With(api.ReasonCAPNotAlert, "value", root.Name.Local)
	}
	if root.Name.Space != Namespace {
		ns := root.Name.Space
		if ns == "" {
			ns = "none"
		}
		return nil, cx.Invalid("alert", fmt.Sprintf("is in the XML namespace %q; only CAP 1.2 (xmlns=%q) is accepted", ns, Namespace)).
			With(api.ReasonCAPNamespace, "value", ns)
	}
	var a Alert
	if err := d.DecodeElement(&a, root); err != nil {
		return nil, xmlError(err)
	}
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, xmlError(err)
		}
		switch t := tok.(type) {
		case xml.Directive:
			return nil, refuseDirective(t)
		case xml.CharData:
			if len(bytes.TrimSpace(t)) == 0 {
				continue
			}
		case xml.Comment, xml.ProcInst:
			continue
		}
		return nil, cx.Errorf(cx.EINVALID, "the CAP message goes on after </alert>; send one alert per message").With(api.ReasonCAPTrailing)
	}
	a.trim()
	return &a, nil
}

func refuseDirective(d xml.Directive) error {
	kind := "a <!…> declaration"
	if f := strings.Fields(string(d)); len(f) > 0 && f[0] == "DOCTYPE" {
		kind = "a <!DOCTYPE> declaration"
	}
	return cx.Errorf(cx.EINVALID, "the CAP message contains %s; CAP messages have none, and one is refused because it can define entities", kind).With(api.ReasonCAPDeclaration)
}

func xmlError(err error) error {
	var se *xml.SyntaxError
	if errors.As(err, &se) {
		if strings.Contains(se.Msg, "unexpected EOF") {
			return cx.Errorf(cx.EINVALID, "the CAP message is cut short at line %d: its XML is not complete", se.Line).With(api.ReasonCAPTruncated)
		}
		return cx.Errorf(cx.EINVALID, "the CAP message is not well-formed XML: line %d: %s", se.Line, se.Msg).With(api.ReasonCAPXMLSyntax, "line", se.Line)
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return cx.Errorf(cx.EINVALID, "the CAP message is cut short: its XML is not complete").With(api.ReasonCAPTruncated)
	}
	return cx.Errorf(cx.EINVALID, "the CAP message cannot be read as XML: %v", err).With(api.ReasonCAPNotXML)
}

// charsetReader lets GB2312, GBK and GB18030 messages through (GB18030 is
// a superset of the other two) and refuses other declared encodings.
func charsetReader(label string, input io.Reader) (io.Reader, error) {
	switch strings.ToLower(strings.TrimSpace(label)) {
	case "utf-8", "utf8", "us-ascii", "ascii":
		return input, nil
	case "gb2312", "gbk", "gb18030", "cp936", "x-gbk":
		return simplifiedchinese.GB18030.NewDecoder().Reader(input), nil
	}
	return nil, errors.New("unsupported encoding")
}

func (a *Alert) trim() {
	for _, p := range []*string{&a.Identifier, &a.Sender, &a.Sent, &a.Status, &a.MsgType, &a.Source, &a.Scope, &a.Restriction, &a.Addresses, &a.Note, &a.References, &a.Incidents} {
		*p = strings.TrimSpace(*p)
	}
	trimAll(a.Code)
	for i := range a.Info {
		in := &a.Info[i]
		for _, p := range []*string{&in.Language, &in.Event, &in.Urgency, &in.Severity, &in.Certainty, &in.Audience, &in.Effective, &in.Onset, &in.Expires, &in.SenderName, &in.Headline, &in.Description, &in.Instruction, &in.Web, &in.Contact} {
			*p = strings.TrimSpace(*p)
		}
		trimAll(in.Category)
		trimAll(in.ResponseType)
		trimValues(in.EventCode)
		trimValues(in.Parameter)
		for j := range in.Resource {
			r := &in.Resource[j]
			for _, p := range []*string{&r.ResourceDesc, &r.MimeType, &r.Size, &r.URI, &r.Digest} {
				*p = strings.TrimSpace(*p)
			}
		}
		for j := range in.Area {
			ar := &in.Area[j]
			ar.AreaDesc = strings.TrimSpace(ar.AreaDesc)
			trimAll(ar.Polygon)
			trimAll(ar.Circle)
			trimValues(ar.Geocode)
		}
	}
}

func trimAll(s []string) {
	for i := range s {
		s[i] = strings.TrimSpace(s[i])
	}
}

func trimValues(v []NamedValue) {
	for i := range v {
		v[i].ValueName = strings.TrimSpace(v[i].ValueName)
		v[i].Value = strings.TrimSpace(v[i].Value)
	}
}

// path names an element for messages: "alert/info", or "alert/info[2]"
// when there are several.
func path(parent, name string, i, n int) string {
	if n > 1 {
		return fmt.Sprintf("%s/%s[%d]", parent, name, i+1)
	}
	return parent + "/" + name
}

// invalid refuses the element field for reason, which the console says
// with the element and its value; format and args are the English.
func invalid(field, reason, value, format string, args ...any) error {
	return cx.Invalid(field, fmt.Sprintf(format, args...)).With(reason, "field", field, "value", value)
}

func required(field, v string) error {
	if v == "" {
		return invalid(field, api.ReasonCAPMissing, "", "no value")
	}
	return nil
}

func oneOf(field, v string, allowed []string) error {
	if err := required(field, v); err != nil {
		return err
	}
	for _, a := range allowed {
		if v == a {
			return nil
		}
	}
	return cx.Invalid(field, fmt.Sprintf("%q is not one of %s", v, strings.Join(allowed, ", "))).
		With(api.ReasonCAPValue, "field", field, "value", v, "allowed", strings.Join(allowed, ", "))
}

// parseTime reads a CAP date and time, which must carry its time zone:
// 2024-07-10T06:30:00+08:00. CAP forbids "Z"; it is accepted all the
// same, as it is unambiguous and some senders write it.
func parseTime(field, v string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return time.Time{}, invalid(field, api.ReasonCAPTime, v, "%q is not a date and time with a time zone, like 2024-07-10T06:30:00+08:00", v)
	}
	return t, nil
}

// checkID checks an identifier or sender, which CAP forbids to contain
// spaces, commas, < or &.
func checkID(field, v string) error {
	if err := required(field, v); err != nil {
		return err
	}
	if strings.ContainsAny(v, " \t\r\n,<&") || !utf8.ValidString(v) {
		return invalid(field, api.ReasonCAPIDChars, v, "%q must not contain spaces, commas, < or &", v)
	}
	if len(v) > 256 {
		return invalid(field, api.ReasonCAPIDTooLong, v, "is %d bytes long; at most 256 are accepted", len(v))
	}
	return nil
}

// Reference names an earlier alert: an Update replaces it, a Cancel
// withdraws it.
type Reference struct {
	Sender, Identifier string
	Sent               time.Time
}

// String is the reference as CAP writes it: sender,identifier,sent.
func (r Reference) String() string {
	return r.Sender + "," + r.Identifier + "," + r.Sent.Format(time.RFC3339)
}

// parseReferences reads CAP's space-separated sender,identifier,sent triples.
func parseReferences(v string) ([]Reference, error) {
	var refs []Reference
	for _, f := range strings.Fields(v) {
		p := strings.Split(f, ",")
		if len(p) != 3 || p[0] == "" || p[1] == "" {
			return nil, invalid("alert/references", api.ReasonCAPReference, f, "%q is not sender,identifier,sent", f)
		}
		t, err := parseTime("alert/references", p[2])
		if err != nil {
			return nil, err
		}
		refs = append(refs, Reference{Sender: p[0], Identifier: p[1], Sent: t})
	}
	return refs, nil
}

func (a *Alert) check() error {
	if err := checkID("alert/identifier", a.Identifier); err != nil {
		return err
	}
	if err := checkID("alert/sender", a.Sender); err != nil {
		return err
	}
	if err := required("alert/sent", a.Sent); err != nil {
		return err
	}
	sent, err := parseTime("alert/sent", a.Sent)
	if err != nil {
		return err
	}
	if err := oneOf("alert/status", a.Status, statuses); err != nil {
		return err
	}
	if err := oneOf("alert/msgType", a.MsgType, msgTypes); err != nil {
		return err
	}
	if err := oneOf("alert/scope", a.Scope, scopes); err != nil {
		return err
	}
	if a.Scope == "Restricted" && a.Restriction == "" {
		return invalid("alert/restriction", api.ReasonCAPRestriction, "", "no value; a Restricted alert must say who may see it")
	}
	if a.Scope == "Private" && a.Addresses == "" {
		return invalid("alert/addresses", api.ReasonCAPAddresses, "", "no value; a Private alert must list its addressees")
	}
	refs, err := parseReferences(a.References)
	if err != nil {
		return err
	}
	if (a.MsgType == "Update" || a.MsgType == "Cancel") && len(refs) == 0 {
		article := "a"
		if a.MsgType == "Update" {
			article = "an"
		}
		return invalid("alert/references", api.ReasonCAPReferencesRequired, a.MsgType, "no value; %s %s must name the alert it concerns, as sender,identifier,sent", article, a.MsgType)
	}
	if len(a.Info) == 0 && a.MsgType != "Cancel" {
		return invalid("alert/info", api.ReasonCAPInfoRequired, "", "no value; an alert must have an info block saying what happened, how severe it is and where")
	}
	for i := range a.Info {
		if err := a.Info[i].check(path("alert", "info", i, len(a.Info)), sent, a.MsgType); err != nil {
			return err
		}
	}
	return nil
}

func (in *Info) check(p string, sent time.Time, msgType string) error {
	if in.Language != "" && !validLanguage(in.Language) {
		return invalid(p+"/language", api.ReasonCAPLanguage, in.Language, "%q is not a language tag like zh-CN", in.Language)
	}
	if len(in.Category) == 0 {
		return invalid(p+"/category", api.ReasonCAPMissing, "", "no value")
	}
	for _, c := range in.Category {
		if err := oneOf(p+"/category", c, categories); err != nil {
			return err
		}
	}
	if err := required(p+"/event", in.Event); err != nil {
		return err
	}
	if err := oneOf(p+"/urgency", in.Urgency, urgencies); err != nil {
		return err
	}
	if err := oneOf(p+"/severity", in.Severity, severities); err != nil {
		return err
	}
	if err := oneOf(p+"/certainty", in.Certainty, certainty); err != nil {
		return err
	}
	start := sent
	for _, f := range []struct{ name, v string }{{"effective", in.Effective}, {"onset", in.Onset}} {
		if f.v == "" {
			continue
		}
		t, err := parseTime(p+"/"+f.name, f.v)
		if err != nil {
			return err
		}
		if f.name == "effective" {
			start = t
		}
	}
	if in.Expires != "" {
		exp, err := parseTime(p+"/expires", in.Expires)
		if err != nil {
			return err
		}
		if !exp.After(sent) {
			return invalid(p+"/expires", api.ReasonCAPExpiresEarly, in.Expires, "%s is not after the alert was sent (%s)", in.Expires, sent.Format(time.RFC3339))
		}
		if !exp.After(start) {
			return invalid(p+"/expires", api.ReasonCAPExpiresEarly, in.Expires, "%s is not after the alert takes effect (%s)", in.Expires, in.Effective)
		}
	}
	for i, r := range in.Resource {
		rp := path(p, "resource", i, len(in.Resource))
		if err := required(rp+"/resourceDesc", r.ResourceDesc); err != nil {
			return err
		}
		if err := required(rp+"/mimeType", r.MimeType); err != nil {
			return err
		}
		if r.URI != "" && isAudio(r.MimeType) {
			if u, err := url.Parse(r.URI); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				return invalid(rp+"/uri", api.ReasonCAPURI, r.URI, "%q is not an http or https address", r.URI)
			}
		}
	}
	if len(in.Area) == 0 {
		if msgType == "Cancel" {
			return nil
		}
		return invalid(p+"/area", api.ReasonCAPAreaRequired, "", "no value; the alert must say where it applies, by administrative-division code")
	}
	for i, ar := range in.Area {
		ap := path(p, "area", i, len(in.Area))
		if err := required(ap+"/areaDesc", ar.AreaDesc); err != nil {
			return err
		}
		if len(ar.Geocode) == 0 {
			return invalid(ap, api.ReasonCAPGeocodeRequired, "", "has no geocode; this system reaches villages by administrative-division code (行政区划代码), not by polygon or circle")
		}
		for j, g := range ar.Geocode {
			gp := path(ap, "geocode", j, len(ar.Geocode))
			if _, err := Geocode(g.Value); err != nil {
				return invalid(gp, api.ReasonCAPGeocodeInvalid, g.Value, "%s", err)
			}
		}
	}
	return nil
}

func isAudio(mime string) bool {
	return strings.HasPrefix(strings.ToLower(mime), "audio/")
}

// validLanguage checks the shape of an RFC 3066 tag: letters, digits and
// hyphens, starting with a letter.
func validLanguage(s string) bool {
	if len(s) > 35 {
		return false
	}
	for i, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z':
		case (r >= '0' && r <= '9' || r == '-') && i > 0:
		default:
			return false
		}
	}
	return true
}
