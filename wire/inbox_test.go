package wire

import (
	"errors"
	"strings"
	"testing"
)

func TestInboxesAllows(t *testing.T) {
	in, err := NewInboxes("", "_INBOX_APP")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		subj string
		want bool
	}{
		{"_INBOX.abc.1", true},
		{"_INBOX.abc", true},
		{"_INBOX_CLIENT.alice.xyz.1", true},
		{"_INBOX_APP.r.2", true},
		{"_INBOX.", false},
		{"_INBOX", false},
		{"_INBOXES.x", false},
		{"_INBOX_APPX.x", false},
		{"calc.heartbeat.w-1", false},
		{"calc.orphan", false},
		{"calc.orphan.w-1", false},
		{"calc.worker.w-1", false},
		{"calc.discover", false},
		{"calc.events.worker", false},
		{"calc.request", false},
		{"$SRV.PING", false},
		{"$SYS.REQ.SERVER.PING", false},
		{"_INBOX.a..b", false},
		{"_INBOX.*", false},
		{"_INBOX.a.>", false},
		{"_INBOX.a b", false},
		{"_INBOX." + strings.Repeat("x", 300), false},
		{"", false},
	} {
		if got := in.Allows(tc.subj); got != tc.want {
			t.Errorf("Allows(%q) = %v; want %v", tc.subj, got, tc.want)
		}
	}
	// The zero value: the defaults.
	var zero Inboxes
	if !zero.Allows("_INBOX.a") || zero.Allows("_INBOX_APP.a") || zero.Allows("calc.heartbeat.x") {
		t.Fatal("zero Inboxes does not allow exactly the defaults")
	}
	if !IsReplySubject("_INBOX.a", DefaultInboxPrefixes) || IsReplySubject("calc.x", []string{"calc."}) || IsReplySubject("_INBOX.a", nil) {
		t.Fatal("IsReplySubject disagrees with Allows")
	}
}

func TestNewInboxesRefuses(t *testing.T) {
	for _, p := range []string{"", "calc", "calc.", "calc.inbox", "$SYS", "$SRV.x", "a.*", "a b"} {
		if _, err := NewInboxes("calc", p); !errors.Is(err, ErrInboxPrefix) {
			t.Errorf("NewInboxes(calc, %q) = %v; want ErrInboxPrefix", p, err)
		}
	}
	if _, err := NewInboxes("prod", "prod"); err == nil {
		t.Error("the deployment's own prefix is refused whatever it is")
	}
	in, err := NewInboxes("prod", "calc")
	if err != nil || !in.Allows("calc.x") || in.Allows("prod.heartbeat.x") {
		t.Errorf("NewInboxes(prod, calc) = %v, %v", in, err)
	}
}
