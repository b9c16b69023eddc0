package dispatcher

import (
	"bytes"
	"io"
	"net"
	"testing"
	"time"
)

// TestPacedConnBatchesAStream: messages written a millisecond apart reach
// a paced reader in order and whole, in fewer reads than writes.
func TestPacedConnBatchesAStream(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	const n = 50
	var want bytes.Buffer
	for i := range n {
		want.WriteString("message " + string(rune('A'+i%26)) + "\n")
	}
	go func() {
		s, err := l.Accept()
		if err != nil {
			return
		}
		defer s.Close()
		for _, line := range bytes.SplitAfter(want.Bytes(), []byte("\n")) {
			if _, err := s.Write(line); err != nil {
				return
			}
			time.Sleep(time.Millisecond) // a stream, not a burst: the load being shaped
		}
	}()
	c, err := PacedDialer{Every: 20 * time.Millisecond}.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var got bytes.Buffer
	reads := 0
	buf := make([]byte, 4096)
	for {
		k, err := c.Read(buf)
		got.Write(buf[:k])
		if k > 0 {
			reads++
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if got.String() != want.String() {
		t.Fatalf("read %q; want %q", got.String(), want.String())
	}
	if reads >= n {
		t.Fatalf("%d reads for %d messages: not batched", reads, n)
	}
	t.Logf("%d messages in %d reads", n, reads)
}
