package media

import (
	"math"
	"testing"
)

// At 48 kHz the derived K-weighting must be the table of BS.1770-4.
func TestKWeightingAt48kHz(t *testing.T) {
	shelf, hp := kWeighting(48000)
	for _, c := range []struct {
		name      string
		got, want float64
	}{
		{"pre-filter b0", shelf.b0, 1.53512485958697},
		{"pre-filter b1", shelf.b1, -2.69169618940638},
		{"pre-filter b2", shelf.b2, 1.19839281085285},
		{"pre-filter a1", shelf.a1, -1.69065929318241},
		{"pre-filter a2", shelf.a2, 0.73248077421585},
		{"RLB b0", hp.b0, 1},
		{"RLB b1", hp.b1, -2},
		{"RLB b2", hp.b2, 1},
		{"RLB a1", hp.a1, -1.99004745483398},
		{"RLB a2", hp.a2, 0.99007225036621},
	} {
		if math.Abs(c.got-c.want) > 1e-8 {
			t.Errorf("%s = %.14f, want %.14f", c.name, c.got, c.want)
		}
	}
}
