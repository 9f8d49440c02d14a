package config

import (
	"reflect"
	"testing"
	"time"
)

// Config uses only a few kinds of Go values; the decoder handles the others
// so that new settings work without touching it.
type genericInner struct {
	Shared string `yaml:"shared"`
}

type generic struct {
	genericInner `yaml:",inline"`
	Ptr          *int              `yaml:"ptr"`
	NilPtr       *string           `yaml:"nil_ptr"`
	Uint         uint16            `yaml:"uint"`
	Float        float64           `yaml:"float"`
	Float32      float32           `yaml:"float32"`
	Inf          float64           `yaml:"inf"`
	Int8         int8              `yaml:"int8"`
	StdDuration  time.Duration     `yaml:"std_duration"`
	IntKeys      map[int]string    `yaml:"int_keys"`
	Bytes        []byte            `yaml:"bytes"`
	Any          any               `yaml:"any"`
	Strings      []string          `yaml:"strings"`
	Nested       map[string][]uint `yaml:"nested"`
	JSONName     string            `json:"json_name"`
	NoTag        string
	Skipped      string `yaml:"-"`
	//lint:ignore U1000 it exists to show that unexported fields stay invisible to YAML
	unexported string
}

func decodeGeneric(t *testing.T, src string) (generic, error) {
	t.Helper()
	var g generic
	d := newDecoder("g.yaml", func(string) (string, bool) { return "", false })
	d.decodeFile([]byte(src), reflect.ValueOf(&g).Elem())
	return g, d.probs.err()
}

func TestDecodeGenericKinds(t *testing.T) {
	g, err := decodeGeneric(t, `shared: s
ptr: 7
nil_ptr: null
uint: 65535
float: 1.5
float32: 2
inf: .inf
int8: -128
std_duration: 90s
int_keys: {1: one, 2: two}
bytes: [104, 105]
any: {a: [1, x]}
strings: [a, 1, true, 0x1F, 007]
nested: {a: [1, 2]}
json_name: j
notag: n
`)
	if err != nil {
		t.Fatal(err)
	}
	if g.Shared != "s" || g.Ptr == nil || *g.Ptr != 7 || g.NilPtr != nil || g.Uint != 65535 ||
		g.Float != 1.5 || g.Float32 != 2 || g.Inf <= 1e308 || g.Int8 != -128 || g.StdDuration != 90*time.Second ||
		!reflect.DeepEqual(g.IntKeys, map[int]string{1: "one", 2: "two"}) || string(g.Bytes) != "hi" ||
		!reflect.DeepEqual(g.Strings, []string{"a", "1", "true", "0x1F", "007"}) ||
		!reflect.DeepEqual(g.Nested, map[string][]uint{"a": {1, 2}}) || g.JSONName != "j" || g.NoTag != "n" {
		t.Errorf("decoded %+v", g)
	}
	if !reflect.DeepEqual(g.Any, map[string]any{"a": []any{uint64(1), "x"}}) {
		t.Errorf("any = %#v", g.Any)
	}
}

func TestDecodeGenericErrors(t *testing.T) {
	tests := []struct{ src, want string }{
		{"uint: -1\n", "g.yaml:1:7: uint: must not be negative, got -1"},
		{"uint: 65536\n", "g.yaml:1:7: uint: 65536 is out of range"},
		{"uint: 1.5\n", "g.yaml:1:7: uint: want a whole number, got 1.5"},
		{"int8: 128\n", "g.yaml:1:7: int8: 128 is out of range"},
		{"int8: 18446744073709551615\n", "g.yaml:1:7: int8: 18446744073709551615 is out of range"},
		{"float: x\n", `g.yaml:1:8: float: want a number, got "x"`},
		{"float: '1.5'\n", `g.yaml:1:8: float: want a number, got the quoted string "1.5" (remove the quotes)`},
		{"float32: 1e300\n", `g.yaml:1:10: float32: want a number, got "1e300"`},
		{"float32: 1.0e+300\n", `g.yaml:1:10: float32: 1.0e+300 is out of range`},
		{"std_duration: 1d\n", `g.yaml:1:15: std_duration: time: unknown unit "d" in duration "1d"`},
		{"strings: [a, [b]]\n", "g.yaml:1:14: strings[1]: want a string, got a list"},
		{"nested: {a: [x]}\n", `g.yaml:1:14: nested.a[0]: want a whole number, got "x"`},
		{"ptr: x\n", `g.yaml:1:6: ptr: want an integer, got "x"`},
		{"skipped: x\n", `g.yaml:1:1: unknown field "skipped"`},
		{"unexported: x\n", `g.yaml:1:1: unknown field "unexported"`},
		{"genericinner: x\n", `g.yaml:1:1: unknown field "genericinner"`},
		{"? |\n  x\n: y\n", `g.yaml:1:3: unknown field "x\n"`},
		{"shared: !!str\n", ""},
		{"shared: !!str null\nnil_ptr: !!str ~\n", ""},
		{"shared: !!int 1\n", ""},
		{"shared: !!binary aGVsbG8=\n", `g.yaml:1:9: shared: want a string, got a value tagged !!binary`},
		// goccy/go-yaml v1.19.2 panics on this; the panic must become an error.
		{"bytes: !!binary aGVsbG8=\n", `g.yaml:1:8: bytes: cannot decode this value (YAML library failure: runtime error: invalid memory address or nil pointer dereference)`},
	}
	for _, tt := range tests {
		_, err := decodeGeneric(t, tt.src)
		got := ""
		if err != nil {
			got = err.Error()
		}
		if got != tt.want {
			t.Errorf("decode(%q):\n%s\nwant:\n%s", tt.src, got, tt.want)
		}
	}
}

func TestParentPath(t *testing.T) {
	for in, want := range map[string]string{
		"a":                       "",
		"a.b":                     "a",
		"a.b[3]":                  "a.b",
		`routing.channels["a b"]`: "routing.channels",
		`x["a.b"].c`:              `x["a.b"]`,
	} {
		if got := parentPath(in); got != want {
			t.Errorf("parentPath(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestStrTag(t *testing.T) {
	g, err := decodeGeneric(t, "shared: !!str null\nnil_ptr: !!str ~\nstrings: [!!str, !!str 0x1F, !!int 3]\n")
	if err != nil {
		t.Fatal(err)
	}
	if g.Shared != "null" || g.NilPtr == nil || *g.NilPtr != "~" || !reflect.DeepEqual(g.Strings, []string{"", "0x1F", "3"}) {
		t.Errorf("decoded %q %v %q", g.Shared, g.NilPtr, g.Strings)
	}
}
