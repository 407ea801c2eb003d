package connlimit

import "testing"

// TestCounter: the caps per source and in total hold, a released
// connection frees its place, and refusals are reported.
func TestCounter(t *testing.T) {
	var warned []string
	c := Counter{MaxTotal: 3, MaxPerSource: 2, Warn: func(src string, refused, from, open int) { warned = append(warned, src) }}
	for i, s := range []struct {
		src string
		ok  bool
	}{{"a", true}, {"a", true}, {"a", false}, {"b", true}, {"c", false}} {
		if got := c.Admit(s.src); got != s.ok {
			t.Errorf("admit %d (%s): %v, want %v", i, s.src, got, s.ok)
		}
	}
	if c.Open() != 3 || len(warned) != 1 || warned[0] != "a" {
		t.Errorf("open %d, warned %v", c.Open(), warned)
	}
	c.Release("a")
	if !c.Admit("c") || c.Open() != 3 {
		t.Errorf("a released place was not given again (open %d)", c.Open())
	}
	if Cap(0, 7) != 7 || Cap(-1, 7) < 1<<30 || Cap(5, 7) != 5 {
		t.Error("Cap")
	}
}
