package live_test

import (
	"bytes"
	"encoding/binary"
	"testing"
	"time"

	"github.com/cunxiang/cunxiang/agent/internal/live"
	"github.com/cunxiang/cunxiang/api"
	"github.com/cunxiang/cunxiang/playlists/playliststest"
)

// FuzzSession drives a session with a script of arrivals, ends and clock
// steps read from the fuzzer's bytes, and checks what must hold whatever
// the network and an attacker do: slots come out in seq order, one frame
// duration apart, each seq once; a frame's audio is the genuine one of its
// seq; nothing comes out after the end or at or after the expiry; the
// report adds up.
//
//	go test ./agent/internal/live -run '^$' -fuzz FuzzSession -fuzztime 20s
func FuzzSession(f *testing.F) {
	f.Add([]byte{0, 1, 0, 2, 0, 3, 4, 50, 0, 5, 4, 255, 4, 255})
	f.Add([]byte{0, 9, 0, 1, 1, 1, 2, 3, 4, 10, 0, 2, 3, 9, 4, 200, 5, 0})
	f.Fuzz(func(t *testing.T, script []byte) {
		st := start()
		st.ExpiresAt = t0.Add(20 * time.Second)
		clk := playliststest.NewClock(t0)
		s, err := live.New(st, t0, live.Options{})
		if err != nil {
			t.Fatal(err)
		}
		var slots []live.Slot
		var endedAt time.Time
		pop := func() {
			out := s.Pop(clk.Now())
			if len(out) > 0 && endedAt != (time.Time{}) {
				t.Fatalf("%d slots after the end", len(out))
			}
			slots = append(slots, out...)
			if s.Ended() != "" && endedAt == (time.Time{}) {
				endedAt = clk.Now()
			}
		}
		for i := 0; i+1 < len(script); i += 2 {
			op, arg := script[i]%6, script[i+1]
			seq := uint32(arg%64) + 1
			switch op {
			case 0: // a genuine frame
				_ = s.Offer(genuine(seq, false), clk.Now())
			case 1: // the genuine last frame
				_ = s.Offer(genuine(seq, true), clk.Now())
			case 2: // a forged or foreign frame
				_ = s.Offer(frame(oldKey, session, seq, 0, []byte("EVIL")), clk.Now())
				_ = s.Offer(frame(oldKey, oldSession, seq, 0, []byte("EVIL")), clk.Now())
			case 3: // bytes that are no frame at all
				b := make([]byte, int(arg))
				if len(b) >= 4 {
					binary.BigEndian.PutUint32(b, uint32(arg))
				}
				_ = s.Offer(b, clk.Now())
			case 4: // time passes
				clk.Advance(time.Duration(arg) * 7 * time.Millisecond)
			case 5: // the controller stops or cancels
				if arg%2 == 0 {
					s.Stop(seq)
				} else {
					s.Cancel()
				}
			}
			pop()
		}
		clk.Advance(time.Minute)
		pop()
		if s.Ended() == "" {
			t.Fatalf("not ended a minute after expiry")
		}
		var played, concealed int64
		for i, sl := range slots {
			if i > 0 && (sl.Seq != slots[i-1].Seq+1 || sl.At.Sub(slots[i-1].At) != frameMS*time.Millisecond) {
				t.Fatalf("slot %d: seq %d at %s after seq %d at %s", i, sl.Seq, sl.At, slots[i-1].Seq, slots[i-1].At)
			}
			if !sl.At.Before(st.ExpiresAt) {
				t.Fatalf("seq %d due at %s, at or after the expiry", sl.Seq, sl.At)
			}
			if sl.Concealed {
				concealed += frameMS
			} else {
				played += frameMS
				if !bytes.Equal(sl.Frame.Payload, payload(sl.Seq)) {
					t.Fatalf("seq %d played %q", sl.Seq, sl.Frame.Payload)
				}
			}
		}
		r := s.Report()
		if r.PlayedMS != played || r.ConcealedMS != concealed {
			t.Fatalf("report says %d ms played, %d concealed; slots say %d and %d", r.PlayedMS, r.ConcealedMS, played, concealed)
		}
		var lost int64
		for _, d := range r.Dropouts {
			lost += d.LostMS
		}
		if lost > concealed || len(r.Dropouts) > api.MaxLiveDropouts {
			t.Fatalf("dropouts %+v for %d ms concealed", r.Dropouts, concealed)
		}
	})
}

// BenchmarkSessionFrame is a box's cost per frame: Offer (with the MAC)
// and Pop, for docs/live.md's CPU figure.
func BenchmarkSessionFrame(b *testing.B) {
	frames := make([][]byte, 3000)
	for i := range frames {
		frames[i] = genuine(uint32(i+1), false)
	}
	st := start()
	st.ExpiresAt = t0.Add(24 * time.Hour)
	s, err := live.New(st, t0, live.Options{})
	if err != nil {
		b.Fatal(err)
	}
	now := t0
	i := 0
	for b.Loop() {
		if i == len(frames) {
			b.StopTimer()
			s, _ = live.New(st, now, live.Options{}) // a new session takes seq 1 again
			i = 0
			b.StartTimer()
		}
		if err := s.Offer(frames[i], now); err != nil {
			b.Fatal(err)
		}
		s.Pop(now)
		now = now.Add(frameMS * time.Millisecond)
		i++
	}
}
