package calc

import (
	"testing"
	"time"
)

func TestTakes(t *testing.T) {
	for _, tc := range []struct {
		payload string
		want    time.Duration
	}{
		{"sleep 30000", 30 * time.Second},
		{"SPIN 250", 250 * time.Millisecond},
		{`{"op":"sleep","args":[1500]}`, 1500 * time.Millisecond},
		{"add 2 3", 0},
		{"sleep -5", 0},
		{"sleep 1e30", 0},
		{"sleep", 0},
		{"nonsense", 0},
	} {
		if got := Takes([]byte(tc.payload)); got != tc.want {
			t.Errorf("Takes(%q) = %v; want %v", tc.payload, got, tc.want)
		}
	}
}
