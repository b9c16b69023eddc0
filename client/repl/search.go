package repl

import (
	"sync"

	"github.com/chzyer/readline"
)

// searchFix works around a bug of readline's reverse search (Ctrl-R):
// Enter on a line found in the history runs it, but saves to the
// history what had been typed over that line in this session, which for
// a line of an earlier session is nothing: an empty line. On Enter in
// search mode it leaves the search as if cancelled, back on the line
// being typed, and puts the found line there: readline then runs and
// saves it as a line typed anew. Both of its methods run on readline's
// own goroutine, in key order.
type searchFix struct {
	next readline.Listener
	rl   *readline.Instance // set once readline.NewEx returned

	mu    sync.Mutex
	found []rune // the line shown after the last key
}

// OnChange remembers the line that the key left, after next's change.
func (s *searchFix) OnChange(line []rune, pos int, key rune) ([]rune, int, bool) {
	newLine, newPos, ok := s.next.OnChange(line, pos, key)
	shown := line
	if ok {
		shown = newLine
	}
	s.mu.Lock()
	s.found = append(s.found[:0], shown...)
	s.mu.Unlock()
	return newLine, newPos, ok
}

// filter is readline's FuncFilterInputRune.
func (s *searchFix) filter(r rune) (rune, bool) {
	if (r != readline.CharEnter && r != readline.CharCtrlJ) || s.rl == nil || !s.rl.Operation.IsSearchMode() {
		return r, true
	}
	s.mu.Lock()
	found := string(s.found)
	s.mu.Unlock()
	s.rl.Operation.ExitSearchMode(true)
	s.rl.Operation.SetBuffer(found)
	return r, true
}
