package calcworker

import (
	"strings"
	"testing"

	"github.com/bilancia/bilancia/wire"
)

// TestProgressBatches: progress messages are cut by count and by bytes,
// every id named once and in order, none over the budget; an id alone
// over the budget is left out.
func TestProgressBatches(t *testing.T) {
	id := func(n int, c string) string { return strings.Repeat(c, n) }
	perID := len(wire.HdrRequestID) + len(": \r\n")
	many := make([]string, 600)
	for i := range many {
		many[i] = id(36, "a")
	}
	for _, tc := range []struct {
		name   string
		ids    []string
		budget int
		want   []int // batch sizes
	}{
		{"none", nil, 1000, nil},
		{"one", []string{"x"}, 1000, []int{1}},
		{"by count", many, 1 << 20, []int{256, 256, 88}},
		{"by bytes", many[:10], progressOverhead + 4*(perID+36), []int{4, 4, 2}},
		{"an id over the budget", []string{"a", id(500, "b"), "c"}, progressOverhead + 100, []int{1, 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := progressBatches(tc.ids, tc.budget)
			var sizes []int
			var named []string
			for _, b := range got {
				sizes = append(sizes, len(b))
				named = append(named, b...)
				size := progressOverhead
				for _, id := range b {
					size += perID + len(id)
				}
				if size > tc.budget {
					t.Errorf("a batch of %d bytes; budget %d", size, tc.budget)
				}
			}
			if len(sizes) != len(tc.want) {
				t.Fatalf("progressBatches = %v; want sizes %v", sizes, tc.want)
			}
			for i := range sizes {
				if sizes[i] != tc.want[i] {
					t.Fatalf("progressBatches = %v; want sizes %v", sizes, tc.want)
				}
			}
			if tc.name != "an id over the budget" && strings.Join(named, ",") != strings.Join(tc.ids, ",") {
				t.Fatal("ids lost, repeated or reordered")
			}
		})
	}
}
