package playlists_test

import (
	"reflect"
	"testing"
	"time"

	"github.com/cunxiang/cunxiang/playlists"
	"github.com/cunxiang/cunxiang/playlists/playliststest"
)

func TestPlaylistDuration(t *testing.T) {
	tests := []struct {
		name string
		p    playlists.Playlist
		want time.Duration
	}{
		{"empty", playlists.Playlist{GapMS: 1000}, 0},
		{"one clip, repeat 0 plays once", playlists.Playlist{Items: []playlists.Item{{DurationMS: 1500}}, GapMS: 1000}, 1500 * time.Millisecond},
		{"one clip once, no gap counted", playlists.Playlist{Items: []playlists.Item{{DurationMS: 1500, Repeat: 1}}, GapMS: 1000}, 1500 * time.Millisecond},
		{"repeat 3 with gaps", playlists.Playlist{Items: []playlists.Item{{DurationMS: 1000, Repeat: 3}}, GapMS: 500}, 4 * time.Second},
		{"two clips", playlists.Playlist{
			Items: []playlists.Item{{DurationMS: 1000, Repeat: 2}, {DurationMS: 2500, Repeat: 1}},
			GapMS: 200,
		}, 4900 * time.Millisecond},
		{"no gap", playlists.Playlist{Items: []playlists.Item{{DurationMS: 30000, Repeat: 2}, {DurationMS: 1}}}, 60001 * time.Millisecond},
		{"longest allowed", playlists.Playlist{
			Items: []playlists.Item{{DurationMS: int64(time.Hour / time.Millisecond), Repeat: playlists.MaxRepeat}},
			GapMS: int64(10 * time.Minute / time.Millisecond),
		}, 100*time.Hour + 99*10*time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.p.Duration(); got != tt.want {
				t.Errorf("Duration() = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestPlaylistValidate(t *testing.T) {
	valid := func() playlists.Playlist {
		return playlists.Playlist{ID: 1, Name: "防汛提醒", Items: []playlists.Item{{AudioID: 1, Repeat: 1}, {AudioID: 2, DurationMS: 4000}}, GapMS: 2000}
	}
	tests := []struct {
		name   string
		change func(*playlists.Playlist)
		field  string
	}{
		{"valid", func(*playlists.Playlist) {}, ""},
		{"repeat 0 means once", func(p *playlists.Playlist) { p.Items[0].Repeat = 0 }, ""},
		{"repeat max", func(p *playlists.Playlist) { p.Items[0].Repeat = playlists.MaxRepeat }, ""},
		{"gap max", func(p *playlists.Playlist) { p.GapMS = 600000 }, ""},
		{"no name", func(p *playlists.Playlist) { p.Name = "" }, "name"},
		{"no items", func(p *playlists.Playlist) { p.Items = nil }, "items"},
		{"no audio", func(p *playlists.Playlist) { p.Items[1].AudioID = 0 }, "items[1].audio_id"},
		{"negative audio", func(p *playlists.Playlist) { p.Items[0].AudioID = -1 }, "items[0].audio_id"},
		{"negative repeat", func(p *playlists.Playlist) { p.Items[1].Repeat = -1 }, "items[1].repeat"},
		{"repeat too high", func(p *playlists.Playlist) { p.Items[0].Repeat = playlists.MaxRepeat + 1 }, "items[0].repeat"},
		{"negative duration", func(p *playlists.Playlist) { p.Items[1].DurationMS = -1 }, "items[1].duration_ms"},
		{"negative gap", func(p *playlists.Playlist) { p.GapMS = -1 }, "gap_ms"},
		{"gap too long", func(p *playlists.Playlist) { p.GapMS = 600001 }, "gap_ms"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := valid()
			tt.change(&p)
			err := p.Validate()
			if tt.field == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if got := fieldOf(err); got != tt.field {
				t.Fatalf("Validate() = %v, want an error on field %q", err, tt.field)
			}
		})
	}
}

func TestTargetsSelect(t *testing.T) {
	county := playliststest.Villages()
	codes := func(vs []playlists.Village) []string {
		out := []string{}
		for _, v := range vs {
			out = append(out, v.Code)
		}
		return out
	}
	tests := []struct {
		name    string
		targets playlists.Targets
		want    int      // how many villages
		first   []string // the first codes selected, in county order
	}{
		{"nothing", playlists.Targets{}, 0, nil},
		{"all", playlists.Targets{All: true}, 81, []string{"411421100201", "411421100202"}},
		{"all wins over a list", playlists.Targets{All: true, Villages: []string{"411421108201"}}, 81, []string{"411421100201"}},
		{"one township", playlists.Targets{Townships: []string{"城关镇"}}, 12, []string{"411421100201", "411421100202"}},
		{"two townships", playlists.Targets{Townships: []string{"张桥乡", "东关镇"}}, 16, []string{"411421101201"}},
		{"manual villages are selected too", playlists.Targets{Townships: []string{"西河镇"}}, 8, []string{"411421102201"}},
		{"villages in county order", playlists.Targets{Villages: []string{"411421108207", "411421100203"}}, 2, []string{"411421100203", "411421108207"}},
		{"village in a chosen township counted once", playlists.Targets{Townships: []string{"北岗乡"}, Villages: []string{"411421104201", "411421105201"}}, 8, []string{"411421104201"}},
		{"unknown township", playlists.Targets{Townships: []string{"不存在镇"}}, 0, nil},
		{"township by code is not a name", playlists.Targets{Townships: []string{"411421100"}}, 0, nil},
		{"unknown village", playlists.Targets{Villages: []string{"411421199201"}}, 0, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := codes(tt.targets.Select(county))
			if len(got) != tt.want {
				t.Fatalf("Select() chose %d villages, want %d: %q", len(got), tt.want, got)
			}
			if len(tt.first) > 0 && !reflect.DeepEqual(got[:len(tt.first)], tt.first) {
				t.Errorf("Select() begins %q, want %q", got[:len(tt.first)], tt.first)
			}
			if empty := tt.targets.Empty(); empty != (tt.name == "nothing") {
				t.Errorf("Empty() = %v", empty)
			}
		})
	}
}

func TestFieldError(t *testing.T) {
	err := &playlists.FieldError{Field: "recurring.times[0]", Message: "bad", Reason: playlists.ReasonClockInvalid}
	if got, want := err.Error(), "recurring.times[0]: bad"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}
