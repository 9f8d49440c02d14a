package rules_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/inroute/inroute/bus/testbus"
	"github.com/inroute/inroute/router/rules"
)

// Rules in their own file: an edit of that file reloads, and another
// process receives the file's content through the bucket.
func TestRoutingFileReloadAndShare(t *testing.T) {
	dir := t.TempDir()
	main := filepath.Join(dir, "config.yaml")
	rulesFile := filepath.Join(dir, "rules", "routing.yaml")
	if err := os.MkdirAll(filepath.Dir(rulesFile), 0o750); err != nil {
		t.Fatal(err)
	}
	routing := func(v, q string) string {
		// The same rules as version(), without the "routing:" level.
		body := strings.TrimPrefix(strings.TrimSpace(version(v, q)), "routing:\n")
		return strings.ReplaceAll(body, "\n  ", "\n")[2:] + "\n"
	}
	if err := os.WriteFile(main, []byte("routing_file: rules/routing.yaml\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(rulesFile, []byte(routing("f1", "refunds")), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := testbus.Start(t)
	b := srv.Connect(t)
	a := liveFrom(t, main)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = a.Watch(ctx) }()
	go func() { _ = a.Share(ctx, b.JS, "a") }()

	waitFor(t, "a's version in the bucket", func() bool {
		kv, err := b.JS.KeyValue(context.Background(), rules.KVBucket)
		if err != nil {
			return false
		}
		_, err = kv.Get(context.Background(), "config")
		return err == nil
	})
	// Another process, with a config that names no routing file at all.
	other := filepath.Join(t.TempDir(), "config.yaml")
	_ = os.WriteFile(other, []byte(version("old", "billing")), 0o600)
	bl := liveFrom(t, other)
	go func() { _ = bl.Share(ctx, b.JS, "b") }()
	waitFor(t, "b to join f1", func() bool { return bl.Status().Version == "f1" })

	if err := os.WriteFile(rulesFile, []byte(routing("f2", "billing")), 0o600); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a to reload f2", func() bool { return a.Status().Version == "f2" })
	waitFor(t, "b to follow to f2", func() bool { return bl.Status().Version == "f2" })
	if got := refundQueue(bl); got != "billing" {
		t.Fatalf("b routes refunds to %s", got)
	}
}
