package clock

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/cunxiang/cunxiang/api"
	"github.com/cunxiang/cunxiang/playlists/playliststest"
)

var _ Local = (*playliststest.Clock)(nil)

func TestClockOnALocalClock(t *testing.T) {
	t0 := time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC)
	tests := []struct {
		name         string
		offset, skew time.Duration
		wantOffset   time.Duration // before any measurement
	}{
		{"no offset", 0, 0, 0},
		{"stored offset", 90 * time.Second, 0, 90 * time.Second},
		{"box clock ahead", 0, 10 * time.Minute, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			local := playliststest.NewClock(t0)
			c := New(Options{Local: local, Offset: tt.offset, Skew: tt.skew})
			if got, want := c.Now(), t0.Add(tt.skew+tt.offset); !got.Equal(want) {
				t.Fatalf("Now %s, want %s", got, want)
			}
			local.Advance(time.Minute)
			if got, want := c.Now(), t0.Add(tt.skew+tt.offset+time.Minute); !got.Equal(want) {
				t.Fatalf("Now after a minute %s, want %s", got, want)
			}
			if got := c.Offset(); got != tt.wantOffset {
				t.Fatalf("Offset %s, want %s", got, tt.wantOffset)
			}

			// The controller is 30 s ahead of true time: measuring puts the
			// box on it, whatever its own clock says.
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				json.NewEncoder(w).Encode(api.ClockResponse{Now: local.Now().Add(30 * time.Second)})
			}))
			defer srv.Close()
			s, err := c.Sync(context.Background(), srv.Client(), srv.URL)
			if err != nil {
				t.Fatal(err)
			}
			if want := 30*time.Second - tt.skew; s.Offset != want || c.Offset() != want {
				t.Fatalf("measured %s, Offset %s, want %s", s.Offset, c.Offset(), want)
			}
			if got, want := c.Now(), local.Now().Add(30*time.Second); !got.Equal(want) {
				t.Fatalf("Now %s, want the controller's %s", got, want)
			}
		})
	}
}

func TestTimersWaitOnTheLocalClock(t *testing.T) {
	local := playliststest.NewClock(time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC))
	c := New(Options{Local: local, Offset: time.Hour})
	_, fired := c.NewTimer(time.Minute)
	local.Advance(59 * time.Second)
	select {
	case <-fired:
		t.Fatal("fired early")
	default:
	}
	local.Advance(time.Second)
	select {
	case <-fired:
	default:
		t.Fatal("did not fire after a minute")
	}
}
