package api

import (
	"net/http/httptest"
	"testing"
)

func TestBearerToken(t *testing.T) {
	cases := []struct {
		header, want string
		ok           bool
	}{
		{"Bearer abc", "abc", true},
		{"bearer abc", "abc", true},
		{"BEARER abc", "abc", true},
		{"Bearer ", "", false},
		{"Basic abc", "", false},
		{"Bearerabc", "", false},
		{"", "", false},
	}
	for _, tc := range cases {
		r := httptest.NewRequest("GET", "/", nil)
		if tc.header != "" {
			r.Header.Set("Authorization", tc.header)
		}
		got, ok := BearerToken(r)
		if got != tc.want || ok != tc.ok {
			t.Errorf("%q: got %q %v, want %q %v", tc.header, got, ok, tc.want, tc.ok)
		}
	}
}

func TestTokens(t *testing.T) {
	tk := NewTokens(map[string]string{"ann": "t-ann", "bob": "t-bob"})
	if name, ok := tk.Lookup("t-bob"); !ok || name != "bob" {
		t.Fatalf("lookup t-bob: %q %v", name, ok)
	}
	for _, bad := range []string{"", "t-ann ", "t-an", "T-ANN"} {
		if _, ok := tk.Lookup(bad); ok {
			t.Errorf("accepted %q", bad)
		}
	}
}
