package jsonstr

import (
	"encoding/json"
	"testing"
)

func TestAppend(t *testing.T) {
	for _, s := range []string{"", "add 2 3", `q"b\s`, "\x00\x1f\x7f\t\n\r", "<&>", "àé 漢字 🙂", "\u2028", "a\xffb\xc3"} {
		for _, b := range [][]byte{Append(nil, s), Append(nil, []byte(s))} {
			var got string
			if err := json.Unmarshal(b, &got); err != nil {
				t.Fatalf("Append(%q) = %s: not JSON: %v", s, b, err)
			}
			want, _ := json.Marshal(s) // encoding/json's reading of s
			var w string
			_ = json.Unmarshal(want, &w)
			if got != w {
				t.Errorf("Append(%q) reads back as %q; want %q", s, got, w)
			}
		}
	}
}

func FuzzAppend(f *testing.F) {
	f.Add("add 2 3")
	f.Add("a\xffb")
	f.Fuzz(func(t *testing.T, s string) {
		var got string
		if err := json.Unmarshal(Append(nil, s), &got); err != nil {
			t.Fatalf("Append(%q): not JSON: %v", s, err)
		}
	})
}
