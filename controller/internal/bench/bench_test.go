package bench

import (
	"io"
	"strings"
	"testing"
	"time"
)

func TestParseFlags(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		wantErr string
		check   func(t *testing.T, o *Options)
	}{
		{name: "defaults", check: func(t *testing.T, o *Options) {
			if len(o.N) != 3 || o.N[2] != 10000 || len(o.Phases) != len(Phases) || o.Idle != time.Minute {
				t.Errorf("defaults: N %v, phases %v, idle %s", o.N, o.Phases, o.Idle)
			}
		}},
		{name: "quick shrinks what was not given", args: []string{"-quick", "-iterations", "2"}, check: func(t *testing.T, o *Options) {
			if len(o.N) != 1 || o.N[0] != 20 || o.Iterations != 2 || o.IngestBoxes != 10 {
				t.Errorf("quick: N %v, iterations %d, ingest boxes %d", o.N, o.Iterations, o.IngestBoxes)
			}
		}},
		{name: "box counts sorted", args: []string{"-n", "5000, 100"}, check: func(t *testing.T, o *Options) {
			if o.N[0] != 100 || o.N[1] != 5000 {
				t.Errorf("N %v", o.N)
			}
		}},
		{name: "phase subset", args: []string{"-phases", "storm,coverage"}, check: func(t *testing.T, o *Options) {
			if len(o.Phases) != 2 || !o.Phases["storm"] || o.Phases["fanout"] {
				t.Errorf("phases %v", o.Phases)
			}
		}},
		{name: "unknown phase", args: []string{"-phases", "fanout,speed"}, wantErr: `unknown phase "speed"`},
		{name: "bad box count", args: []string{"-n", "1000,lots"}, wantErr: `"lots" is not a box count`},
		{name: "too many boxes", args: []string{"-n", "20000"}, wantErr: "between 1 and 15000"},
		{name: "no iterations", args: []string{"-iterations", "0"}, wantErr: "-iterations"},
		{name: "stray argument", args: []string{"now"}, wantErr: `unexpected argument "now"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := ParseFlags(tt.args, nil, io.Discard)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, o)
		})
	}
}

func TestQuantilesAndCombine(t *testing.T) {
	var d []time.Duration
	for i := 1; i <= 200; i++ {
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	q := quantiles(d)
	if q.N != 200 || q.P50 != 100*time.Millisecond || q.P99 != 198*time.Millisecond || q.Max != 200*time.Millisecond {
		t.Fatalf("quantiles %+v", q)
	}
	if d[0] != time.Millisecond {
		t.Fatal("quantiles sorted its argument in place")
	}
	c := combine([]stats{
		{N: 10, P50: 3, P99: 9, Max: 10},
		{N: 10, P50: 1, P99: 20, Max: 21},
		{N: 10, P50: 2, P99: 5, Max: 6},
	})
	if c != (stats{N: 30, P50: 2, P99: 20, Max: 21}) {
		t.Fatalf("combine %+v", c)
	}
}

func TestMarkdownEscapesPipes(t *testing.T) {
	r := newReport()
	r.Add(Row{Phase: "ingest", Metric: "a | b", Value: "1"})
	r.Fail("storm", io.ErrUnexpectedEOF)
	md := r.Markdown("test machine")
	if !strings.Contains(md, `a \| b`) || !strings.Contains(md, "| storm |  | ERROR | unexpected EOF |") {
		t.Fatalf("markdown:\n%s", md)
	}
	if !r.Failed() {
		t.Fatal("a failed phase does not fail the report")
	}
}
