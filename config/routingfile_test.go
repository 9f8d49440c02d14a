package config_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/inroute/inroute/config"
)

func TestRoutingFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	main := write("config.yaml", "data_dir: ./d\nrouting_file: rules/routing.yaml\n")
	if err := os.MkdirAll(filepath.Join(dir, "rules"), 0o750); err != nil {
		t.Fatal(err)
	}
	rules := write("rules/routing.yaml", "version: r1\ntopics:\n  refunds: {match: [{any: [refund]}]}\n  general: {}\nprecedence: [refunds, general]\n")

	cfg, err := config.Load(main)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Routing.Version != "r1" || len(cfg.Routing.Topics) != 2 || cfg.Routing.DefaultQueue != "general" {
		t.Fatalf("routing from its file: %+v", cfg.Routing)
	}
	if files := cfg.Files(); len(files) != 2 || files[0] != main || files[1] != rules {
		t.Fatalf("files %v", files)
	}
	if e := cfg.At("routing.topics.refunds.match[0].any[0]", "x"); e.File != rules || e.Line != 3 {
		t.Fatalf("At in the routing file: %v", e)
	}
	if e := cfg.At("store.url", "x"); e.File != main {
		t.Fatalf("At in config.yaml: %v", e)
	}

	cases := []struct {
		name, main, rules, want string
	}{
		{"problems are positioned in the routing file",
			"routing_file: r.yaml\n", "topics:\n  general: {}\nprecedence: [general, nope]\n",
			"r.yaml:3:23: routing.precedence[1]: unknown topic \"nope\""},
		{"unknown keys too",
			"routing_file: r.yaml\n", "topicz: {}\n",
			"r.yaml:1:1: unknown field \"topicz\" in routing"},
		{"not both",
			"routing_file: r.yaml\nrouting: {default_queue: general}\n", "topics: {general: {}}\nprecedence: [general]\n",
			"config.yaml:1:15: routing_file: set either routing: or routing_file:, not both"},
		{"missing file",
			"routing_file: missing.yaml\n", "",
			"config.yaml:1:15: routing_file: cannot read"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := t.TempDir()
			if tc.rules != "" {
				_ = os.WriteFile(filepath.Join(d, "r.yaml"), []byte(tc.rules), 0o600)
			}
			p := filepath.Join(d, "config.yaml")
			_ = os.WriteFile(p, []byte(tc.main), 0o600)
			_, err := config.Load(p)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
		})
	}
}
