package ebd

import (
	"bytes"
	"encoding/xml"
	"fmt"
)

// Packet types (EBDType). Each names the one body element a packet carries.
const (
	TypeEBM              = "EBM"              // an emergency message: broadcast it, or cancel one
	TypeEBMStateRequest  = "EBMStateRequest"  // how is the broadcast of a message going?
	TypeEBMStateResponse = "EBMStateResponse" // the answer
	TypeEBMBrdLog        = "EBMBrdLog"        // the broadcast log, with coverage
	TypeOMDRequest       = "OMDRequest"       // send me your inventory, states or log
	TypeEBRPSInfo        = "EBRPSInfo"        // platforms
	TypeEBRSTInfo        = "EBRSTInfo"        // stations
	TypeEBRASInfo        = "EBRASInfo"        // message adapters
	TypeEBRBSInfo        = "EBRBSInfo"        // broadcast systems
	TypeEBRDTInfo        = "EBRDTInfo"        // devices and terminals (the village boxes)
	TypeEBRPSState       = "EBRPSState"
	TypeEBRASState       = "EBRASState"
	TypeEBRBSState       = "EBRBSState"
	TypeEBRDTState       = "EBRDTState"
	TypeConnectionCheck  = "ConnectionCheck" // heartbeat
	TypeEBDResponse      = "EBDResponse"     // the answer to any packet
)

// Types lists every packet type, in the order of the standard's tables.
var Types = []string{
	TypeEBM, TypeEBMStateRequest, TypeEBMStateResponse, TypeOMDRequest,
	TypeEBRPSInfo, TypeEBRSTInfo, TypeEBRASInfo, TypeEBRBSInfo, TypeEBRDTInfo,
	TypeEBMBrdLog, TypeEBRPSState, TypeEBRASState, TypeEBRBSState, TypeEBRDTState,
	TypeConnectionCheck, TypeEBDResponse,
}

// Packet is an <EBD> element: the header, and the one body its EBDType
// names. Every value is the trimmed text as written; Decode checks them.
type Packet struct {
	XMLName    xml.Name    `xml:"EBD"`
	EBDVersion string      `xml:"EBDVersion"`
	EBDID      string      `xml:"EBDID"`
	EBDType    string      `xml:"EBDType"`
	SRC        Source      `xml:"SRC"`
	DEST       *Dest       `xml:"DEST,omitempty"`
	EBDTime    string      `xml:"EBDTime"`
	RelatedEBD *RelatedEBD `xml:"RelatedEBD"`

	EBM              *EBM              `xml:"EBM,omitempty"`
	EBMStateRequest  *EBMStateRequest  `xml:"EBMStateRequest,omitempty"`
	EBMStateResponse *EBMStateResponse `xml:"EBMStateResponse,omitempty"`
	EBMBrdLog        *EBMBrdLog        `xml:"EBMBrdLog,omitempty"`
	OMDRequest       *OMDRequest       `xml:"OMDRequest,omitempty"`
	EBRPSInfo        *EBRPSList        `xml:"EBRPSInfo,omitempty"`
	EBRSTInfo        *EBRSTList        `xml:"EBRSTInfo,omitempty"`
	EBRASInfo        *EBRASList        `xml:"EBRASInfo,omitempty"`
	EBRBSInfo        *EBRBSList        `xml:"EBRBSInfo,omitempty"`
	EBRDTInfo        *EBRDTList        `xml:"EBRDTInfo,omitempty"`
	EBRPSState       *EBRPSList        `xml:"EBRPSState,omitempty"`
	EBRASState       *EBRASList        `xml:"EBRASState,omitempty"`
	EBRBSState       *EBRBSList        `xml:"EBRBSState,omitempty"`
	EBRDTState       *EBRDTList        `xml:"EBRDTState,omitempty"`
	ConnectionCheck  *ConnectionCheck  `xml:"ConnectionCheck,omitempty"`
	EBDResponse      *EBDResponse      `xml:"EBDResponse,omitempty"`
}

// Source is the sending platform: its resource code and, optionally, the
// URL at which it takes packets.
type Source struct {
	EBRID string `xml:"EBRID"`
	URL   string `xml:"URL,omitempty"`
}

// Dest is the receiving platform.
type Dest struct {
	EBRID string `xml:"EBRID"`
}

// RelatedEBD names the packet this one answers. The heartbeat sample
// carries an empty <RelatedEBD/>.
type RelatedEBD struct {
	EBDID string `xml:"EBDID,omitempty"`
}

// EBM is an emergency message. In a state request, a state response or a
// broadcast-log item only EBMID is required.
type EBM struct {
	EBMVersion   string        `xml:"EBMVersion,omitempty"`
	EBMID        string        `xml:"EBMID"`
	RelatedInfo  *RelatedInfo  `xml:"RelatedInfo,omitempty"`
	MsgBasicInfo *MsgBasicInfo `xml:"MsgBasicInfo,omitempty"`
	MsgContent   *MsgContent   `xml:"MsgContent,omitempty"`
}

// RelatedInfo links a message to an earlier message or to the
// early-warning information (EBIID) it was made from.
type RelatedInfo struct {
	EBMID string `xml:"EBMID,omitempty"`
	EBIID string `xml:"EBIID,omitempty"`
}

// Message types (MsgBasicInfo/MsgType).
const (
	MsgBroadcast = "1" // 请求播发
	MsgCancel    = "2" // 取消播发
	// One vendor's additions, accepted: a simulated and a real drill.
	MsgDrillSimulated = "3"
	MsgDrillReal      = "4"
)

// MsgBasicInfo says who sent a message, what happened, how severe it is and
// when to broadcast it.
type MsgBasicInfo struct {
	MsgType    string `xml:"MsgType"`
	SenderName string `xml:"SenderName"`
	SenderCode string `xml:"SenderCode"`
	SendTime   string `xml:"SendTime"`
	// SentTime is how one public implementation spells SendTime; Decode
	// moves it to SendTime.
	SentTime  string `xml:"SentTime,omitempty"`
	EventType string `xml:"EventType,omitempty"`
	Severity  string `xml:"Severity,omitempty"`
	StartTime string `xml:"StartTime,omitempty"`
	EndTime   string `xml:"EndTime,omitempty"`
}

// Severities (MsgBasicInfo/Severity): I-IV are red, orange, yellow, blue.
const (
	SeverityUnknown = "0"
	SeverityRed     = "1" // 特别重大 (I)
	SeverityOrange  = "2" // 重大 (II)
	SeverityYellow  = "3" // 较大 (III)
	SeverityBlue    = "4" // 一般 (IV)
	SeverityRoutine = "10"
	SeverityTest    = "15"
)

// MsgContent is what to say, in what language, where.
type MsgContent struct {
	LanguageCode string      `xml:"LanguageCode"`
	MsgTitle     string      `xml:"MsgTitle"`
	MsgDesc      string      `xml:"MsgDesc,omitempty"`
	AreaCode     string      `xml:"AreaCode"`
	ProgramNum   string      `xml:"ProgramNum,omitempty"`
	Auxiliary    []Auxiliary `xml:"Auxiliary,omitempty"`
}

// AreaCodes returns the administrative-division codes of AreaCode.
func (c *MsgContent) AreaCodes() []string { return SplitAreaCodes(c.AreaCode) }

// Auxiliary types seen in public use.
const (
	AuxMP3 = "2"
	AuxWAV = "3"
)

// Auxiliary is a file that goes with a message (its audio), carried in
// the same tar archive under the name AuxiliaryDesc.
type Auxiliary struct {
	AuxiliaryType string `xml:"AuxiliaryType"`
	AuxiliaryDesc string `xml:"AuxiliaryDesc"`
	Size          string `xml:"Size,omitempty"`
	Digest        string `xml:"Digest,omitempty"`
}

// EBMStateRequest asks how the broadcast of a message is going.
type EBMStateRequest struct {
	EBM *EBM `xml:"EBM"`
}

// Broadcast states (BrdStateCode).
const (
	BrdUnprocessed = "0" // 未处理
	BrdWaiting     = "1" // 等待播发
	BrdInProgress  = "2" // 播发中
	BrdSucceeded   = "3" // 播发成功
	BrdFailed      = "4" // 播发失败
	BrdCancelled   = "5" // 播发取消
)

// EBMStateResponse answers an EBMStateRequest.
type EBMStateResponse struct {
	RptTime      string    `xml:"RptTime"`
	EBM          *EBM      `xml:"EBM"`
	BrdStateCode string    `xml:"BrdStateCode"`
	BrdStateDesc string    `xml:"BrdStateDesc,omitempty"`
	Coverage     *Coverage `xml:"Coverage,omitempty"`
}

// Coverage is how much of the intended area a broadcast reached.
type Coverage struct {
	CoverageRate string `xml:"CoverageRate"`
	AreaCode     string `xml:"AreaCode,omitempty"`
	ResBrdStat   string `xml:"ResBrdStat,omitempty"`
}

// EBMBrdLog is the broadcast log over a period.
type EBMBrdLog struct {
	Params *Params      `xml:"Params,omitempty"`
	Items  []EBMBrdItem `xml:"EBMBrdItem"`
}

// EBMBrdItem is one message's broadcast: its state and coverage.
type EBMBrdItem struct {
	EBM          *EBM      `xml:"EBM"`
	BrdStateCode string    `xml:"BrdStateCode"`
	BrdStateDesc string    `xml:"BrdStateDesc,omitempty"`
	Coverage     *Coverage `xml:"Coverage,omitempty"`
	ResBrdInfo   *ResBrd   `xml:"ResBrdInfo,omitempty"`
}

// ResBrd lists per-resource broadcast times.
type ResBrd struct {
	Items []ResBrdItem `xml:"ResBrdItem"`
}

// ResBrdItem is one resource's part in a broadcast.
type ResBrdItem struct {
	EBRID        string `xml:"EBRID"`
	StartTime    string `xml:"StartTime,omitempty"`
	EndTime      string `xml:"EndTime,omitempty"`
	BrdStateCode string `xml:"BrdStateCode,omitempty"`
}

// OMD report types (Params/RptType).
const (
	RptFull        = "Full"
	RptIncremental = "Incremental"
)

// OMDRequest asks for operation and maintenance data: OMDType is one of
// the report packet types (EBRDTInfo, EBRDTState, EBMBrdLog, …).
type OMDRequest struct {
	OMDType string  `xml:"OMDType"`
	Params  *Params `xml:"Params,omitempty"`
}

// Params bounds a report in time and says whether it is full or
// incremental.
type Params struct {
	RptStartTime string `xml:"RptStartTime,omitempty"`
	RptEndTime   string `xml:"RptEndTime,omitempty"`
	RptType      string `xml:"RptType,omitempty"`
}

// Inventory operations (a resource's RptType).
const (
	OpSync   = "Sync"   // added or changed
	OpDelete = "Delete" // removed
)

// Resource states (StateCode).
const (
	StateOn           = "1" // 开机/正常运行
	StateOff          = "2" // 关机/停止运行
	StateFault        = "3" // 故障
	StateRecovered    = "4" // 故障恢复
	StateBroadcasting = "5" // 播发中
)

// Resource is one platform, station, adapter, broadcast system or
// terminal in an inventory (…Info) or state (…State) report. An inventory
// item carries RptType, EBRName and the position; a state item StateCode.
type Resource struct {
	RptTime      string   `xml:"RptTime"`
	RptType      string   `xml:"RptType,omitempty"`
	RelatedEBRPS *Related `xml:"RelatedEBRPS,omitempty"`
	RelatedEBRST *Related `xml:"RelatedEBRST,omitempty"`
	RelatedEBRAS *Related `xml:"RelatedEBRAS,omitempty"`
	EBRID        string   `xml:"EBRID"`
	EBRName      string   `xml:"EBRName,omitempty"`
	Address      string   `xml:"Address,omitempty"`
	Contact      string   `xml:"Contact,omitempty"`
	PhoneNumber  string   `xml:"PhoneNumber,omitempty"`
	Longitude    string   `xml:"Longitude,omitempty"`
	Latitude     string   `xml:"Latitude,omitempty"`
	AreaCode     string   `xml:"AreaCode,omitempty"`
	URL          string   `xml:"URL,omitempty"`
	StateCode    string   `xml:"StateCode,omitempty"`
	StateDesc    string   `xml:"StateDesc,omitempty"`
}

// Related names a related resource.
type Related struct {
	EBRID string `xml:"EBRID"`
}

// The report bodies: a Params and a list of resources, whose element name
// depends on the kind.
type (
	EBRPSList struct {
		Params *Params    `xml:"Params,omitempty"`
		Items  []Resource `xml:"EBRPS"`
	}
	EBRSTList struct {
		Params *Params    `xml:"Params,omitempty"`
		Items  []Resource `xml:"EBRST"`
	}
	EBRASList struct {
		Params *Params    `xml:"Params,omitempty"`
		Items  []Resource `xml:"EBRAS"`
	}
	EBRBSList struct {
		Params *Params    `xml:"Params,omitempty"`
		Items  []Resource `xml:"EBRBS"`
	}
	EBRDTList struct {
		Params *Params    `xml:"Params,omitempty"`
		Items  []Resource `xml:"EBRDT"`
	}
)

// ConnectionCheck is a heartbeat.
type ConnectionCheck struct {
	RptTime string `xml:"RptTime"`
}

// Result codes (EBDResponse/ResultCode).
const (
	ResultUnprocessed = 0 // 收到数据未处理
	ResultOK          = 1 // 接收解析及数据校验成功
	ResultParseFailed = 2 // 接收解析失败
	ResultIncomplete  = 3 // 数据内容缺失
	ResultBadSig      = 4 // 签名验证失败
	ResultOther       = 5 // 其它错误
)

// ResultTexts are the standard descriptions of the result codes.
var ResultTexts = map[int]string{
	ResultUnprocessed: "收到数据未处理",
	ResultOK:          "接收解析及数据校验成功",
	ResultParseFailed: "接收解析失败",
	ResultIncomplete:  "数据内容缺失",
	ResultBadSig:      "签名验证失败",
	ResultOther:       "其它错误",
}

// EBDResponse answers a packet.
type EBDResponse struct {
	ResultCode string `xml:"ResultCode"`
	ResultDesc string `xml:"ResultDesc,omitempty"`
}

// xmlHeader starts every file this package writes.
const xmlHeader = `<?xml version="1.0" encoding="UTF-8"?>` + "\n"

// Marshal writes p as an EBDB file: UTF-8, with an XML declaration,
// indented. It does not check p; Decode of the result does.
func Marshal(p *Packet) ([]byte, error) {
	return marshal(p)
}

func marshal(v any) ([]byte, error) {
	var b bytes.Buffer
	b.WriteString(xmlHeader)
	e := xml.NewEncoder(&b)
	e.Indent("", "  ")
	if err := e.Encode(v); err != nil {
		return nil, fmt.Errorf("encode packet: %w", err)
	}
	b.WriteByte('\n')
	return b.Bytes(), nil
}

// body returns the name of every body element p carries.
func (p *Packet) bodies() []string {
	var out []string
	for _, b := range []struct {
		name    string
		present bool
	}{
		{TypeEBM, p.EBM != nil},
		{TypeEBMStateRequest, p.EBMStateRequest != nil},
		{TypeEBMStateResponse, p.EBMStateResponse != nil},
		{TypeEBMBrdLog, p.EBMBrdLog != nil},
		{TypeOMDRequest, p.OMDRequest != nil},
		{TypeEBRPSInfo, p.EBRPSInfo != nil},
		{TypeEBRSTInfo, p.EBRSTInfo != nil},
		{TypeEBRASInfo, p.EBRASInfo != nil},
		{TypeEBRBSInfo, p.EBRBSInfo != nil},
		{TypeEBRDTInfo, p.EBRDTInfo != nil},
		{TypeEBRPSState, p.EBRPSState != nil},
		{TypeEBRASState, p.EBRASState != nil},
		{TypeEBRBSState, p.EBRBSState != nil},
		{TypeEBRDTState, p.EBRDTState != nil},
		{TypeConnectionCheck, p.ConnectionCheck != nil},
		{TypeEBDResponse, p.EBDResponse != nil},
	} {
		if b.present {
			out = append(out, b.name)
		}
	}
	return out
}
