package wire

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestCheckHeartbeat(t *testing.T) {
	s := Subjects{}
	for _, tc := range []struct {
		name, subject string
		hb            Heartbeat
		want          error
	}{
		{"a worker's own", "calc.heartbeat.w-1", Heartbeat{ID: "w-1", Subject: "calc.worker.w-1"}, nil},
		{"no subject field", "calc.heartbeat.w-1", Heartbeat{ID: "w-1"}, nil},
		{"a foreign subject", "calc.heartbeat.evil1", Heartbeat{ID: "evil1", Subject: "evil.sink"}, ErrForeignSubject},
		{"the request subject", "calc.heartbeat.evil1", Heartbeat{ID: "evil1", Subject: "calc.request"}, ErrForeignSubject},
		{"another worker's subject", "calc.heartbeat.w-1", Heartbeat{ID: "w-1", Subject: "calc.worker.w-2"}, ErrForeignSubject},
		{"one longer", "calc.heartbeat.w-1", Heartbeat{ID: "w-1", Subject: "calc.worker.w-1x"}, ErrForeignSubject},
		{"another prefix", "calc.heartbeat.w-1", Heartbeat{ID: "w-1", Subject: "calx.worker.w-1"}, ErrForeignSubject},
		{"id not the subject's", "calc.heartbeat.w-2", Heartbeat{ID: "w-1"}, ErrIDNotSubject},
		{"another prefix's heartbeat", "prod.heartbeat.w-1", Heartbeat{ID: "w-1"}, ErrIDNotSubject},
		{"bad id", "calc.heartbeat.x", Heartbeat{ID: "a.b"}, ErrBadWorkerID},
		{"empty id", "calc.heartbeat.x", Heartbeat{}, ErrBadWorkerID},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := s.CheckHeartbeat(tc.subject, tc.hb)
			if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Fatalf("CheckHeartbeat(%q, %+v) = %v; want %v", tc.subject, tc.hb, err, tc.want)
			}
		})
	}
	// The error quotes no more than a bound of what came in.
	err := s.CheckHeartbeat("calc.heartbeat.x", Heartbeat{ID: strings.Repeat("é", 50000)})
	if err == nil || len(err.Error()) > 200 {
		t.Fatalf("error for a 100 KB id: %d bytes", len(err.Error()))
	}
}

func TestQuoteCut(t *testing.T) {
	for _, tc := range []struct {
		in   string
		max  int
		want string
	}{
		{"abc", 3, `"abc"`},
		{"abcd", 3, `"abc"… (4 bytes)`},
		{"aé", 2, `"a"… (3 bytes)`}, // é is 2 bytes: not split
		{"\u2028x", 3, `"\u2028"… (4 bytes)`},
	} {
		if got := QuoteCut(tc.in, tc.max); got != tc.want {
			t.Errorf("QuoteCut(%q, %d) = %s; want %s", tc.in, tc.max, got, tc.want)
		}
	}
}

// FuzzCheckHeartbeat: whatever the subject and payload, a heartbeat that
// passes has a valid id equal to its subject's last token and no subject
// but its own, and a refusal quotes a bounded part of what came in.
func FuzzCheckHeartbeat(f *testing.F) {
	f.Add("calc.heartbeat.w-1", []byte(`{"id":"w-1","subject":"calc.worker.w-1"}`))
	f.Add("calc.heartbeat.evil1", []byte(`{"id":"evil1","subject":"evil.sink"}`))
	f.Add("calc.heartbeat.x", []byte(`{"id":"w-1"}`))
	f.Fuzz(func(t *testing.T, subject string, data []byte) {
		hb, err := DecodeHeartbeat(data)
		if err != nil {
			return
		}
		err = Subjects{}.CheckHeartbeat(subject, hb)
		if err != nil {
			if len(err.Error()) > 400 {
				t.Fatalf("error of %d bytes", len(err.Error()))
			}
			return
		}
		if !ValidID(hb.ID) || subject != "calc.heartbeat."+hb.ID || (hb.Subject != "" && hb.Subject != "calc.worker."+hb.ID) {
			t.Fatalf("passed: subject %q, %+v", subject, hb)
		}
	})
}

func TestCheckRequestHeaders(t *testing.T) {
	for _, tc := range []struct {
		name string
		h    map[string][]string
		ok   bool
	}{
		{"none", nil, true},
		{"a client's", map[string][]string{HdrRequestID: {"cbb07a76-1a2b-4c3d-8e9f-0123456789ab"}, HdrClient: {"alice"}, HdrTimeout: {"5000"}, HdrProgress: {"1"}}, true},
		{"an id at the bound", map[string][]string{HdrRequestID: {strings.Repeat("i", MaxRequestIDLen)}}, true},
		{"an id beyond it", map[string][]string{HdrRequestID: {strings.Repeat("i", MaxRequestIDLen+1)}}, false},
		{"a second id beyond it", map[string][]string{HdrRequestID: {"a", strings.Repeat("i", 500<<10)}}, false},
		{"a long client", map[string][]string{HdrClient: {strings.Repeat("c", 200)}}, false},
		{"a long timeout", map[string][]string{HdrTimeout: {strings.Repeat("9", 21)}}, false},
		{"a long hedge", map[string][]string{HdrHedge: {strings.Repeat("9", 21)}}, false},
		{"others within", map[string][]string{"X-Trace": {strings.Repeat("t", 4000)}}, true},
		{"others beyond", map[string][]string{"X-Trace": {strings.Repeat("t", MaxHeaderBytes)}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckRequestHeaders(tc.h)
			if (err == nil) != tc.ok || (err != nil && !errors.Is(err, ErrHeaderTooLong)) {
				t.Fatalf("CheckRequestHeaders = %v; want ok %v", err, tc.ok)
			}
			if err != nil && len(err.Error()) > 200 {
				t.Fatalf("error of %d bytes: it quotes the value", len(err.Error()))
			}
		})
	}
}

func TestMillis(t *testing.T) {
	const max = 5 * time.Minute
	for _, tc := range []struct {
		in   string
		want time.Duration
	}{
		{"", 0}, {"x", 0}, {"0", 0}, {"-5", 0}, {"250", 250 * time.Millisecond},
		{"300000", max}, {"9300000000000", max}, {"9223372036854775807", max}, {"99999999999999999999", max}, {"-99999999999999999999", 0},
	} {
		if got := Millis(tc.in, max); got != tc.want {
			t.Errorf("Millis(%q) = %v; want %v", tc.in, got, tc.want)
		}
	}
}
