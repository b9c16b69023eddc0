package dashboard

import (
	"cmp"
	"encoding/json"
	"math"
	"slices"

	"github.com/bilancia/bilancia/wire"
)

// row is one worker as the page shows it. It travels as a JSON array, in
// the order of the fields, to keep a frame of a thousand rows small.
type row struct {
	ID        string
	State     string
	Reason    string
	Inflight  int64
	Served    uint64 // as the worker reports it
	Forwarded uint64 // by this dispatcher
	Errors    uint64
	Ejections int
	Heartbeat int64 // last heartbeat, Unix milliseconds; 0: none yet
	Drained   bool  // an operator took it out of rotation
	// What the choice of worker reads of it (wire.WorkerStatus), rounded
	// so that a row changes only when what it shows does: latency in
	// tenths of a millisecond, error rate and share in percent.
	Latency   float64
	ErrorRate int
	Share     int
	Verdict   string
}

func (r row) MarshalJSON() ([]byte, error) {
	return json.Marshal([]any{r.ID, r.State, r.Reason, r.Inflight, r.Served, r.Forwarded, r.Errors, r.Ejections, r.Heartbeat, r.Drained,
		r.Latency, r.ErrorRate, r.Share, r.Verdict})
}

func toRow(w wire.WorkerStatus) row {
	r := row{ID: w.ID, State: w.State, Reason: w.Reason, Inflight: w.Inflight, Served: w.Served,
		Forwarded: w.Forwarded, Errors: w.Errors, Ejections: w.Ejections, Drained: w.Drained,
		Latency: math.Round(w.LatencyMS*10) / 10, ErrorRate: int(math.Round(100 * w.ErrorRate)),
		Share: int(math.Round(100 * w.Weight)), Verdict: w.Verdict}
	if !w.LastHeartbeat.IsZero() {
		r.Heartbeat = w.LastHeartbeat.UnixMilli()
	}
	return r
}

// pick returns at most max rows of the table: all of them when they fit,
// otherwise the workers not up or drained first, so that the ones that
// need a look are never the ones cut, then by id.
func pick(ws []wire.WorkerStatus, max int) []row {
	if len(ws) > max {
		ws = slices.Clone(ws)
		slices.SortStableFunc(ws, func(a, b wire.WorkerStatus) int {
			au, bu := a.State == wire.StateUp && !a.Drained, b.State == wire.StateUp && !b.Drained
			if au != bu {
				if bu {
					return -1
				}
				return 1
			}
			return cmp.Compare(a.ID, b.ID)
		})
		ws = ws[:max]
	}
	rows := make([]row, len(ws))
	for i, w := range ws {
		rows[i] = toRow(w)
	}
	return rows
}

// table is the page's worker table as last sent, by id.
type table map[string]row

// update makes t hold rows and returns what changed: the rows that are new
// or differ, and the ids no longer in the table.
func (t table) update(rows []row) (changed []row, gone []string) {
	seen := make(map[string]bool, len(rows))
	for _, r := range rows {
		seen[r.ID] = true
		if old, ok := t[r.ID]; !ok || old != r {
			changed = append(changed, r)
			t[r.ID] = r
		}
	}
	for id := range t {
		if !seen[id] {
			gone = append(gone, id)
			delete(t, id)
		}
	}
	slices.Sort(gone)
	return changed, gone
}

// rows returns every row of t, by id.
func (t table) rows() []row {
	out := make([]row, 0, len(t))
	for _, r := range t {
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b row) int { return cmp.Compare(a.ID, b.ID) })
	return out
}
