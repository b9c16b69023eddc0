package repl

import (
	"reflect"
	"testing"
)

func TestSplitCommands(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     []string
	}{
		{"one", "add 2 3", []string{"add 2 3"}},
		{"several", " add 2 3; random 100 -q ;status", []string{"add 2 3", "random 100 -q", "status"}},
		{"empty parts", ";; add 1 2 ;", []string{"add 1 2"}},
		{"nothing", "  ", nil},
		{"json with commas", `{"op":"add","args":[2,3]}`, []string{`{"op":"add","args":[2,3]}`}},
		{"json then text", `{"op":"add","args":[2,3]}; fib 9`, []string{`{"op":"add","args":[2,3]}`, "fib 9"}},
		{"semicolon in a string", `{"op":"expr","args":["1;2"]}; add 1 1`, []string{`{"op":"expr","args":["1;2"]}`, "add 1 1"}},
		{"escaped quote", `{"op":"expr","args":["\";"]};x`, []string{`{"op":"expr","args":["\";"]}`, "x"}},
		{"unbalanced close", "add 1 2 ]; fib 3", []string{"add 1 2 ]", "fib 3"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := SplitCommands(tc.in); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("SplitCommands(%q) = %q; want %q", tc.in, got, tc.want)
			}
		})
	}
}
