package api_test

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cunxiang/cunxiang/api"
	"github.com/cunxiang/cunxiang/playlists"
)

// Fixed values behind the live goldens.
var (
	liveSession = api.LiveSessionID{0x5a, 0x17, 0xc0, 0xde, 0x00, 0x42, 0x99, 0x01}
	liveKey     = []byte("cunxiang-golden-live-frame-key-!") // 32 bytes
	liveStarted = issued.Add(30 * time.Minute)
	// liveOpusPacket is a real 20 ms Opus packet (hybrid, fullband) that
	// Chromium 156's WebCodecs AudioEncoder made at 24 kbit/s from the
	// fake microphone (docs/live.md, "Codec").
	liveOpusPacket = mustHex("f8ec073f30c9d552c121f07c97ea4d6ddd7d7c53c30c8ab413f4e8d28f6fe926890380a344fe83f56c0bbc64dd23a3d6a76669bc804afb2a0d8341aa8d")
)

func mustHex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

// liveStartCommand opens a township-wide emergency live session.
func liveStartCommand() api.Command {
	return api.Command{
		ID:        "4d5e6f708192a3b4c5d6e7f8091a2b3c",
		Kind:      api.KindLiveStart,
		Target:    api.TownshipGroup(township),
		Seq:       45,
		IssuedAt:  liveStarted,
		ExpiresAt: liveStarted.Add(api.MaxLiveSession + 24*time.Hour),
		Live: &api.LiveStart{
			BroadcastID: 88,
			Session:     liveSession,
			Priority:    playlists.Emergency,
			Severity:    2,
			EventType:   "11B00",
			Codec:       api.CodecOpus,
			FrameMS:     20,
			Key:         liveKey,
			StartedAt:   liveStarted,
			ExpiresAt:   liveStarted.Add(api.MaxLiveSession),
			Speaker:     "张镇长",
		},
	}
}

func liveStopCommand() api.Command {
	c := liveStartCommand()
	c.ID = "5e6f708192a3b4c5d6e7f8091a2b3c4d"
	c.Kind = api.KindLiveStop
	c.Seq = 46
	c.IssuedAt = liveStarted.Add(3 * time.Minute)
	c.Live = nil
	c.LiveStop = &api.LiveStop{BroadcastID: 88, Session: liveSession, LastSeq: 9000}
	return c
}

// liveFrame is frame 60 of the session: 1.18 s after it started.
func liveFrame() api.LiveFrame {
	return api.LiveFrame{Codec: api.CodecOpus, DurationMS: 20, Session: liveSession, Seq: 60, TimestampMS: 1180, Payload: liveOpusPacket}
}

func liveEventBatch() api.EventBatch {
	at := liveStarted.Add(2 * time.Second)
	return api.EventBatch{
		V: api.Version, Village: village, Version: "0.1.0",
		Events: []api.Event{
			{Seq: 7, Type: api.EventStarted, At: at, BroadcastID: 88, Live: &api.LiveReport{Session: liveSession, JoinedSeq: 1}},
			{Seq: 8, Type: api.EventFinished, At: at.Add(3 * time.Minute), BroadcastID: 88, Reason: api.LiveEndStopped,
				Live: &api.LiveReport{
					Session: liveSession, JoinedSeq: 1, PlayedMS: 176_420, ConcealedMS: 3_580,
					Dropped:  map[string]int64{"late": 12, "forged": 3},
					Dropouts: []api.LiveDropout{{AtMS: 61_000, LostMS: 2_400}, {AtMS: 100_020, LostMS: 60}},
				}},
			{Seq: 9, Type: api.EventFailed, At: at.Add(4 * time.Minute), BroadcastID: 89, Reason: api.LiveEndUnsupported},
		},
	}
}

// liveGoldens are appended to goldens().
func liveGoldens() []golden {
	var gs []golden
	gs = append(gs, commandGoldens("command_live_start", liveStartCommand())...)
	gs = append(gs, commandGoldens("command_live_stop", liveStopCommand())...)
	gs = append(gs, eventBatchGolden("event_batch_live", liveEventBatch))
	return gs
}

// liveCommandTopic is where a live command is published: the retained
// topic of its broadcast, which broadcast.cancel also replaces.
func liveCommandTopic(c api.Command) (string, bool) {
	switch c.Kind {
	case api.KindLiveStart:
		return topics.Broadcast(c.Target, c.Live.BroadcastID), true
	case api.KindLiveStop:
		return topics.Broadcast(c.Target, c.LiveStop.BroadcastID), true
	}
	return "", false
}

const liveFrameGolden = "live_frame_opus.hex"

// TestLiveFrameGolden pins the binary frame: the fixed frame seals to the
// file's bytes (hex, one line), and OpenLiveFrame gives the frame back.
func TestLiveFrameGolden(t *testing.T) {
	path := filepath.Join("testdata", liveFrameGolden)
	want := api.SealLiveFrame(liveKey, liveFrame())
	if *update {
		if err := os.WriteFile(path, []byte(hex.EncodeToString(want)+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	text, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update)", err)
	}
	data, err := hex.DecodeString(strings.TrimSpace(string(text)))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(data, want) {
		t.Errorf("encoding changed (rerun with -update if intended)\n got %x\nwant %x", want, data)
	}
	if len(data) != api.LiveFrameOverhead+len(liveOpusPacket) {
		t.Errorf("frame of %d bytes for a %d-byte packet, want overhead %d", len(data), len(liveOpusPacket), api.LiveFrameOverhead)
	}
	f, err := api.OpenLiveFrame(liveKey, liveSession, data)
	if err != nil {
		t.Fatalf("OpenLiveFrame: %v", err)
	}
	if g, w := mustJSON(t, f), mustJSON(t, liveFrame()); !bytes.Equal(g, w) {
		t.Errorf("opened\n%s\nwant\n%s", g, w)
	}
}

// TestOpenLiveFrameRefuses: every way a frame can be wrong gives the
// reason a box counts it under, and a genuine frame of the session passes.
func TestOpenLiveFrameRefuses(t *testing.T) {
	good := api.SealLiveFrame(liveKey, liveFrame())
	other := api.LiveSessionID{1}
	flip := func(i int) []byte {
		b := bytes.Clone(good)
		b[i] ^= 0x01
		return b
	}
	reseal := func(edit func(*api.LiveFrame)) []byte {
		f := liveFrame()
		edit(&f)
		return api.SealLiveFrame(liveKey, f)
	}
	tests := []struct {
		name    string
		key     []byte
		session api.LiveSessionID
		data    []byte
		want    error
	}{
		{"genuine", liveKey, liveSession, good, nil},
		{"genuine last frame", liveKey, liveSession, reseal(func(f *api.LiveFrame) { f.Flags = api.LiveFlagLast }), nil},
		{"wrong key", []byte("an-earlier-session-key-000000000"), liveSession, good, api.ErrLiveForged},
		{"short key", liveKey[:16], liveSession, good, api.ErrLiveForged},
		{"other session", liveKey, other, good, api.ErrLiveOtherSession},
		{"session rewritten", liveKey, other, func() []byte { b := bytes.Clone(good); copy(b[4:12], other[:]); return b }(), api.ErrLiveForged},
		{"seq changed", liveKey, liveSession, flip(15), api.ErrLiveForged},
		{"timestamp changed", liveKey, liveSession, flip(19), api.ErrLiveForged},
		{"flags changed", liveKey, liveSession, flip(1), api.ErrLiveForged},
		{"payload changed", liveKey, liveSession, flip(api.LiveFrameHeader + 3), api.ErrLiveForged},
		{"MAC changed", liveKey, liveSession, flip(len(good) - 1), api.ErrLiveForged},
		{"MAC cut", liveKey, liveSession, good[:len(good)-1], api.ErrLiveForged},
		{"version", liveKey, liveSession, flip(0), api.ErrLiveMalformed},
		{"too short", liveKey, liveSession, good[:api.LiveFrameOverhead-1], api.ErrLiveMalformed},
		{"empty", liveKey, liveSession, nil, api.ErrLiveMalformed},
		{"too long", liveKey, liveSession, reseal(func(f *api.LiveFrame) { f.Payload = make([]byte, api.MaxLiveFramePayload+1) }), api.ErrLiveMalformed},
		{"seq zero", liveKey, liveSession, reseal(func(f *api.LiveFrame) { f.Seq = 0 }), api.ErrLiveMalformed},
		{"unknown codec", liveKey, liveSession, reseal(func(f *api.LiveFrame) { f.Codec = 9 }), api.ErrLiveMalformed},
		{"odd duration", liveKey, liveSession, reseal(func(f *api.LiveFrame) { f.DurationMS = 25 }), api.ErrLiveMalformed},
		{"unknown flag", liveKey, liveSession, reseal(func(f *api.LiveFrame) { f.Flags = 2 }), api.ErrLiveMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := api.OpenLiveFrame(tt.key, tt.session, tt.data)
			if tt.want == nil && err != nil || tt.want != nil && !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

// TestLiveCommandsRefused: a live.start a box could not play safely is
// refused by Verify as malformed, after the signature checks out.
func TestLiveCommandsRefused(t *testing.T) {
	tests := []struct {
		name string
		edit func(*api.Command)
	}{
		{"no live", func(c *api.Command) { c.Live = nil }},
		{"no broadcast", func(c *api.Command) { c.Live.BroadcastID = 0 }},
		{"no session", func(c *api.Command) { c.Live.Session = api.LiveSessionID{} }},
		{"short key", func(c *api.Command) { c.Live.Key = liveKey[:31] }},
		{"no key", func(c *api.Command) { c.Live.Key = nil }},
		{"odd frame", func(c *api.Command) { c.Live.FrameMS = 30 }},
		{"bad priority", func(c *api.Command) { c.Live.Priority = "loud" }},
		{"bad severity", func(c *api.Command) { c.Live.Severity = 5 }},
		{"endless", func(c *api.Command) { c.Live.ExpiresAt = c.Live.StartedAt.Add(48 * time.Hour) }},
		{"longer than MaxLiveSession from issue", func(c *api.Command) { c.Live.ExpiresAt = c.IssuedAt.Add(api.MaxLiveSession + time.Minute) }},
		{"ends before start", func(c *api.Command) { c.Live.ExpiresAt = c.Live.StartedAt }},
		{"volume", func(c *api.Command) { c.Live.Volume = 101 }},
		{"stop without session", func(c *api.Command) {
			c.Kind = api.KindLiveStop
			c.Live = nil
			c.LiveStop = &api.LiveStop{BroadcastID: 88}
		}},
	}
	topic := topics.Broadcast(api.TownshipGroup(township), 88)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := liveStartCommand()
			l := *c.Live
			c.Live = &l
			tt.edit(&c)
			c.V = api.Version
			env := envelope(t, testKey, mustJSON(t, c))
			if _, err := api.Verify(testPub, topics, topic, env, verifyAt); !errors.Is(err, api.ErrMalformed) {
				t.Fatalf("Verify = %v, want ErrMalformed", err)
			}
		})
	}
	// An unknown codec name is refused by the decoder itself.
	payload := bytes.Replace(mustJSON(t, func() api.Command { c := liveStartCommand(); c.V = api.Version; return c }()),
		[]byte(`"codec":"opus"`), []byte(`"codec":"aac"`), 1)
	if _, err := api.Verify(testPub, topics, topic, envelope(t, testKey, payload), verifyAt); !errors.Is(err, api.ErrMalformed) {
		t.Fatalf("codec aac: Verify = %v, want ErrMalformed", err)
	}
}

// TestLiveRenewal: a talk longer than MaxLiveSession goes on under a
// renewed live.start, issued later with the same start and a later expiry.
func TestLiveRenewal(t *testing.T) {
	c := liveStartCommand()
	l := *c.Live
	c.Live = &l
	c.Seq++
	c.IssuedAt = l.StartedAt.Add(5 * time.Hour)
	c.ExpiresAt = c.IssuedAt.Add(api.MaxLiveSession + 24*time.Hour)
	c.Live.ExpiresAt = c.IssuedAt.Add(api.MaxLiveSession)
	topic := topics.Broadcast(c.Target, l.BroadcastID)
	if _, err := api.Verify(testPub, topics, topic, sign(t, testKey, c), c.IssuedAt.Add(time.Minute)); err != nil {
		t.Fatalf("renewal 5 h into the talk refused: %v", err)
	}
}

// TestLiveObjectKey: live.start, live.stop and broadcast.cancel of one
// broadcast are one object, so a replayed live.start cannot reopen a
// session its stop or cancellation superseded.
func TestLiveObjectKey(t *testing.T) {
	cancel := api.Command{Kind: api.KindBroadcastCancel, Cancel: &api.Cancellation{BroadcastID: 88}}
	if a, b, c := liveStartCommand().ObjectKey(), liveStopCommand().ObjectKey(), cancel.ObjectKey(); a != b || b != c || a == "?" {
		t.Fatalf("object keys %q, %q, %q: want one key", a, b, c)
	}
}

func TestLiveTopics(t *testing.T) {
	g := api.TownshipGroup(township)
	ft := topics.LiveFrames(g, liveSession)
	if ft != "cx/v1/live/t/411421100/5a17c0de00429901" {
		t.Errorf("LiveFrames = %q", ft)
	}
	if _, ok := topics.GroupOfCommandTopic(ft); ok {
		t.Errorf("frame topic %q parses as a command topic: a box would try to verify frames as commands", ft)
	}
	if topics.LiveFramesFilter(g) != "cx/v1/live/t/411421100/#" {
		t.Errorf("LiveFramesFilter = %q", topics.LiveFramesFilter(g))
	}
}

func TestLiveSessionIDText(t *testing.T) {
	var id api.LiveSessionID
	for _, bad := range []string{"", "5a17", "5a17c0de004299010", "5a17c0de0042990g"} {
		if err := json.Unmarshal([]byte(`"`+bad+`"`), &id); err == nil {
			t.Errorf("session id %q accepted", bad)
		}
	}
	if a, b := api.NewLiveSessionID(), api.NewLiveSessionID(); a == b || a == (api.LiveSessionID{}) {
		t.Errorf("NewLiveSessionID gave %s and %s", a, b)
	}
	if len(api.NewLiveKey()) != api.LiveKeySize {
		t.Error("NewLiveKey size")
	}
}

// liveSeeds are the seeds of FuzzOpenLiveFrame.
func liveSeeds() []seed {
	good := api.SealLiveFrame(liveKey, liveFrame())
	last := liveFrame()
	last.Flags = api.LiveFlagLast
	return []seed{
		{"FuzzOpenLiveFrame", "golden_live_frame_opus", []any{good}},
		{"FuzzOpenLiveFrame", "last", []any{api.SealLiveFrame(liveKey, last)}},
		{"FuzzOpenLiveFrame", "header_only", []any{good[:api.LiveFrameHeader]}},
	}
}

// FuzzOpenLiveFrame feeds hostile bytes to the frame decoder: it never
// panics, refuses with one of its reasons, accepts only what the session
// key sealed, and what it accepts seals back to the same bytes.
//
//	go test ./api -run '^$' -fuzz FuzzOpenLiveFrame -fuzztime 20s
func FuzzOpenLiveFrame(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		fr, err := api.OpenLiveFrame(liveKey, liveSession, data)
		if err != nil {
			if !errors.Is(err, api.ErrLiveMalformed) && !errors.Is(err, api.ErrLiveForged) && !errors.Is(err, api.ErrLiveOtherSession) {
				t.Fatalf("error with no reason: %v", err)
			}
		} else if !bytes.Equal(api.SealLiveFrame(liveKey, fr), data) {
			t.Fatalf("accepted %x, which does not seal back to itself", data)
		}
		// The same bytes under a key that sealed nothing never pass.
		if _, err := api.OpenLiveFrame([]byte("someone-else-entirely-not-us-key"), liveSession, data); err == nil {
			t.Fatalf("accepted %x under a foreign key", data)
		}
		// Hostile bytes sealed by the controller itself: the header
		// checks after the MAC still hold.
		if len(data) >= api.LiveFrameHeader {
			sealed := append(bytes.Clone(data[:api.LiveFrameHeader]), data[api.LiveFrameHeader:]...)
			copy(sealed[4:12], liveSession[:])
			if len(sealed) > api.LiveFrameHeader+api.MaxLiveFramePayload {
				return
			}
			h := api.LiveFrame{Flags: sealed[1], Codec: api.LiveCodec(sealed[2]), DurationMS: sealed[3], Session: liveSession,
				Seq:         binary.BigEndian.Uint32(sealed[12:]),
				TimestampMS: binary.BigEndian.Uint32(sealed[16:]),
				Payload:     sealed[api.LiveFrameHeader:]}
			got, err := api.OpenLiveFrame(liveKey, liveSession, api.SealLiveFrame(liveKey, h))
			if err == nil && (got.Seq == 0 || !got.Codec.Valid() || got.Flags&^api.LiveFlagLast != 0) {
				t.Fatalf("accepted a sealed frame with seq %d, codec %d, flags %#x", got.Seq, got.Codec, got.Flags)
			}
			if err != nil && !errors.Is(err, api.ErrLiveMalformed) {
				t.Fatalf("sealed frame refused for %v, want ErrLiveMalformed", err)
			}
		}
	})
}

// The cost of authenticating one 20 ms frame, beside BenchmarkVerify (an
// Ed25519 signature, the alternative of signing each frame): docs/live.md.
func BenchmarkOpenLiveFrame(b *testing.B) {
	data := api.SealLiveFrame(liveKey, liveFrame())
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := api.OpenLiveFrame(liveKey, liveSession, data); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSealLiveFrame(b *testing.B) {
	f := liveFrame()
	for b.Loop() {
		api.SealLiveFrame(liveKey, f)
	}
}
