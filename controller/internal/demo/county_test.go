package demo

import "testing"

func TestCountyName(t *testing.T) {
	for _, tt := range []struct {
		set  string
		demo bool
		want string
	}{
		{"", false, ""},
		{"", true, County},
		{"城关县", true, "城关县"},
		{"城关县", false, "城关县"},
	} {
		if got := CountyName(tt.set, tt.demo); got != tt.want {
			t.Errorf("CountyName(%q, %v) = %q, want %q", tt.set, tt.demo, got, tt.want)
		}
	}
}
