package pick

import (
	"testing"
	"time"
)

// The hot path's share: a refresh when due, a pick and a reply's record,
// without allocations.
func BenchmarkPick(b *testing.B) {
	for _, s := range Strategies {
		b.Run(s, func(b *testing.B) {
			p, err := New(s, Config[*tw]{})
			if err != nil {
				b.Fatal(err)
			}
			ws := fleet("abcdefgh", 16)
			skip := func(w *tw) bool { return w.id == "c" }
			b.ReportAllocs()
			now := int64(time.Second)
			for b.Loop() {
				now += int64(100 * time.Microsecond)
				p.Refresh(ws, now)
				i := p.Pick(ws, skip, now)
				ws[i].st.Observe(now, time.Millisecond, false)
			}
		})
	}
}
