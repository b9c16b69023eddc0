package calcworker_test

import (
	"testing"
	"time"

	"github.com/bilancia/bilancia/broker/brokertest"
	"github.com/bilancia/bilancia/calcworker"
	"github.com/bilancia/bilancia/calcworker/calc"
	"github.com/bilancia/bilancia/wire"
)

// A worker with a fail rate answers that share of its requests with a 500
// at once, before its delay; 0 answers them all, and a rate outside 0..1
// is refused.
func TestFailRate(t *testing.T) {
	url := brokertest.Run(t).ClientURL()
	for _, rate := range []float64{-0.1, 1.5} {
		if _, err := calcworker.New(calcworker.Config{Conn: connect(t, url), FailRate: rate}); err == nil {
			t.Errorf("New with fail rate %v: nil error", rate)
		}
	}
	sick := start(t, url, calcworker.Config{ID: "w-sick", FailRate: 1, Env: calc.Env{Delay: time.Hour}})
	well := start(t, url, calcworker.Config{ID: "w-well", FailRate: 0})
	nc := connect(t, url)
	for range 5 {
		if e := wire.ErrorFromMsg(request(t, nc, sick.Subject(), "add 1 2")); e == nil || e.Code != wire.CodeInternal {
			t.Fatalf("reply of a worker failing everything = %v; want a 500", e)
		}
		if e := wire.ErrorFromMsg(request(t, nc, well.Subject(), "add 1 2")); e != nil {
			t.Fatalf("reply of a worker failing nothing = %v; want a result", e)
		}
	}
	if st := sick.Stats(); st.Errors != 5 {
		t.Errorf("failing worker's stats = %+v; want 5 errors", st)
	}
}
