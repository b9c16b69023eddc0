package wire

import (
	"encoding/json"
	"errors"
)

// EncodeStatus encodes st as a status reply of at most max bytes. Unless
// st.Counts is set, it sets Total and Counts from st.Workers, taken for the
// whole table; when the rows do not fit, Workers keeps as many of the
// first as fit and Truncated is set. A max too small for even the counts
// gets them anyway: no reply has no rows' worth of news. max <= 0 means
// no bound.
func EncodeStatus(st Status, max int) []byte {
	if st.Counts == nil {
		st.Total = len(st.Workers)
		st.Counts = make(map[string]int, 4)
		for _, w := range st.Workers {
			st.Counts[w.State]++
		}
	}
	st.Truncated = false
	full, _ := json.Marshal(st)
	if max <= 0 || len(full) <= max {
		return full
	}
	rows := st.Workers
	st.Workers, st.Truncated = []WorkerStatus{}, true
	head, _ := json.Marshal(st)
	// Each row adds its own encoding and a comma to the empty list's "[]".
	room := max - len(head)
	n := 0
	for _, w := range rows {
		b, _ := json.Marshal(w)
		room -= len(b)
		if n > 0 {
			room--
		}
		if room < 0 {
			break
		}
		n++
	}
	st.Workers = rows[:n]
	out, _ := json.Marshal(st)
	for len(out) > max && n > 0 { // not expected: the sizes add up exactly
		n--
		st.Workers = rows[:n]
		out, _ = json.Marshal(st)
	}
	return out
}

// ErrNotStatus is DecodeStatus's answer to a payload that is not a
// dispatcher's status.
var ErrNotStatus = errors.New("wire: not a dispatcher's status")

// DecodeStatus parses a status reply. A reply without a dispatcher id is
// refused; one from a dispatcher older than Total and Counts gets them
// computed from its rows, so that readers can rely on them.
func DecodeStatus(data []byte) (Status, error) {
	var st Status
	if err := json.Unmarshal(data, &st); err != nil {
		return Status{}, err
	}
	if st.Dispatcher == "" {
		return Status{}, ErrNotStatus
	}
	if st.Counts == nil {
		st.Counts = make(map[string]int, 4)
		for _, w := range st.Workers {
			st.Counts[w.State]++
		}
		if st.Total < len(st.Workers) {
			st.Total = len(st.Workers)
		}
	}
	return st, nil
}

// StatusRequest is the optional payload of a status request. Workers,
// when set, asks for those workers' rows only, with the whole table's
// Total and Counts: a reply that fits however large the table, for a
// caller that wants to know about a few workers (bilancia health worker
// --seen-by). An empty payload asks for the whole table.
type StatusRequest struct {
	Workers []string `json:"workers,omitempty"`
}
