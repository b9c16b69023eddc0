package wire

import "testing"

func TestValidSubject(t *testing.T) {
	for s, want := range map[string]bool{
		"calc.request": true, "calc": true, "a.b-c.d_e": true,
		"": false, "calc.": false, ".calc": false, "calc..x": false, "calc.*": false,
		"calc.>": false, "calc.re quest": false, "calc.\x7f": false, string(make([]byte, 256)): false,
	} {
		if got := ValidSubject(s); got != want {
			t.Errorf("ValidSubject(%q) = %v; want %v", s, got, want)
		}
	}
}
