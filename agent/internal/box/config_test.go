package box

import (
	"reflect"
	"testing"

	"github.com/cunxiang/cunxiang/api"
	"github.com/cunxiang/cunxiang/playlists"
)

func TestMergeConfig(t *testing.T) {
	const village = "110101001001"
	night := []playlists.QuietWindow{{From: "22:00", To: "06:30"}}
	noon := []playlists.QuietWindow{{From: "12:00", To: "13:30"}}
	town, own, all := api.TownshipGroup("110101001"), api.VillageGroup(village), api.GroupAll
	tests := []struct {
		name string
		cfgs map[api.Group]api.BoxConfig
		want api.BoxConfig
	}{
		{"none", nil, api.BoxConfig{}},
		{"township only", map[api.Group]api.BoxConfig{town: {QuietHours: night, Volume: 70}}, api.BoxConfig{QuietHours: night, Volume: 70}},
		{"village fields override where set",
			map[api.Group]api.BoxConfig{town: {QuietHours: night, Timezone: "Asia/Shanghai", Volume: 70}, own: {Volume: 40}},
			api.BoxConfig{QuietHours: night, Timezone: "Asia/Shanghai", Volume: 40}},
		{"village quiet hours replace the township's",
			map[api.Group]api.BoxConfig{town: {QuietHours: night}, own: {QuietHours: noon}},
			api.BoxConfig{QuietHours: noon}},
		{"county under township",
			map[api.Group]api.BoxConfig{all: {Timezone: "UTC", Volume: 100}, town: {Volume: 60}},
			api.BoxConfig{Timezone: "UTC", Volume: 60}},
		{"another township's config is not ours",
			map[api.Group]api.BoxConfig{api.TownshipGroup("110101002"): {Volume: 10}},
			api.BoxConfig{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := mergeConfig(village, tt.cfgs); !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("mergeConfig = %+v, want %+v", got, tt.want)
			}
		})
	}
}
