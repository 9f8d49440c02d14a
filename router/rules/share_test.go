package rules_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/inroute/inroute/bus/testbus"
	"github.com/inroute/inroute/router/rules"
)

// Two router processes, each with its own config file, on one bus: an edit
// of one file reaches both; a process started later with an old file joins
// the version in force.
func TestProcessesConverge(t *testing.T) {
	srv := testbus.Start(t)
	b := srv.Connect(t)
	process := func(name, v, queue string) (*rules.Live, string) {
		path := filepath.Join(t.TempDir(), "config.yaml")
		if err := os.WriteFile(path, []byte(version(v, queue)), 0o600); err != nil {
			t.Fatal(err)
		}
		l := liveFrom(t, path)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- l.Share(ctx, b.JS, name) }()
		t.Cleanup(func() { cancel(); <-done })
		return l, path
	}
	a, aPath := process("router-a", "v1", "refunds")
	waitFor(t, "a's version in the bucket", func() bool {
		kv, err := b.JS.KeyValue(context.Background(), rules.KVBucket)
		if err != nil {
			return false
		}
		_, err = kv.Get(context.Background(), "config")
		return err == nil
	})
	bl, _ := process("router-b", "v0-old", "billing")
	waitFor(t, "b to join v1", func() bool { return bl.Status().Version == "v1" })
	if got := refundQueue(bl); got != "refunds" {
		t.Fatalf("b routes refunds to %s", got)
	}
	if err := os.WriteFile(aPath, []byte(version("v2", "billing")), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := a.Reload(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "b to follow to v2", func() bool { return bl.Status().Version == "v2" })
	if got := refundQueue(bl); got != "billing" {
		t.Fatalf("after v2, b routes refunds to %s", got)
	}
	// An edit that keeps the version label still reaches b: versions are
	// told apart by content.
	if err := os.WriteFile(aPath, []byte(version("v2", "refunds")), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := a.Reload(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "b to follow the same-label edit", func() bool { return refundQueue(bl) == "refunds" })
}
