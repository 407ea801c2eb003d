package coverage_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/cunxiang/cunxiang/api"
	"github.com/cunxiang/cunxiang/controller/internal/coverage"
	"github.com/cunxiang/cunxiang/playlists"
)

// A province-sized occurrence: 20,000 targeted villages in 200 townships,
// nine in ten with a box. Of the boxes, most reported received, started
// and finished; some only started, some failed, some stayed silent.
//
//	go test ./controller/internal/coverage -run '^$' -bench . -benchmem
func benchInput(n int) coverage.Input {
	in := coverage.Input{Occurrence: occ, Duration: 5 * time.Minute, Now: occ.Add(10 * time.Minute), Location: sh}
	other := playlists.OccurrenceKey(occ.Add(-24 * time.Hour))
	for i := range n {
		code := fmt.Sprintf("4114%04d%04d", 100+i/100, i%100)
		town := fmt.Sprintf("乡%d", i/100)
		if i%10 == 9 {
			in.Villages = append(in.Villages, coverage.Village{Village: playlists.Village{Code: code, Name: "v", Township: town, Device: playlists.DeviceManual}})
			if i%20 == 9 {
				in.Confirmations = append(in.Confirmations, coverage.Confirmation{Village: code, PlayedAt: occ, By: "li"})
			}
			continue
		}
		in.Villages = append(in.Villages, agent(code, town, api.Online))
		ev := func(typ string, at time.Time, o string) {
			in.Events = append(in.Events, coverage.Event{Village: code, Type: typ, At: at, Occurrence: o})
		}
		ev(api.EventReceived, occ.Add(-time.Hour), "")
		ev(api.EventFinished, occ.Add(-23*time.Hour), other) // yesterday's, not counted
		switch i % 10 {
		case 0, 1, 2, 3, 4, 5:
			ev(api.EventStarted, occ, key)
			ev(api.EventFinished, occ.Add(5*time.Minute), key)
		case 6:
			ev(api.EventStarted, occ, key)
		case 7:
			in.Events = append(in.Events, coverage.Event{Village: code, Type: api.EventFailed, At: occ, Occurrence: key, Reason: "audio device busy"})
		}
	}
	return in
}

func BenchmarkCoverage20k(b *testing.B) {
	in := benchInput(20000)
	b.ReportAllocs()
	for b.Loop() {
		r := coverage.Compute(in)
		if r.Targeted != 20000 || r.PlayedByBox != 20000*6/10 {
			b.Fatalf("targeted %d, played by box %d", r.Targeted, r.PlayedByBox)
		}
	}
}

func BenchmarkCoverageBroadcast20k(b *testing.B) {
	in := benchInput(20000)
	var evs []coverage.Event
	for _, e := range in.Events {
		if e.Occurrence != "" && e.Occurrence != key {
			continue // a broadcast has no other occurrences
		}
		e.Occurrence = ""
		evs = append(evs, e)
	}
	bi := coverage.BroadcastInput{Released: true, ExpiresAt: occ.Add(time.Hour), Duration: 5 * time.Minute,
		Now: occ.Add(2 * time.Hour), Location: sh, Villages: in.Villages, Events: evs, Confirmations: in.Confirmations}
	b.ReportAllocs()
	for b.Loop() {
		r := coverage.ComputeBroadcast(bi)
		if r.Targeted != 20000 || r.PlayedByBox != 20000*6/10 {
			b.Fatalf("targeted %d, played by box %d", r.Targeted, r.PlayedByBox)
		}
	}
}
