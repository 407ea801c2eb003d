package villagecsv_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/cunxiang/cunxiang/api"
	"github.com/cunxiang/cunxiang/controller/internal/cx"
	"github.com/cunxiang/cunxiang/controller/internal/villagecsv"
)

// FuzzParse: never panic; accept only valid rows with unique codes; reject
// with at least one located problem. Seeds are in testdata/fuzz/FuzzParse.
func FuzzParse(f *testing.F) {
	f.Add([]byte("code,name,township,lat,lon,device\n110101001001,a,b,1,2,agent\n"))
	f.Add([]byte("\ufeffdevice,code,name,township,lat,lon\r\nmanual,110101001001,\"a,\"\"b\",t,-90,180\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		rows, err := villagecsv.Parse(bytes.NewReader(data))
		if err != nil {
			var e *cx.Error
			if !errors.As(err, &e) || e.Code != cx.EINVALID || len(e.Details) == 0 {
				t.Fatalf("error without details: %v", err)
			}
			for _, d := range e.Details {
				if d.Line < 1 || d.Reason == "" {
					t.Fatalf("bad detail %+v", d)
				}
			}
			return
		}
		seen := map[string]bool{}
		for _, r := range rows {
			if !api.ValidVillageCode(r.Code) || seen[r.Code] || r.Name == "" || r.Township == "" ||
				r.Lat < -90 || r.Lat > 90 || r.Lon < -180 || r.Lon > 180 || (r.Device != "agent" && r.Device != "manual") {
				t.Fatalf("accepted a bad row %+v", r)
			}
			seen[r.Code] = true
		}
	})
}
