package wire

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"
)

func sampleHeartbeat() Heartbeat {
	return Heartbeat{
		ID: "w-1", Subject: "calc.worker.w-1", State: StateUp, Seq: 42, IntervalMS: 1000,
		Inflight: 3, Served: 1 << 40, Errors: 7, Concurrency: 16, ProgressMS: 100,
		StartedAt: time.Date(2026, 11, 27, 12, 0, 0, 123456789, time.UTC), Version: "0.1.0", Host: "h",
	}
}

func TestDecodeHeartbeat(t *testing.T) {
	want := sampleHeartbeat()
	b, err := json.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	var hb Heartbeat
	if !decodeHeartbeatFast(b, &hb) {
		t.Fatalf("fast path refused what workers send: %s", b)
	}
	got, err := DecodeHeartbeat(b)
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("DecodeHeartbeat = %+v, %v; want %+v", got, err, want)
	}

	// Inputs the fast path leaves to encoding/json, and bad ones: the
	// outcome must be encoding/json's either way.
	for _, in := range []string{
		`{"ID":"upper","seq":1}`,                // case-insensitive key
		`{"id":"a\"b"}`,                         // escape
		`{"id":"w","seq":1.0}`,                  // fraction into an integer
		`{"id":"w","seq":-1}`,                   // negative into unsigned
		`{"id":"w","seq":012}`,                  // leading zero
		`{"id":"w","seq":99999999999999999999}`, // overflow
		`{"id":"w","inflight":null}`,
		`{"id":"w","progress_ms":"100"}`, // a string into an integer
		`{"id":"w","progress_ms":-1}`,
		`{"id":"w","extra":{"a":[1,2]}}`,
		`{"id":"w","started_at":"yesterday"}`,
		`{"id":"w"} trailing`,
		`{"id":"w",}`,
		`{"id":"\xff"}`,
		` { "id" : "w" , "seq" : 3 } `,
		`{}`,
		``,
		`[]`,
	} {
		got, err := DecodeHeartbeat([]byte(in))
		var want Heartbeat
		werr := json.Unmarshal([]byte(in), &want)
		if (err == nil) != (werr == nil) || (err == nil && !reflect.DeepEqual(got, want)) {
			t.Errorf("%q: got %+v, %v; encoding/json %+v, %v", in, got, err, want, werr)
		}
	}
}

// FuzzDecodeHeartbeat holds the fast path to encoding/json's answer.
func FuzzDecodeHeartbeat(f *testing.F) {
	b, _ := json.Marshal(sampleHeartbeat())
	f.Add(b)
	f.Add([]byte(`{"id":"w","state":"draining","seq":0,"started_at":"2026-01-02T03:04:05Z"}`))
	f.Add([]byte(`{"id":"w","inflight":-5,"concurrency":9223372036854775807}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var fast Heartbeat
		ok := decodeHeartbeatFast(data, &fast)
		var want Heartbeat
		werr := json.Unmarshal(data, &want)
		if ok && (werr != nil || !reflect.DeepEqual(fast, want)) {
			t.Fatalf("%q: fast path %+v; encoding/json %+v, %v", data, fast, want, werr)
		}
		got, err := DecodeHeartbeat(data)
		if (err == nil) != (werr == nil) || (err == nil && !reflect.DeepEqual(got, want)) {
			t.Fatalf("%q: got %+v, %v; encoding/json %+v, %v", data, got, err, want, werr)
		}
	})
}

func BenchmarkDecodeHeartbeat(b *testing.B) {
	data, _ := json.Marshal(sampleHeartbeat())
	b.Run("fast", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := DecodeHeartbeat(data); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var hb Heartbeat
			if err := json.Unmarshal(data, &hb); err != nil {
				b.Fatal(err)
			}
		}
	})
}
