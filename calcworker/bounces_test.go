package calcworker

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/bilancia/bilancia/internal/testutil"
	"github.com/bilancia/bilancia/wire"
)

// TestBounces: a reply kept is settled by its bounce subject once;
// subjects not its own settle nothing; one left unsettled is handed over
// after ackWait, and waiting ends then; past maxBounceBytes the oldest
// are let go.
func TestBounces(t *testing.T) {
	var mu sync.Mutex
	var handed []string
	b, sub := newBounces("_INBOX.w", func(m *nats.Msg) {
		mu.Lock()
		handed = append(handed, string(m.Data))
		mu.Unlock()
	})
	defer b.stop()
	msg := func(data string) *nats.Msg { return &nats.Msg{Data: []byte(data)} }
	now := time.Now()
	first := b.keep(msg("a"), now)
	if !strings.HasPrefix(first, "_INBOX.w.") || sub != "_INBOX.w.*" || !wire.IsReplySubject(first, wire.DefaultInboxPrefixes) {
		t.Fatalf("bounce subject %q, subscription %q; want an inbox <inbox>.<n> under it", first, sub)
	}
	if m := b.settle(first); m == nil || string(m.Data) != "a" {
		t.Fatalf("settle(%q) = %v; want a", first, m)
	}
	for _, s := range []string{first, "_INBOX.other.0", b.prefix + "zz!", "x"} {
		if m := b.settle(s); m != nil {
			t.Errorf("settle(%q) = %q; want nothing", s, m.Data)
		}
	}
	b.keep(msg("unacknowledged"), now)
	acked := b.keep(msg("acknowledged"), now)
	b.settle(acked)
	b.wait(10 * time.Second)
	testutil.CheckFor(t, 5*time.Second, time.Millisecond, func() error {
		mu.Lock()
		defer mu.Unlock()
		if len(handed) != 1 || handed[0] != "unacknowledged" {
			return fmt.Errorf("handed over %q; want the unacknowledged one alone", handed)
		}
		return nil
	})

	if len(b.kept) != 0 {
		t.Fatalf("%d kept after the wait; want none", len(b.kept))
	}

	b.stop() // no hand-over by timer from here: the bounds alone
	big := strings.Repeat("x", maxBounceBytes/3)
	var subs []string
	for range 4 {
		subs = append(subs, b.keep(msg(big), time.Now()))
	}
	if b.bytes > maxBounceBytes || b.settle(subs[0]) != nil || b.settle(subs[3]) == nil {
		t.Fatalf("kept %d bytes; want at most %d, the oldest let go, the newest kept", b.bytes, maxBounceBytes)
	}
	if len(b.kept) != 2 || b.bytes != 2*len(big) {
		t.Fatalf("kept %d replies, %d bytes; want the 2 in between", len(b.kept), b.bytes)
	}
}
