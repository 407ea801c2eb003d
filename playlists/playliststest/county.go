package playliststest

import (
	"fmt"
	"strings"

	"github.com/cunxiang/cunxiang/playlists"
)

// The sample county: 81 villages in 9 townships, 79 with a Cunxiang box and
// 2 whose broadcaster confirms by hand, as in a real county the project was
// modelled on. The codes are shaped like real administrative-division codes
// (6-digit county, 9-digit township, 12-digit village with a 2xx village
// committee number); the names and places are invented, in the plain style
// of the North China Plain, around 34.65 N, 115.15 E.
const (
	CountyCode = "411421"
	CountyName = "示例县"

	CountyVillages = 81
	AgentVillages  = 79
	ManualVillages = 2
)

// Township is one township of the sample county.
type Township struct {
	Code string // 9 digits, the prefix of its villages' codes
	Name string
	// Villages is how many villages it has.
	Villages int
}

var townships = []Township{
	{"411421100", "城关镇", 12},
	{"411421101", "东关镇", 9},
	{"411421102", "西河镇", 8},
	{"411421103", "南湖乡", 10},
	{"411421104", "北岗乡", 7},
	{"411421105", "柳林镇", 9},
	{"411421106", "王庄乡", 8},
	{"411421107", "李集镇", 11},
	{"411421108", "张桥乡", 7},
}

// manual are the villages without a box.
var manual = map[string]bool{"411421102208": true, "411421106205": true}

// Townships returns the county's townships in code order.
func Townships() []Township { return append([]Township(nil), townships...) }

// Site is a village with where its loudspeaker stands, in degrees (WGS 84).
type Site struct {
	playlists.Village
	Lat, Lon float64
	// LatText and LonText are Lat and Lon as they appear in the CSV.
	LatText, LonText string
}

// Villages returns the county's 81 villages, in code order, the same on
// every call.
func Villages() []playlists.Village {
	var out []playlists.Village
	for _, s := range Sites() {
		out = append(out, s.Village)
	}
	return out
}

// Surnames and place words that village names are made of, combined so that
// no two villages share a name.
var (
	surnames = []rune("张王李赵刘陈杨黄周吴徐孙胡朱高林何郭马罗梁宋郑谢韩唐冯")
	places   = []rune("庄楼寨集营屯岗湾店桥园洼")
	// Offsets of a village from its township seat, in micro-degrees (lat, lon).
	offsets = [][2]int{
		{8000, 3000}, {-6000, 9000}, {-11000, -7000}, {14000, -12000},
		{2000, 18000}, {-19000, 5000}, {20000, 15000}, {-3000, -22000},
		{-24000, 19000}, {26000, -1000}, {9000, -27000}, {-15000, 28000},
	}
)

// Sites returns the villages with their coordinates, in code order.
func Sites() []Site {
	var out []Site
	k := 0
	for ti, t := range townships {
		// Township seats on a 3×3 grid about 10 km apart.
		seatLat := 34650000 + (ti/3-1)*90000
		seatLon := 115150000 + (ti%3-1)*110000
		for j := range t.Villages {
			code := fmt.Sprintf("%s2%02d", t.Code, j+1)
			name := string(surnames[k%len(surnames)]) + string(places[(k/len(surnames)+k)%len(places)]) + "村"
			device := playlists.DeviceAgent
			if manual[code] {
				device = playlists.DeviceManual
			}
			lat, lon := seatLat+offsets[j][0], seatLon+offsets[j][1]
			out = append(out, Site{
				Village: playlists.Village{Code: code, Name: name, Township: t.Name, Device: device},
				Lat:     float64(lat) / 1e6, Lon: float64(lon) / 1e6,
				LatText: microDegrees(lat), LonText: microDegrees(lon),
			})
			k++
		}
	}
	return out
}

func microDegrees(v int) string { return fmt.Sprintf("%d.%06d", v/1000000, v%1000000) }

// CSVHeader is the first line of VillagesCSV, the import format the
// controller reads.
const CSVHeader = "code,name,township,lat,lon,device"

// VillagesCSV returns the county as the controller's village import: a
// header line and one line per village, each ending in "\n". No field needs
// quoting.
func VillagesCSV() string {
	var b strings.Builder
	b.WriteString(CSVHeader + "\n")
	for _, s := range Sites() {
		fmt.Fprintf(&b, "%s,%s,%s,%s,%s,%s\n", s.Code, s.Name, s.Township, s.LatText, s.LonText, s.Device)
	}
	return b.String()
}
