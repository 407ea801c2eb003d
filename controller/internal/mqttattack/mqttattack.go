// Package mqttattack is a raw MQTT client for attack tests: it sends what a
// well-behaved client never would (a Will on any topic, retained publishes
// at any QoS, a header claiming a huge packet, a CONNECT sent a byte at a
// time, a connection dropped without DISCONNECT) and reads what the broker
// answers. Packets are encoded and decoded with mochi-mqtt's packets
// package. Only tests import it.
package mqttattack

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/cunxiang/cunxiang/api"
)

// IdentityFile is the file a real agent writes into its data directory at
// enrollment (agent/internal/identity.FileName).
const IdentityFile = "identity.json"

// LoadIdentity reads the credentials a real agent keeps in its data
// directory, as an attacker who took the box's disk would.
func LoadIdentity(dir string) (api.EnrollResponse, error) {
	var id api.EnrollResponse
	raw, err := os.ReadFile(filepath.Join(dir, IdentityFile))
	if err != nil {
		return id, fmt.Errorf("read box identity: %w", err)
	}
	if err := json.Unmarshal(raw, &id); err != nil {
		return id, fmt.Errorf("read box identity: %w", err)
	}
	if id.MQTTUsername == "" || id.MQTTPassword == "" {
		return id, fmt.Errorf("read box identity %s: no MQTT credentials", dir)
	}
	return id, nil
}

// Will is a Last Will to put in a CONNECT.
type Will struct {
	Topic   string
	Payload []byte
	QoS     byte
	Retain  bool
}

// Connect is what a CONNECT carries. Version is 4 (MQTT 3.1.1, the
// default) or 5.
type Connect struct {
	ClientID, Username, Password string
	Version                      byte
	Keepalive                    uint16
	Will                         *Will
	// Persistent asks the broker to keep the session (its subscriptions
	// and undelivered messages) after the connection ends: Clean Session
	// 0 in MQTT 3, a Session Expiry Interval in MQTT 5.
	Persistent bool
}

// Box fills a Connect with a box's credentials (client id = username).
func Box(id api.EnrollResponse) Connect {
	return Connect{ClientID: id.MQTTUsername, Username: id.MQTTUsername, Password: id.MQTTPassword}
}

func (o Connect) version() byte {
	if o.Version == 0 {
		return 4
	}
	return o.Version
}

// Encode returns the CONNECT packet's bytes.
func (o Connect) Encode() []byte {
	pk := packets.Packet{
		FixedHeader:     packets.FixedHeader{Type: packets.Connect},
		ProtocolVersion: o.version(),
		Connect: packets.ConnectParams{
			ProtocolName:     []byte("MQTT"),
			ClientIdentifier: o.ClientID,
			Clean:            !o.Persistent,
			Keepalive:        o.Keepalive,
			Username:         []byte(o.Username),
			UsernameFlag:     o.Username != "",
			Password:         []byte(o.Password),
			PasswordFlag:     o.Password != "",
		},
	}
	if o.Persistent && o.version() == 5 {
		pk.Connect.Clean = true // MQTT 5 keeps a session by its expiry, not by Clean Start
		pk.Properties.SessionExpiryInterval, pk.Properties.SessionExpiryIntervalFlag = 3600, true
	}
	if w := o.Will; w != nil {
		pk.Connect.WillFlag, pk.Connect.WillTopic, pk.Connect.WillPayload = true, w.Topic, w.Payload
		pk.Connect.WillQos, pk.Connect.WillRetain = w.QoS, w.Retain
	}
	var b bytes.Buffer
	if err := pk.ConnectEncode(&b); err != nil {
		panic(err) // ConnectEncode fails on nothing it is given here
	}
	return b.Bytes()
}

// HugeHeader is the fixed header of a packet of the given type claiming
// remaining bytes, with nothing after it.
func HugeHeader(typ byte, remaining int) []byte {
	var b bytes.Buffer
	(&packets.FixedHeader{Type: typ, Remaining: remaining}).Encode(&b)
	return b.Bytes()
}

// Conn is one raw connection to a broker.
type Conn struct {
	c       net.Conn
	r       *bufio.Reader
	version byte
	nextID  uint16
	// Received holds PUBLISH packets read while waiting for something
	// else (an ack), in order.
	Received []packets.Packet
}

// Dial opens a TCP connection to addr (host:port or tcp://host:port).
func Dial(addr string) (*Conn, error) { return DialFrom("", addr) }

// DialFrom is Dial from the local IP address from (another loopback
// address such as 127.0.0.2 stands for another machine); "" lets the
// system choose.
func DialFrom(from, addr string) (*Conn, error) {
	addr = strings.TrimPrefix(addr, "tcp://")
	d := net.Dialer{Timeout: 5 * time.Second}
	if from != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(from)}
	}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	return &Conn{c: c, r: bufio.NewReader(c), version: 4}, nil
}

// Write sends raw bytes.
func (c *Conn) Write(b []byte) (int, error) {
	c.c.SetWriteDeadline(time.Now().Add(10 * time.Second))
	return c.c.Write(b)
}

// Connect sends the CONNECT and returns the CONNACK's code (0 accepted;
// MQTT 3: 5 not authorized; MQTT 5: 0x87 not authorized, 0x86 bad login).
func (c *Conn) Connect(o Connect) (byte, error) {
	c.version = o.version()
	if _, err := c.Write(o.Encode()); err != nil {
		return 0, fmt.Errorf("send CONNECT: %w", err)
	}
	pk, err := c.Read(10 * time.Second)
	if err != nil {
		return 0, fmt.Errorf("read CONNACK: %w", err)
	}
	if pk.FixedHeader.Type != packets.Connack {
		return 0, fmt.Errorf("got packet type %d, want CONNACK", pk.FixedHeader.Type)
	}
	return pk.ReasonCode, nil
}

// Send encodes and sends pk in the connection's protocol version.
func (c *Conn) Send(pk packets.Packet) error {
	pk.ProtocolVersion = c.version
	var b bytes.Buffer
	var err error
	switch pk.FixedHeader.Type {
	case packets.Publish:
		err = pk.PublishEncode(&b)
	case packets.Pubrel:
		err = pk.PubrelEncode(&b)
	case packets.Puback:
		err = pk.PubackEncode(&b)
	case packets.Subscribe:
		err = pk.SubscribeEncode(&b)
	case packets.Disconnect:
		err = pk.DisconnectEncode(&b)
	case packets.Pingreq:
		err = pk.PingreqEncode(&b)
	default:
		return fmt.Errorf("mqttattack: cannot send packet type %d", pk.FixedHeader.Type)
	}
	if err != nil {
		return err
	}
	_, err = c.Write(b.Bytes())
	return err
}

// Read reads the next packet, waiting at most within.
func (c *Conn) Read(within time.Duration) (packets.Packet, error) {
	var pk packets.Packet
	c.c.SetReadDeadline(time.Now().Add(within))
	b, err := c.r.ReadByte()
	if err != nil {
		return pk, err
	}
	if err := pk.FixedHeader.Decode(b); err != nil {
		return pk, err
	}
	n, _, err := packets.DecodeLength(c.r)
	if err != nil {
		return pk, err
	}
	if n > 16<<20 {
		return pk, fmt.Errorf("broker sent a packet of %d bytes", n)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(c.r, body); err != nil {
		return pk, err
	}
	pk.FixedHeader.Remaining = n
	pk.ProtocolVersion = c.version
	switch pk.FixedHeader.Type {
	case packets.Connack:
		err = pk.ConnackDecode(body)
	case packets.Publish:
		err = pk.PublishDecode(body)
	case packets.Puback:
		err = pk.PubackDecode(body)
	case packets.Pubrec:
		err = pk.PubrecDecode(body)
	case packets.Pubrel:
		err = pk.PubrelDecode(body)
	case packets.Pubcomp:
		err = pk.PubcompDecode(body)
	case packets.Suback:
		err = pk.SubackDecode(body)
	case packets.Disconnect:
		err = pk.DisconnectDecode(body)
	case packets.Pingresp:
	default:
		err = fmt.Errorf("unexpected packet type %d", pk.FixedHeader.Type)
	}
	return pk, err
}

// readAck reads until a packet of type typ for id arrives, keeping the
// PUBLISHes read meanwhile in Received (and acknowledging QoS 1 ones).
func (c *Conn) readAck(typ byte, id uint16, within time.Duration) (packets.Packet, error) {
	deadline := time.Now().Add(within)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return packets.Packet{}, fmt.Errorf("no answer of type %d in %s", typ, within)
		}
		pk, err := c.Read(left)
		if err != nil {
			return pk, err
		}
		if pk.FixedHeader.Type == packets.Publish {
			c.keep(pk)
			continue
		}
		if pk.FixedHeader.Type == typ && pk.PacketID == id {
			return pk, nil
		}
		if pk.FixedHeader.Type == packets.Disconnect {
			return pk, fmt.Errorf("broker sent DISCONNECT (reason %#x)", pk.ReasonCode)
		}
	}
}

func (c *Conn) keep(pk packets.Packet) {
	c.Received = append(c.Received, pk)
	if pk.FixedHeader.Qos == 1 {
		_ = c.Send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, PacketID: pk.PacketID})
	}
}

func (c *Conn) id() uint16 {
	c.nextID++
	if c.nextID == 0 {
		c.nextID = 1
	}
	return c.nextID
}

// Publish sends a PUBLISH and, for QoS 1, waits for its PUBACK; for QoS 2
// it goes through PUBREC, PUBREL and PUBCOMP. It returns the reason code
// of the broker's last answer (PUBACK, or PUBREC when that refuses, else
// PUBCOMP); 0 for QoS 0. An MQTT 3 broker that refuses closes the
// connection: then the error says so.
func (c *Conn) Publish(topic string, payload []byte, qos byte, retain bool) (byte, error) {
	pk := packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: qos, Retain: retain},
		TopicName:   topic, Payload: payload,
	}
	if qos > 0 {
		pk.PacketID = c.id()
	}
	if err := c.Send(pk); err != nil {
		return 0, err
	}
	switch qos {
	case 0:
		return 0, nil
	case 1:
		ack, err := c.readAck(packets.Puback, pk.PacketID, 10*time.Second)
		return ack.ReasonCode, err
	}
	rec, err := c.readAck(packets.Pubrec, pk.PacketID, 10*time.Second)
	if err != nil || rec.ReasonCode >= 0x80 {
		return rec.ReasonCode, err
	}
	if err := c.Send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pubrel, Qos: 1}, PacketID: pk.PacketID}); err != nil {
		return 0, err
	}
	comp, err := c.readAck(packets.Pubcomp, pk.PacketID, 10*time.Second)
	return comp.ReasonCode, err
}

// Subscribe subscribes to filter and returns the granted QoS or refusal
// code (≥ 0x80).
func (c *Conn) Subscribe(filter string, qos byte) (byte, error) {
	pk := packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Subscribe, Qos: 1},
		PacketID:    c.id(),
		Filters:     packets.Subscriptions{{Filter: filter, Qos: qos}},
	}
	if err := c.Send(pk); err != nil {
		return 0, err
	}
	ack, err := c.readAck(packets.Suback, pk.PacketID, 10*time.Second)
	if err != nil {
		return 0, err
	}
	if len(ack.ReasonCodes) != 1 {
		return 0, fmt.Errorf("SUBACK with %d codes", len(ack.ReasonCodes))
	}
	return ack.ReasonCodes[0], nil
}

// Messages reads PUBLISHes until stop accepts the ones received so far or
// within passes; it returns them all (Received included).
func (c *Conn) Messages(within time.Duration, stop func([]packets.Packet) bool) ([]packets.Packet, error) {
	deadline := time.Now().Add(within)
	for !stop(c.Received) {
		left := time.Until(deadline)
		if left <= 0 {
			return c.Received, fmt.Errorf("waited %s for messages; got %d", within, len(c.Received))
		}
		pk, err := c.Read(left)
		if err != nil {
			return c.Received, err
		}
		if pk.FixedHeader.Type == packets.Publish {
			c.keep(pk)
		}
	}
	return c.Received, nil
}

// WaitClosed reports whether the broker closes the connection within the
// given time (reading and discarding what it sends meanwhile).
func (c *Conn) WaitClosed(within time.Duration) bool {
	deadline := time.Now().Add(within)
	buf := make([]byte, 512)
	for time.Now().Before(deadline) {
		c.c.SetReadDeadline(deadline)
		if _, err := c.r.Read(buf); err != nil {
			var ne net.Error
			return !(errors.As(err, &ne) && ne.Timeout())
		}
	}
	return false
}

// Disconnect sends DISCONNECT (so the broker drops the Will) and closes.
func (c *Conn) Disconnect() error {
	_ = c.Send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Disconnect}})
	return c.c.Close()
}

// Drop ends the connection without DISCONNECT, so the broker publishes
// the Will, and waits (at most within) until the broker has closed its
// side. mochi and Mosquitto publish the Will before they close, so once
// Drop returns nil the Will has gone out (and was retained if flagged).
func (c *Conn) Drop(within time.Duration) error {
	defer c.c.Close()
	if tc, ok := c.c.(*net.TCPConn); ok {
		if err := tc.CloseWrite(); err != nil {
			return err
		}
	}
	if !c.WaitClosed(within) {
		return fmt.Errorf("broker did not close the connection within %s", within)
	}
	return nil
}

// SetReadBuffer shrinks (or grows) the socket's receive buffer: a client
// that never reads then stops the broker's writes to it sooner.
func (c *Conn) SetReadBuffer(bytes int) error {
	tc, ok := c.c.(*net.TCPConn)
	if !ok {
		return errors.New("mqttattack: not a TCP connection")
	}
	return tc.SetReadBuffer(bytes)
}

// Close closes the connection at once.
func (c *Conn) Close() error { return c.c.Close() }
