package config

import (
	"slices"
	"testing"
)

func TestExpandEnv(t *testing.T) {
	env := func(k string) (string, bool) {
		v, ok := map[string]string{"A": "a", "E": "", "N": "1", "D": "$X"}[k]
		return v, ok
	}
	tests := []struct {
		in, want string
		unset    []string
	}{
		{"", "", nil},
		{"plain", "plain", nil},
		{"${A}", "a", nil},
		{"x${A}y${A}z", "xayaz", nil},
		{"${U}", "", []string{"U"}},
		{"${E}", "", []string{"E"}},
		{"${U}${E}", "", []string{"U", "E"}},
		{"${U:-d}", "d", nil},
		{"${E:-d}", "d", nil},
		{"${A:-d}", "a", nil},
		{"${U:-}", "", nil},
		{"${U:-a b: c # d}", "a b: c # d", nil},
		{"${U:-${A}}", "a", nil},
		{"${U:-${V:-deep}}", "deep", nil},
		{"${U:-${V}}", "", []string{"V"}},
		{"${A:-${V}}", "a", nil}, // V is not needed, so not reported
		{"${U:-$$}", "$", nil},
		{"${D}", "$X", nil}, // values are not expanded again
		{"$$", "$", nil},
		{"$${A}", "${A}", nil},
		{"$$$${A}", "$${A}", nil},
		{"$$${A}", "$a", nil},
		{"$", "$", nil},
		{"a$b", "a$b", nil},
		{"$ {A}", "$ {A}", nil},
		{"}", "}", nil},
		{"${_x1}", "", []string{"_x1"}},
		{"€${A}€", "€a€", nil},
	}
	for _, tt := range tests {
		got, unset, err := expandEnv(tt.in, env)
		if err != nil || got != tt.want || !slices.Equal(unset, tt.unset) {
			t.Errorf("expandEnv(%q) = %q, %q, %v; want %q, %q", tt.in, got, unset, err, tt.want, tt.unset)
		}
	}
	for _, in := range []string{"${", "${A", "x${A:-", "${A:-b", "${A:-${B}", "${}", "${1}", "${A-b}", "${A:b}", "${A=b}", "${A:?b}", "${ A}", "${A }", "${-}", "${€}"} {
		if got, _, err := expandEnv(in, env); err == nil {
			t.Errorf("expandEnv(%q) = %q, want an error", in, got)
		}
	}
}
