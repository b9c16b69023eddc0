package repl

import (
	"io"
	"sync"
	"time"
	"unicode/utf8"
)

// Pasting into readline (chzyer/readline) costs time quadratic in the
// line's length: every key redraws the whole line and copies it twice (a
// 20 KB line took 26 s on a terminal). pasteReader sits between the
// terminal and readline and hands readline a long run of text as one key:
// it replaces the run with pasteMark and keeps the text; readline inserts
// the mark, and its Listener (OnChange, on readline's own goroutine, in
// order with the other keys) swaps the mark for the text in one redraw.
// Typing delivers a key or two per read; only a paste, or a program
// feeding input, brings minPaste bytes of text in one read. A terminal
// hands a paste over in reads of up to 4 KiB; the reads that follow one
// another within pasteGap make one key, so that a paste of any length is
// drawn once.
const (
	pasteMark = '\uE000' // a private-use rune: no terminal sends it
	minPaste  = 16
	pasteGap  = 10 * time.Millisecond
	maxPaste  = maxLine // bytes gathered into one key at most
)

type pasteReader struct {
	chunks  chan []byte // what the pump read, in order; closed after pumpErr is set
	pumpErr error

	out   []byte // transformed bytes not yet returned
	carry []byte // an incomplete UTF-8 sequence ending the last long run
	err   error  // the pump's error, returned once out is drained

	mu    sync.Mutex
	texts [][]rune // pasted runs, in order, each one pasteMark in the input
}

// newPasteReader reads r in a goroutine of its own, which ends when r's
// Read fails (EOF, a closed pipe or terminal); like readline's, it may stay
// blocked in a terminal's Read until the next key after the REPL ends.
func newPasteReader(r io.Reader) *pasteReader {
	p := &pasteReader{chunks: make(chan []byte, 64)}
	go p.pump(r)
	return p
}

func (p *pasteReader) pump(r io.Reader) {
	defer close(p.chunks)
	buf := make([]byte, 16*1024)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			p.chunks <- append([]byte(nil), buf[:n]...)
		}
		if err != nil {
			p.pumpErr = err
			return
		}
	}
}

func (p *pasteReader) Read(b []byte) (int, error) {
	for len(p.out) == 0 {
		if p.err != nil {
			if len(p.carry) > 0 { // never completed: pass it on as it is
				p.out, p.carry = p.carry, nil
				break
			}
			return 0, p.err
		}
		data, ok := <-p.chunks
		if !ok {
			p.err = p.pumpErr
			continue
		}
		p.transform(p.gather(append(p.carry, data...)))
	}
	n := copy(b, p.out)
	p.out = p.out[n:]
	return n, nil
}

// gather appends to data the reads that follow within pasteGap while data
// ends in a paste (minPaste bytes of text or more): the rest of that paste.
func (p *pasteReader) gather(data []byte) []byte {
	var gap *time.Timer
	for len(data) < maxPaste && trailingText(data) >= minPaste {
		if gap == nil {
			gap = time.NewTimer(pasteGap)
			defer gap.Stop()
		} else {
			gap.Reset(pasteGap)
		}
		select {
		case more, ok := <-p.chunks:
			if !ok {
				p.err = p.pumpErr
				return data
			}
			data = append(data, more...)
		case <-gap.C:
			return data
		}
	}
	return data
}

// isText tells the bytes of text: not control characters.
func isText(c byte) bool { return c >= 0x20 && c != 0x7f }

// trailingText is the length of the run of text ending data.
func trailingText(data []byte) int {
	n := 0
	for n < len(data) && isText(data[len(data)-1-n]) {
		n++
	}
	return n
}

// transform appends data to p.out with every run of at least minPaste
// bytes of text (no control characters) replaced by pasteMark.
func (p *pasteReader) transform(data []byte) {
	p.carry = nil
	for i := 0; i < len(data); {
		if !isText(data[i]) {
			p.out = append(p.out, data[i])
			i++
			continue
		}
		j := i
		for j < len(data) && isText(data[j]) {
			j++
		}
		run := data[i:j]
		if len(run) < minPaste {
			p.out = append(p.out, run...)
			i = j
			continue
		}
		if j == len(data) { // the read may have cut the last rune in two
			k := len(run) - 1
			for k > 0 && !utf8.RuneStart(run[k]) {
				k--
			}
			if !utf8.FullRune(run[k:]) {
				p.carry = append([]byte(nil), run[k:]...)
				run = run[:k]
			}
		}
		p.mu.Lock()
		p.texts = append(p.texts, []rune(string(run)))
		p.mu.Unlock()
		p.out = utf8.AppendRune(p.out, pasteMark)
		i = j
	}
}

// OnChange is readline's Listener: when the key just inserted is a
// pasteMark, it puts the text the mark stands for in its place.
func (p *pasteReader) OnChange(line []rune, pos int, key rune) ([]rune, int, bool) {
	if key != pasteMark {
		return nil, 0, false
	}
	p.mu.Lock()
	var text []rune
	if len(p.texts) > 0 {
		text = p.texts[0]
		p.texts = p.texts[1:]
	}
	p.mu.Unlock()
	if text == nil || pos == 0 || pos > len(line) || line[pos-1] != pasteMark {
		return nil, 0, false // not in the line (a search, say): drop it
	}
	out := make([]rune, 0, len(line)-1+len(text))
	out = append(out, line[:pos-1]...)
	out = append(out, text...)
	out = append(out, line[pos:]...)
	return out, pos - 1 + len(text), true
}
