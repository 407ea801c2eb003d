package api_test

import (
	"reflect"
	"testing"

	"github.com/cunxiang/cunxiang/api"
	"github.com/cunxiang/cunxiang/playlists"
	"github.com/cunxiang/cunxiang/playlists/playliststest"
)

func TestTopicNames(t *testing.T) {
	for _, tc := range []struct {
		prefix string
		topics api.Topics
	}{
		{"cx/v1", api.Topics{}},
		{"cx/v1", api.Topics{Prefix: api.DefaultPrefix}},
		{"test/run-7", api.Topics{Prefix: "test/run-7"}},
	} {
		tp, p := tc.topics, tc.prefix
		tests := []struct{ name, got, want string }{
			{"Schedule all", tp.Schedule(api.GroupAll, 7), p + "/cmd/all/sched/7"},
			{"Schedule township", tp.Schedule(api.TownshipGroup(township), 7), p + "/cmd/t/411421100/sched/7"},
			{"Schedule village", tp.Schedule(api.VillageGroup(village), 12345), p + "/cmd/v/411421100201/sched/12345"},
			{"ReportsAck", tp.ReportsAck(village), p + "/cmd/v/411421100201/ack"},
			{"CommandFilter all", tp.CommandFilter(api.GroupAll), p + "/cmd/all/#"},
			{"CommandFilter township", tp.CommandFilter(api.TownshipGroup(township)), p + "/cmd/t/411421100/#"},
			{"CommandFilter village", tp.CommandFilter(api.VillageGroup(village)), p + "/cmd/v/411421100201/#"},
			{"Events", tp.Events(village), p + "/evt/411421100201"},
			{"EventsFilter", tp.EventsFilter(), p + "/evt/+"},
			{"Presence", tp.Presence(village), p + "/presence/411421100201"},
			{"PresenceFilter", tp.PresenceFilter(), p + "/presence/+"},
		}
		for _, tt := range tests {
			t.Run(p+"/"+tt.name, func(t *testing.T) {
				if tt.got != tt.want {
					t.Errorf("got %q, want %q", tt.got, tt.want)
				}
			})
		}
	}
}

func TestGroups(t *testing.T) {
	if got, want := api.GroupsOf(village), []api.Group{"all", "t/411421100", "v/411421100201"}; !reflect.DeepEqual(got, want) {
		t.Errorf("GroupsOf = %q, want %q", got, want)
	}
	for _, tt := range []struct{ in, want string }{
		{"411421100201", "411421100"},
		{"411421100", "411421100"},
		{"4114", "4114"},
	} {
		if got := api.TownshipCode(tt.in); got != tt.want {
			t.Errorf("TownshipCode(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	// A box's three subscriptions are exactly its groups' filters.
	for _, g := range api.GroupsOf(village) {
		if f := topics.CommandFilter(g); !topics.BoxMay(village, f, false) {
			t.Errorf("box may not subscribe to its own %s", f)
		}
	}
}

func TestGroupOfCommandTopic(t *testing.T) {
	tests := []struct {
		topic string
		want  api.Group
		ok    bool
	}{
		{"cx/v1/cmd/all/sched/7", api.GroupAll, true},
		{"cx/v1/cmd/all", api.GroupAll, true},
		{"cx/v1/cmd/t/411421100/sched/7", "t/411421100", true},
		{"cx/v1/cmd/v/411421100201/ack", "v/411421100201", true},
		{"cx/v1/cmd/v/411421100201", "v/411421100201", true},
		{"cx/v1/cmd/x/411421100201/ack", "", false},
		{"cx/v1/cmd/v//ack", "", false},
		{"cx/v1/cmd/t", "", false},
		{"cx/v1/cmd/allx/sched/7", "", false},
		{"cx/v1/evt/411421100201", "", false},
		{"other/cmd/all/sched/7", "", false},
		{"", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.topic, func(t *testing.T) {
			g, ok := topics.GroupOfCommandTopic(tt.topic)
			if g != tt.want || ok != tt.ok {
				t.Errorf("got %q, %v; want %q, %v", g, ok, tt.want, tt.ok)
			}
		})
	}
}

func TestVillageOfTopic(t *testing.T) {
	tests := []struct {
		topic, want string
		ok          bool
	}{
		{"cx/v1/evt/411421100201", village, true},
		{"cx/v1/presence/411421100201", village, true},
		{"cx/v1/evt/", "", false},
		{"cx/v1/evt/411421100201/x", "", false},
		{"cx/v1/cmd/v/411421100201/ack", "", false},
		{"cx/v2/evt/411421100201", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.topic, func(t *testing.T) {
			v, ok := topics.VillageOfTopic(tt.topic)
			if v != tt.want || ok != tt.ok {
				t.Errorf("got %q, %v; want %q, %v", v, ok, tt.want, tt.ok)
			}
		})
	}
}

func TestBoxMay(t *testing.T) {
	// The box of 411421100201, township 411421100.
	tests := []struct {
		name    string
		topics  api.Topics
		village string
		topic   string
		publish bool
		want    bool
	}{
		{"subscribe own county filter", topics, village, "cx/v1/cmd/all/#", false, true},
		{"subscribe own township filter", topics, village, "cx/v1/cmd/t/411421100/#", false, true},
		{"subscribe own village filter", topics, village, "cx/v1/cmd/v/411421100201/#", false, true},
		{"subscribe one county command", topics, village, "cx/v1/cmd/all/sched/7", false, true},
		{"subscribe own ack", topics, village, "cx/v1/cmd/v/411421100201/ack", false, true},

		{"subscribe another township", topics, village, "cx/v1/cmd/t/411421101/#", false, false},
		{"subscribe another village", topics, village, "cx/v1/cmd/v/411421100202/#", false, false},
		{"subscribe another village's ack", topics, village, "cx/v1/cmd/v/411421100202/ack", false, false},
		{"subscribe a longer code", topics, village, "cx/v1/cmd/v/4114211002010/#", false, false},
		{"subscribe a shorter code", topics, village, "cx/v1/cmd/v/41142110020/#", false, false},
		{"subscribe a township prefix of the code", topics, village, "cx/v1/cmd/t/4114211/#", false, false},
		{"subscribe every command", topics, village, "cx/v1/cmd/#", false, false},
		{"subscribe the prefix", topics, village, "cx/v1/#", false, false},
		{"subscribe everything", topics, village, "#", false, false},
		{"subscribe group root without #", topics, village, "cx/v1/cmd/all", false, false},
		{"# in the middle", topics, village, "cx/v1/cmd/all/#/x", false, false},
		{"# below the root", topics, village, "cx/v1/cmd/all/sched/#", false, false},
		{"+ for the group", topics, village, "cx/v1/cmd/+/#", false, false},
		{"+ for the village", topics, village, "cx/v1/cmd/v/+/ack", false, false},
		{"+ for the township", topics, village, "cx/v1/cmd/t/+/sched/1", false, false},
		{"+ inside own group", topics, village, "cx/v1/cmd/all/sched/+", false, false},
		{"subscribe others' reports", topics, village, "cx/v1/evt/+", false, false},
		{"subscribe own reports", topics, village, "cx/v1/evt/411421100201", false, false},
		{"subscribe presence", topics, village, "cx/v1/presence/+", false, false},
		{"shared subscription", topics, village, "$share/g/cx/v1/cmd/all/#", false, false},
		{"another prefix", topics, village, "cx/v2/cmd/all/#", false, false},

		{"subscribe own county live frames", topics, village, "cx/v1/live/all/#", false, true},
		{"subscribe own township live frames", topics, village, "cx/v1/live/t/411421100/#", false, true},
		{"subscribe own village live frames", topics, village, "cx/v1/live/v/411421100201/#", false, true},
		{"subscribe one live session", topics, village, "cx/v1/live/t/411421100/5a17c0de00429901", false, true},
		{"subscribe another township's live frames", topics, village, "cx/v1/live/t/411421101/#", false, false},
		{"subscribe another village's live frames", topics, village, "cx/v1/live/v/411421100202/#", false, false},
		{"subscribe every live frame", topics, village, "cx/v1/live/#", false, false},
		{"+ for the live group", topics, village, "cx/v1/live/+/#", false, false},
		{"+ for the live session", topics, village, "cx/v1/live/all/+", false, false},

		{"publish own events", topics, village, "cx/v1/evt/411421100201", true, true},
		{"publish own presence", topics, village, "cx/v1/presence/411421100201", true, true},
		{"publish another's events", topics, village, "cx/v1/evt/411421100202", true, false},
		{"publish another's presence", topics, village, "cx/v1/presence/411421100202", true, false},
		{"publish own ack", topics, village, "cx/v1/cmd/v/411421100201/ack", true, false},
		{"publish a county command", topics, village, "cx/v1/cmd/all/sched/7", true, false},
		{"publish a township command", topics, village, "cx/v1/cmd/t/411421100/sched/7", true, false},
		{"publish below own events", topics, village, "cx/v1/evt/411421100201/x", true, false},
		{"publish to a wildcard", topics, village, "cx/v1/evt/+", true, false},
		{"publish a live frame to own township", topics, village, "cx/v1/live/t/411421100/5a17c0de00429901", true, false},
		{"publish a live frame to own village", topics, village, "cx/v1/live/v/411421100201/5a17c0de00429901", true, false},
		{"publish own events, other prefix", topics, village, "cx/v2/evt/411421100201", true, false},

		{"custom prefix filter", api.Topics{Prefix: "test/r1"}, village, "test/r1/cmd/v/411421100201/#", false, true},
		{"custom prefix events", api.Topics{Prefix: "test/r1"}, village, "test/r1/evt/411421100201", true, true},
		{"custom prefix refuses the default", api.Topics{Prefix: "test/r1"}, village, "cx/v1/cmd/all/#", false, false},

		{"empty village publishes", topics, "", "cx/v1/evt/", true, false},
		{"empty village subscribes", topics, "", "cx/v1/cmd/t//x", false, false},
		{"wildcard village", topics, "#", "cx/v1/cmd/v/#/#", false, false},
		{"short village", topics, "4114211002", "cx/v1/evt/4114211002", true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.topics.BoxMay(tt.village, tt.topic, tt.publish); got != tt.want {
				t.Errorf("BoxMay(%q, %q, publish=%v) = %v, want %v", tt.village, tt.topic, tt.publish, got, tt.want)
			}
		})
	}
}

// reached returns the codes of the boxes that would hear a command
// published to groups.
func reached(groups []api.Group, villages []playlists.Village) map[string]bool {
	in := map[api.Group]bool{}
	for _, g := range groups {
		in[g] = true
	}
	out := map[string]bool{}
	for _, v := range villages {
		if v.Device == playlists.DeviceManual {
			continue
		}
		for _, g := range api.GroupsOf(v.Code) {
			if in[g] {
				out[v.Code] = true
			}
		}
	}
	return out
}

func TestGroupsFor(t *testing.T) {
	county := playliststest.Villages()
	// Township names and code prefixes that do not line up: 新城 has
	// villages under two prefixes, and prefix 411421200 holds two names.
	mixed := []playlists.Village{
		{Code: "411421200201", Township: "新城镇", Device: playlists.DeviceAgent},
		{Code: "411421200202", Township: "新城镇", Device: playlists.DeviceAgent},
		{Code: "411421200203", Township: "老城镇", Device: playlists.DeviceAgent},
		{Code: "411421201201", Township: "新城镇", Device: playlists.DeviceAgent},
		{Code: "411421201202", Township: "新城镇", Device: playlists.DeviceAgent},
	}
	tests := []struct {
		name     string
		targets  playlists.Targets
		villages []playlists.Village
		want     []api.Group
	}{
		{"nothing", playlists.Targets{}, county, nil},
		{"all", playlists.Targets{All: true}, county, []api.Group{"all"}},
		{"all with a list", playlists.Targets{All: true, Townships: []string{"城关镇"}, Villages: []string{village}}, county, []api.Group{"all"}},
		{"one township", playlists.Targets{Townships: []string{"城关镇"}}, county, []api.Group{"t/411421100"}},
		{"two townships in county order", playlists.Targets{Townships: []string{"张桥乡", "东关镇"}}, county, []api.Group{"t/411421101", "t/411421108"}},
		{"every township is not all", playlists.Targets{Townships: []string{"城关镇", "东关镇", "西河镇", "南湖乡", "北岗乡", "柳林镇", "王庄乡", "李集镇", "张桥乡"}}, county,
			[]api.Group{"t/411421100", "t/411421101", "t/411421102", "t/411421103", "t/411421104", "t/411421105", "t/411421106", "t/411421107", "t/411421108"}},
		{"township with a manual village", playlists.Targets{Townships: []string{"西河镇"}}, county, []api.Group{"t/411421102"}},
		{"township and a village elsewhere", playlists.Targets{Townships: []string{"城关镇"}, Villages: []string{"411421105203"}}, county, []api.Group{"t/411421100", "v/411421105203"}},
		{"township and its own village", playlists.Targets{Townships: []string{"城关镇"}, Villages: []string{"411421100205"}}, county, []api.Group{"t/411421100"}},
		{"explicit villages in county order", playlists.Targets{Villages: []string{"411421107203", "411421100202"}}, county, []api.Group{"v/411421100202", "v/411421107203"}},
		{"every box of a township listed", playlists.Targets{Villages: []string{"411421108201", "411421108202", "411421108203", "411421108204", "411421108205", "411421108206", "411421108207"}}, county, []api.Group{"t/411421108"}},
		{"every box but a manual village listed", playlists.Targets{Villages: []string{"411421106201", "411421106202", "411421106203", "411421106204", "411421106206", "411421106207", "411421106208"}}, county, []api.Group{"t/411421106"}},
		{"a manual village alone", playlists.Targets{Villages: []string{"411421102208"}}, county, nil},
		{"unknown village", playlists.Targets{Villages: []string{"411421199201"}}, county, []api.Group{"v/411421199201"}},
		{"unknown township", playlists.Targets{Townships: []string{"不存在镇"}}, county, nil},
		{"name spans prefixes, prefix shared", playlists.Targets{Townships: []string{"新城镇"}}, mixed, []api.Group{"v/411421200201", "v/411421200202", "t/411421201"}},
		{"both names of a shared prefix", playlists.Targets{Townships: []string{"新城镇", "老城镇"}}, mixed, []api.Group{"t/411421200", "t/411421201"}},
		{"the other name", playlists.Targets{Townships: []string{"老城镇"}}, mixed, []api.Group{"v/411421200203"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := api.GroupsFor(tt.targets, tt.villages)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("GroupsFor = %q, want %q", got, tt.want)
			}
			// Whatever the groups, they reach exactly the selected boxes.
			want := reached(nil, nil)
			for _, v := range tt.targets.Select(tt.villages) {
				if v.Device != playlists.DeviceManual {
					want[v.Code] = true
				}
			}
			if r := reached(got, tt.villages); !reflect.DeepEqual(r, want) {
				t.Errorf("groups %q reach %d boxes, the targets select %d", got, len(r), len(want))
			}
		})
	}
}

// TestBoxMayRetain: a box retains its own presence (its Will does) and
// nothing else; cmd/ retained state is the controller's alone.
func TestBoxMayRetain(t *testing.T) {
	tests := []struct {
		name, village, topic string
		want                 bool
	}{
		{"own presence", village, "cx/v1/presence/411421100201", true},
		{"own events", village, "cx/v1/evt/411421100201", false},
		{"another's presence", village, "cx/v1/presence/411421100202", false},
		{"county broadcast", village, "cx/v1/cmd/all/bcast/7", false},
		{"own ack", village, "cx/v1/cmd/v/411421100201/ack", false},
		{"below own presence", village, "cx/v1/presence/411421100201/x", false},
		{"empty village", "", "cx/v1/presence/", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := topics.BoxMayRetain(tt.village, tt.topic); got != tt.want {
				t.Errorf("BoxMayRetain(%q, %q) = %v, want %v", tt.village, tt.topic, got, tt.want)
			}
		})
	}
}
