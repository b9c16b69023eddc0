package dispatcher

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestRequestLineMatchesSlog checks the hand-written request line against
// slog's JSON handler, field by field, on hostile strings.
func TestRequestLineMatchesSlog(t *testing.T) {
	at := time.Date(2026, 11, 27, 10, 17, 48, 251281010, time.UTC)
	for _, s := range []string{
		"add 2 3", `say "hi" \ back`, "tab\tnew\nline\rcr", "\x00\x01\x1f ctl", "<script>&amp;",
		"àèìòù 漢字 🙂", "\u2028\u2029", "",
	} {
		rec := record{at: at, id: s, client: s, command: []byte(s), worker: s, attempts: 2, status: 504, latency: 1234567 * time.Nanosecond}
		var ours bytes.Buffer
		l := newRequestLog(nil, &ours, 1)
		l.write(rec)
		l.flush()

		var theirs bytes.Buffer
		sl := newRequestLog(slog.New(slog.NewJSONHandler(&theirs, nil)), nil, 1)
		sl.write(rec)

		var a, b map[string]any
		if err := json.Unmarshal(ours.Bytes(), &a); err != nil {
			t.Fatalf("%q: our line %q is not JSON: %v", s, ours.String(), err)
		}
		if err := json.Unmarshal(theirs.Bytes(), &b); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(a, b) {
			t.Errorf("%q:\n ours   %s theirs %s", s, ours.String(), theirs.String())
		}
	}
}

func TestRequestLineInvalidUTF8(t *testing.T) {
	var out bytes.Buffer
	l := newRequestLog(nil, &out, 1)
	l.write(record{at: time.Now(), id: "a\xffb", client: "\xc3", command: []byte("add \xff 1"), worker: "w"})
	l.flush()
	var m map[string]any
	if err := json.Unmarshal(out.Bytes(), &m); err != nil {
		t.Fatalf("line %q is not JSON: %v", out.String(), err)
	}
	if m["id"] != "a\ufffdb" || m["command"] != "<not UTF-8>" {
		t.Fatalf("line = %s", out.String())
	}
}

func BenchmarkRequestLine(b *testing.B) {
	rec := record{at: time.Now(), id: "cbb07a76-9307-40ac-ac2a-f6d2cfb60c24", client: "client-vm-15204",
		command: []byte("add 2 3"), worker: "w-330d", attempts: 1, status: 200, latency: 166 * time.Microsecond}
	b.Run("ours", func(b *testing.B) {
		l := newRequestLog(nil, discard{}, 1)
		b.ReportAllocs()
		for range b.N {
			l.write(rec)
			l.flush()
		}
	})
	b.Run("slog", func(b *testing.B) {
		l := newRequestLog(slog.New(slog.NewJSONHandler(discard{}, nil)), nil, 1)
		b.ReportAllocs()
		for range b.N {
			l.write(rec)
		}
	})
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// TestBoundLogger: a line with a field no call site cut (a 600 KB request
// id in "reply failed") comes out cut; a line within bounds is unchanged.
func TestBoundLogger(t *testing.T) {
	var out bytes.Buffer
	l := boundLogger(slog.New(slog.NewJSONHandler(&out, nil)))
	long := strings.Repeat("é", 300_000)
	l.Warn("reply failed", "id", long, "error", errors.New(long), "n", 1)
	if out.Len() > 2*maxLoggedAttr+200 || !json.Valid(out.Bytes()) {
		t.Fatalf("line of %d bytes: %.200s", out.Len(), out.String())
	}
	var m map[string]any
	_ = json.Unmarshal(out.Bytes(), &m)
	if id, _ := m["id"].(string); !strings.HasSuffix(id, "…[600000 bytes]") || m["n"] != 1.0 {
		t.Fatalf("line = %v", m)
	}
	out.Reset()
	l.Info("worker up", "worker", "w-1")
	if !strings.Contains(out.String(), `"worker":"w-1"`) {
		t.Fatalf("line = %s", out.String())
	}
}
