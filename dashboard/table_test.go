package dashboard

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/bilancia/bilancia/wire"
)

func TestPick(t *testing.T) {
	var ws []wire.WorkerStatus
	for i := range 10 {
		ws = append(ws, wire.WorkerStatus{ID: fmt.Sprintf("w%02d", i), State: wire.StateUp})
	}
	ws[7].State = wire.StateDown
	ws[8].Drained = true
	if got := ids(pick(ws, 10)); len(got) != 10 || got[0] != "w00" {
		t.Errorf("pick(10 rows, 10) = %v; want all, in table order", got)
	}
	if got, want := ids(pick(ws, 4)), []string{"w07", "w08", "w00", "w01"}; !slices.Equal(got, want) {
		t.Errorf("pick(10 rows, 4) = %v; want %v (down and drained first)", got, want)
	}
	if ws[0].ID != "w00" || ws[7].ID != "w07" {
		t.Error("pick reordered its argument")
	}
}

func TestTableUpdate(t *testing.T) {
	hb := time.UnixMilli(1700000000000)
	r := func(id, state string, served uint64) row {
		return toRow(wire.WorkerStatus{ID: id, State: state, Served: served, LastHeartbeat: hb})
	}
	tab := table{}
	changed, gone := tab.update([]row{r("a", "up", 1), r("b", "up", 1)})
	if len(changed) != 2 || len(gone) != 0 {
		t.Fatalf("first update = %v, %v; want 2 rows, none gone", changed, gone)
	}
	changed, gone = tab.update([]row{r("a", "up", 1), r("b", "up", 2), r("c", "down", 0)})
	if got := ids(changed); !slices.Equal(got, []string{"b", "c"}) || len(gone) != 0 {
		t.Errorf("second update = %v, %v; want [b c], none gone", got, gone)
	}
	changed, gone = tab.update([]row{r("c", "down", 0)})
	if len(changed) != 0 || !slices.Equal(gone, []string{"a", "b"}) {
		t.Errorf("third update = %v, %v; want none, [a b] gone", changed, gone)
	}
	if got := ids(tab.rows()); !slices.Equal(got, []string{"c"}) {
		t.Errorf("rows = %v; want [c]", got)
	}
	b, _ := r("a", "up", 3).MarshalJSON()
	if want := `["a","up","",0,3,0,0,0,1700000000000,false,0,0,0,""]`; string(b) != want {
		t.Errorf("row JSON = %s; want %s", b, want)
	}
}

func ids(rs []row) (out []string) {
	for _, r := range rs {
		out = append(out, r.ID)
	}
	return out
}
