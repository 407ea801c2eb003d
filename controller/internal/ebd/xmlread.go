package ebd

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"

	"golang.org/x/text/encoding/simplifiedchinese"

	"github.com/cunxiang/cunxiang/api"
	"github.com/cunxiang/cunxiang/controller/internal/cx"
)

// MaxXMLBytes is the largest EBDB or EBDS file accepted. A packet is a few
// kilobytes; an inventory of every terminal of a county a few hundred.
const MaxXMLBytes = 4 << 20

// decodeXML reads one element named root from data (the file called name,
// for messages) into v. It refuses any <!…> declaration (so any entity),
// content after the element, and encodings other than UTF-8 and
// GB2312/GBK/GB18030.
func decodeXML(name string, data []byte, root string, v any) error {
	if len(data) > MaxXMLBytes {
		return cx.Errorf(cx.ETOOLARGE, "%s is larger than %d KiB", name, MaxXMLBytes>>10).
			With(api.ReasonEBDTooLarge, "value", name, "max", MaxXMLBytes>>10)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return cx.Errorf(cx.EINVALID, "%s is empty", name).With(api.ReasonEBDEmpty, "value", name)
	}
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	d := xml.NewDecoder(bytes.NewReader(data))
	var refused string
	d.CharsetReader = func(label string, input io.Reader) (io.Reader, error) {
		switch strings.ToLower(strings.TrimSpace(label)) {
		case "utf-8", "utf8", "us-ascii", "ascii":
			return input, nil
		case "gb2312", "gbk", "gb18030", "cp936", "x-gbk":
			return simplifiedchinese.GB18030.NewDecoder().Reader(input), nil
		}
		refused = label
		return nil, errors.New("unsupported encoding")
	}
	var start *xml.StartElement
	for start == nil {
		tok, err := d.Token()
		if refused != "" {
			return cx.Errorf(cx.EINVALID, "%s is in the %q character encoding; send UTF-8 (or GB18030)", name, refused).
				With(api.ReasonEBDCharset, "value", refused)
		}
		if err != nil {
			return xmlError(name, err)
		}
		switch t := tok.(type) {
		case xml.Directive:
			return refuseDirective(name)
		case xml.StartElement:
			start = &t
		case xml.CharData:
			if len(bytes.TrimSpace(t)) > 0 {
				return cx.Errorf(cx.EINVALID, "%s is not XML: it has text before its first element", name).
					With(api.ReasonEBDNotXML, "value", name)
			}
		}
	}
	if start.Name.Local != root {
		return cx.Errorf(cx.EINVALID, "%s: the outermost element is <%s>, not <%s>", name, start.Name.Local, root).
			With(api.ReasonEBDRoot, "value", start.Name.Local, "want", root)
	}
	if err := d.DecodeElement(v, start); err != nil {
		return xmlError(name, err)
	}
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return xmlError(name, err)
		}
		switch t := tok.(type) {
		case xml.Directive:
			return refuseDirective(name)
		case xml.CharData:
			if len(bytes.TrimSpace(t)) == 0 {
				continue
			}
		case xml.Comment, xml.ProcInst:
			continue
		}
		return cx.Errorf(cx.EINVALID, "%s goes on after </%s>", name, root).With(api.ReasonEBDTrailing)
	}
}

func refuseDirective(name string) error {
	return cx.Errorf(cx.EINVALID, "%s contains a <!…> declaration; packets have none, and one is refused because it can define entities", name).
		With(api.ReasonEBDDeclaration)
}

func xmlError(name string, err error) error {
	var se *xml.SyntaxError
	if errors.As(err, &se) {
		if strings.Contains(se.Msg, "unexpected EOF") {
			return cx.Errorf(cx.EINVALID, "%s is cut short at line %d: its XML is not complete", name, se.Line).With(api.ReasonEBDTruncated)
		}
		return cx.Errorf(cx.EINVALID, "%s is not well-formed XML: line %d: %s", name, se.Line, se.Msg).
			With(api.ReasonEBDXMLSyntax, "line", se.Line)
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return cx.Errorf(cx.EINVALID, "%s is cut short: its XML is not complete", name).With(api.ReasonEBDTruncated)
	}
	return cx.Errorf(cx.EINVALID, "%s cannot be read as XML: %s", name, fmt.Sprint(err)).With(api.ReasonEBDNotXML, "value", name)
}
