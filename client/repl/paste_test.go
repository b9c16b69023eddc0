package repl

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/bilancia/bilancia/client"
	"github.com/bilancia/bilancia/internal/testutil"
	"github.com/bilancia/bilancia/wire"
)

func TestPasteReaderTransform(t *testing.T) {
	long := strings.Repeat("x", minPaste)
	mark := string(pasteMark)
	for _, tc := range []struct {
		name  string
		reads []string
		want  string   // what readline reads
		texts []string // what the marks stand for
	}{
		{"typing", []string{"a", "dd 2 3\r"}, "add 2 3\r", nil},
		{"arrow keys", []string{"\x1b[A", "\x1b[D"}, "\x1b[A\x1b[D", nil},
		{"paste", []string{long + "\r"}, mark + "\r", []string{long}},
		{"two lines", []string{long + "\n" + long + "y\n"}, mark + "\n" + mark + "\n", []string{long, long + "y"}},
		{"short lines", []string{"add 1 2\nfib 3\n"}, "add 1 2\nfib 3\n", nil},
		{"paste in several reads", []string{long + "\xc3", "\xa8" + long, "z\r"}, mark + "\r", []string{long + "è" + long + "z"}},
		{"typing after a paste", []string{long + "\r", "a", "b"}, mark + "\rab", []string{long}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newPasteReader(&chunks{reads: tc.reads})
			got, err := io.ReadAll(p)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.want {
				t.Errorf("read %q; want %q", got, tc.want)
			}
			var texts []string
			for _, r := range p.texts {
				texts = append(texts, string(r))
			}
			if strings.Join(texts, "|") != strings.Join(tc.texts, "|") {
				t.Errorf("texts = %q; want %q", texts, tc.texts)
			}
		})
	}
}

// A read that cuts a rune in two at the end of a paste (the next read
// came too late to be gathered) keeps its first bytes for the next.
func TestPasteReaderCutRune(t *testing.T) {
	long := strings.Repeat("x", minPaste)
	p := &pasteReader{}
	p.transform([]byte(long + "\xc3"))
	if string(p.out) != string(pasteMark) || string(p.carry) != "\xc3" {
		t.Fatalf("out %q, carry %q; want the mark and \\xc3", p.out, p.carry)
	}
	p.out = nil
	p.transform(append(p.carry, "\xa8"+long...))
	if string(p.out) != string(pasteMark) || p.carry != nil {
		t.Fatalf("out %q, carry %q; want the mark and none", p.out, p.carry)
	}
	if len(p.texts) != 2 || string(p.texts[0]) != long || string(p.texts[1]) != "è"+long {
		t.Errorf("texts = %q; want %q then %q", p.texts, long, "è"+long)
	}
}

// Typing is not held back: a key or two is passed on without waiting for
// more; only a paste gathers the reads that follow it.
func TestPasteReaderGather(t *testing.T) {
	long := strings.Repeat("x", minPaste)
	for _, tc := range []struct{ name, first, want string }{
		{"a key", "a", "a"},
		{"a line typed by a program", "add 2 3\r", "add 2 3\r"},
		{"a paste", long, long + "b"},
		{"a pasted line ending in Enter", long + "\r", long + "\r"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := &pasteReader{chunks: make(chan []byte, 1)}
			p.chunks <- []byte("b")
			if got := p.gather([]byte(tc.first)); string(got) != tc.want {
				t.Errorf("gather(%q) = %q; want %q", tc.first, got, tc.want)
			}
		})
	}
}

// chunks returns one of reads per Read, as a terminal delivers them.
type chunks struct{ reads []string }

func (c *chunks) Read(b []byte) (int, error) {
	if len(c.reads) == 0 {
		return 0, io.EOF
	}
	n := copy(b, c.reads[0])
	c.reads = c.reads[1:]
	return n, nil
}

func TestPasteReaderOnChange(t *testing.T) {
	p := &pasteReader{texts: [][]rune{[]rune("PASTED")}}
	line := []rune("ab" + string(pasteMark) + "cd")
	if _, _, ok := p.OnChange(line, 3, 'x'); ok {
		t.Errorf("OnChange changed the line for an ordinary key")
	}
	got, pos, ok := p.OnChange(line, 3, pasteMark)
	if !ok || string(got) != "abPASTEDcd" || pos != 8 {
		t.Errorf("OnChange = %q, %d, %v; want \"abPASTEDcd\", 8, true", string(got), pos, ok)
	}
	if len(p.texts) != 0 {
		t.Errorf("the text was not taken")
	}
}

// pasteLine types a line of n bytes into the interactive REPL, drawn as
// on a terminal, and returns how long until its request arrived whole.
func pasteLine(t testing.TB, n int) time.Duration {
	t.Helper()
	url := startServer(t)
	nc := connect(t, url)
	var got atomic.Int64
	if _, err := nc.Subscribe("calc.request", func(m *nats.Msg) {
		got.Store(int64(len(m.Data)))
		out := nats.NewMsg(m.Reply)
		out.Data, _ = json.Marshal(wire.Reply{ID: m.Header.Get(wire.HdrRequestID), Result: json.RawMessage(strconv.Itoa(len(m.Data))), Worker: "w-a"})
		out.Header.Set(wire.HdrWorker, "w-a")
		_ = nc.PublishMsg(out)
	}); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	cl := newClient(t, url, client.Config{})
	pr, pw := io.Pipe()
	t.Cleanup(func() { pw.Close() })
	var out testutil.SyncBuffer
	done := make(chan error, 1)
	go func() {
		_, err := Run(context.Background(), cl, Config{In: pr, Out: &out, Err: io.Discard, Interactive: true, HistoryFile: NoHistory, echo: true})
		done <- err
	}()
	line := "expr " + strings.Repeat("1+", (n-6)/2) + "1"
	start := time.Now()
	// A terminal hands a paste over in pieces of up to 4 KiB.
	for b := []byte(line + "\r"); len(b) > 0; {
		k := min(len(b), 4096)
		if _, err := pw.Write(b[:k]); err != nil {
			t.Fatal(err)
		}
		b = b[k:]
	}
	testutil.CheckFor(t, time.Minute, time.Millisecond, func() error {
		if got.Load() != int64(len(line)) {
			return fmt.Errorf("request of %d bytes; want %d", got.Load(), len(line))
		}
		return nil
	})
	elapsed := time.Since(start)
	if _, err := io.WriteString(pw, "exit\r"); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if !bytes.Contains([]byte(out.String()), []byte("[w-a] expr 1+1+")) {
		t.Errorf("no reply shown:\n%.300s", out.String())
	}
	return elapsed
}

// A pasted line arrives whole, and pasting takes time linear in its
// length: 20 KB took seconds when every byte redrew the line.
func TestPasteLongLine(t *testing.T) {
	small, large := pasteLine(t, 5_000), pasteLine(t, 20_000)
	t.Logf("5 KB: %v, 20 KB: %v", small, large)
	if large > 2*time.Second {
		t.Errorf("pasting 20 KB took %v; want well under 2 s", large)
	}
}

func BenchmarkPaste20KB(b *testing.B) {
	for b.Loop() {
		pasteLine(b, 20_000)
	}
}
