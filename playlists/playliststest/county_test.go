package playliststest_test

import (
	"encoding/csv"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/cunxiang/cunxiang/playlists"
	"github.com/cunxiang/cunxiang/playlists/playliststest"
)

func TestVillages(t *testing.T) {
	vs := playliststest.Villages()
	if !reflect.DeepEqual(vs, playliststest.Villages()) {
		t.Fatal("Villages() differs between calls")
	}
	if len(vs) != playliststest.CountyVillages {
		t.Fatalf("%d villages, want %d", len(vs), playliststest.CountyVillages)
	}
	townName := map[string]string{} // 9-digit code → name
	perTown := map[string]int{}
	for _, tw := range playliststest.Townships() {
		townName[tw.Code] = tw.Name
		if !strings.HasPrefix(tw.Code, playliststest.CountyCode) || len(tw.Code) != 9 {
			t.Errorf("township code %q is not 9 digits under %s", tw.Code, playliststest.CountyCode)
		}
	}
	if len(townName) != 9 {
		t.Errorf("%d townships, want 9", len(townName))
	}
	code := regexp.MustCompile(`^411421(10[0-8])2[0-9]{2}$`)
	seenCode, seenName := map[string]bool{}, map[string]bool{}
	devices := map[string]int{}
	for i, v := range vs {
		if !code.MatchString(v.Code) {
			t.Errorf("village code %q is not <township>2xx", v.Code)
		}
		if i > 0 && vs[i-1].Code >= v.Code {
			t.Errorf("villages not in code order at %s", v.Code)
		}
		if seenCode[v.Code] || seenName[v.Name] {
			t.Errorf("duplicate village %s %s", v.Code, v.Name)
		}
		seenCode[v.Code], seenName[v.Name] = true, true
		if !strings.HasSuffix(v.Name, "村") {
			t.Errorf("village name %q", v.Name)
		}
		if got := townName[v.Code[:9]]; got != v.Township {
			t.Errorf("%s is in %q, its prefix names %q", v.Code, v.Township, got)
		}
		perTown[v.Code[:9]]++
		devices[v.Device]++
	}
	for _, tw := range playliststest.Townships() {
		if perTown[tw.Code] != tw.Villages {
			t.Errorf("%s has %d villages, Township says %d", tw.Name, perTown[tw.Code], tw.Villages)
		}
	}
	if devices[playlists.DeviceAgent] != playliststest.AgentVillages || devices[playlists.DeviceManual] != playliststest.ManualVillages || len(devices) != 2 {
		t.Errorf("devices = %v", devices)
	}
}

func TestVillagesCSV(t *testing.T) {
	text := playliststest.VillagesCSV()
	if text != playliststest.VillagesCSV() {
		t.Fatal("VillagesCSV() differs between calls")
	}
	rows, err := csv.NewReader(strings.NewReader(text)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(rows[0], ","); got != playliststest.CSVHeader {
		t.Fatalf("header %q", got)
	}
	sites := playliststest.Sites()
	if len(rows)-1 != len(sites) {
		t.Fatalf("%d rows, want %d", len(rows)-1, len(sites))
	}
	for i, row := range rows[1:] {
		s := sites[i]
		want := []string{s.Code, s.Name, s.Township, s.LatText, s.LonText, s.Device}
		if !reflect.DeepEqual(row, want) {
			t.Errorf("row %d = %q, want %q", i+2, row, want)
		}
		lat, err1 := strconv.ParseFloat(row[3], 64)
		lon, err2 := strconv.ParseFloat(row[4], 64)
		if err1 != nil || err2 != nil || lat != s.Lat || lon != s.Lon {
			t.Errorf("row %d: coordinates %s,%s vs %v,%v", i+2, row[3], row[4], s.Lat, s.Lon)
		}
		// One county: within about 25 km of its centre.
		if lat < 34.4 || lat > 34.9 || lon < 114.9 || lon > 115.4 {
			t.Errorf("row %d: %v,%v is outside the county", i+2, lat, lon)
		}
	}
	// Pin the fixture: the controller's demo and end-to-end tests rely on it.
	for _, line := range []string{
		"411421100201,张庄村,城关镇,34.568000,115.043000,agent\n",
		"411421102208,王屯村,西河镇,34.557000,115.238000,manual\n",
	} {
		if !strings.Contains(text, line) {
			t.Errorf("CSV lacks %q", line)
		}
	}
}
