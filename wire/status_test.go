package wire

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

func rows(n int, idLen int) []WorkerStatus {
	out := make([]WorkerStatus, n)
	for i := range out {
		id := fmt.Sprintf("w-%0*d", max(idLen-2, 1), i)
		state := StateUp
		if i%3 == 0 {
			state = StateDown
		}
		out[i] = WorkerStatus{ID: id, Subject: "calc.worker." + id, State: state, Reason: "first heartbeat",
			LastHeartbeat: time.Date(2026, 12, 2, 8, 0, 0, 0, time.UTC), Served: uint64(i)}
	}
	return out
}

func TestEncodeStatus(t *testing.T) {
	st := Status{Dispatcher: "d-1", Version: Version, Strategy: "round-robin", Workers: rows(1000, 10)}
	full := EncodeStatus(st, 0)
	for _, limit := range []int{len(full), len(full) - 1, 64 << 10, 4096, 1000} {
		b := EncodeStatus(st, limit)
		if len(b) > limit {
			t.Fatalf("limit %d: %d bytes", limit, len(b))
		}
		got, err := DecodeStatus(b)
		if err != nil {
			t.Fatalf("limit %d: %v", limit, err)
		}
		cut := limit < len(full)
		if got.Truncated != cut || got.Total != 1000 || got.Counts[StateUp] != 666 || got.Counts[StateDown] != 334 {
			t.Fatalf("limit %d: truncated %v, total %d, counts %v; want %v, 1000, 666 up 334 down",
				limit, got.Truncated, got.Total, got.Counts, cut)
		}
		if !reflect.DeepEqual(got.Workers, st.Workers[:len(got.Workers)]) {
			t.Fatalf("limit %d: rows are not the table's first", limit)
		}
		// As many rows as fit: one more would not.
		if cut {
			more := got
			more.Workers = st.Workers[:len(got.Workers)+1]
			if b2, _ := json.Marshal(more); len(b2) <= limit {
				t.Fatalf("limit %d: %d rows sent, %d would fit", limit, len(got.Workers), len(more.Workers))
			}
		}
	}
}

// TestEncodeStatusKeepsCounts: a status given its counts (the whole
// table's) and a few rows keeps them.
func TestEncodeStatusKeepsCounts(t *testing.T) {
	st := Status{Dispatcher: "d", Total: 1000, Counts: map[string]int{StateUp: 1000}, Workers: rows(2, 4)}
	got, err := DecodeStatus(EncodeStatus(st, 0))
	if err != nil || got.Total != 1000 || got.Counts[StateUp] != 1000 || len(got.Workers) != 2 || got.Truncated {
		t.Fatalf("got %+v, %v; want total 1000, 1000 up, 2 rows", got, err)
	}
}

func TestDecodeStatusOlderDispatcher(t *testing.T) {
	b := []byte(`{"dispatcher":"d-old","workers":[{"id":"a","state":"up"},{"id":"b","state":"down"}]}`)
	st, err := DecodeStatus(b)
	if err != nil || st.Total != 2 || st.Counts[StateUp] != 1 || st.Counts[StateDown] != 1 {
		t.Fatalf("DecodeStatus = %+v, %v; want total 2, 1 up, 1 down", st, err)
	}
	if _, err := DecodeStatus([]byte(`{"workers":[]}`)); err != ErrNotStatus {
		t.Fatalf("no dispatcher: %v; want ErrNotStatus", err)
	}
}

// FuzzDecodeStatus: any payload decodes or is refused, never panics; what
// decodes encodes again, and the encoding decodes to the same rows.
func FuzzDecodeStatus(f *testing.F) {
	f.Add(EncodeStatus(Status{Dispatcher: "d", Workers: rows(3, 4)}, 0))
	f.Add([]byte(`{"dispatcher":"d","total":5,"counts":{"up":-1},"truncated":true,"workers":null}`))
	f.Add([]byte(`{"dispatcher":"d","workers":[{"id":"\u2028","state":"\u001b[2J"}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := DecodeStatus(data)
		if err != nil {
			return
		}
		again, err := DecodeStatus(EncodeStatus(st, 0))
		if err != nil {
			t.Fatalf("%q: re-encoded status does not decode: %v", data, err)
		}
		if len(again.Workers) != len(st.Workers) {
			t.Fatalf("%q: %d rows; want %d", data, len(again.Workers), len(st.Workers))
		}
	})
}

// FuzzEncodeStatus: whatever the table and the bound, the reply fits,
// decodes, and holds the table's first rows and its whole counts.
func FuzzEncodeStatus(f *testing.F) {
	f.Add(uint16(100), uint16(10), uint32(4096), "")
	f.Add(uint16(0), uint16(1), uint32(1), "x")
	f.Add(uint16(2000), uint16(64), uint32(65536), "\u2028\"\\")
	f.Fuzz(func(t *testing.T, n, idLen uint16, limit uint32, reason string) {
		ws := rows(int(n%3000), int(idLen%70)+1)
		for i := range ws {
			ws[i].Reason = strings.ToValidUTF8(reason, "?") // JSON would change invalid bytes
		}
		st := Status{Dispatcher: "d", Workers: ws}
		head := EncodeStatus(Status{Dispatcher: "d", Workers: ws[:0]}, 0)
		b := EncodeStatus(st, int(limit))
		// A bound below the empty table's size still gets the counts.
		bound := max(int(limit), len(head)+len(`,"truncated":true`)+64)
		if limit != 0 && len(b) > bound {
			t.Fatalf("limit %d: %d bytes", limit, len(b))
		}
		got, err := DecodeStatus(b)
		if err != nil {
			t.Fatal(err)
		}
		if got.Total != len(ws) || len(got.Workers) > len(ws) || !reflect.DeepEqual(got.Workers, ws[:len(got.Workers)]) {
			t.Fatalf("total %d, %d rows of %d", got.Total, len(got.Workers), len(ws))
		}
		if strings.Contains(string(b), "\u2028") {
			t.Fatalf("raw U+2028 in the reply")
		}
	})
}
