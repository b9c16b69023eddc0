package calcworker

import (
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/bilancia/bilancia/wire"
)

// TestBouncesBounded: a reply kept is found by its bounce subject once;
// replies older than bounceKeep, and the oldest past maxBounceBytes, are
// let go; subjects that are not ours find nothing.
func TestBouncesBounded(t *testing.T) {
	b, sub := newBounces(wire.Subjects{})
	t0 := time.Unix(1000, 0)
	msg := func(data string) *nats.Msg { return &nats.Msg{Data: []byte(data)} }
	first := b.keep(msg("a"), t0)
	if !strings.HasPrefix(first, "calc.orphan.") || strings.Count(sub, ".") != strings.Count(first, ".") {
		t.Fatalf("bounce subject %q, subscription %q; want calc.orphan.<token>.<n> under it", first, sub)
	}
	if m := b.take(first); m == nil || string(m.Data) != "a" {
		t.Fatalf("take(%q) = %v; want a", first, m)
	}
	for _, s := range []string{first, "calc.orphan.other.0", b.prefix + "zz!", "x"} {
		if m := b.take(s); m != nil {
			t.Errorf("take(%q) = %q; want nothing", s, m.Data)
		}
	}
	old := b.keep(msg("old"), t0)
	fresh := b.keep(msg("fresh"), t0.Add(bounceKeep))
	if b.take(old) != nil || b.take(fresh) == nil {
		t.Fatalf("after bounceKeep: the old one still kept, or the fresh one lost")
	}
	big := strings.Repeat("x", maxBounceBytes/3)
	var subs []string
	for range 4 {
		subs = append(subs, b.keep(msg(big), t0.Add(bounceKeep)))
	}
	if b.bytes > maxBounceBytes || b.take(subs[0]) != nil || b.take(subs[3]) == nil {
		t.Fatalf("kept %d bytes; want at most %d, the oldest let go, the newest kept", b.bytes, maxBounceBytes)
	}
	if len(b.kept) != 2 || b.bytes != 2*len(big) {
		t.Fatalf("kept %d replies, %d bytes; want the 2 in between", len(b.kept), b.bytes)
	}
}
