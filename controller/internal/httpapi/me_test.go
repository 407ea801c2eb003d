package httpapi

import (
	"net/http"
	"testing"

	"github.com/cunxiang/cunxiang/api"
)

// TestMeCountyName: GET /api/v1/me tells any caller the county's name,
// or "" when the controller has none.
func TestMeCountyName(t *testing.T) {
	for _, name := range []string{"示例县", ""} {
		e := newEnv(t, func(o *Options) { o.CountyName = name })
		var me api.Me
		e.must(http.StatusOK, e.do("GET", "/api/v1/me", e.staff, nil), &me)
		if me.CountyName != name || me.Name != "clerk" {
			t.Errorf("me %+v, want county %q", me, name)
		}
	}
}
