package bus_test

import (
	"context"
	"testing"
	"time"

	"github.com/inroute/inroute/bus"
	"github.com/inroute/inroute/bus/testbus"
)

// EnsureStreams on streams that already have the configuration changes
// nothing; with another configuration it updates them.
func TestEnsureStreamsLeavesMatchingStreamsAlone(t *testing.T) {
	b := testbus.Start(t).Connect(t)
	ctx := context.Background()
	o := testbus.DefaultStreams()
	if err := bus.EnsureStreams(ctx, b.JS, o); err != nil {
		t.Fatal(err)
	}
	for _, cfg := range bus.StreamConfigs(o) {
		st, err := b.JS.Stream(ctx, cfg.Name)
		if err != nil {
			t.Fatal(err)
		}
		if !bus.SameStream(st.CachedInfo().Config, cfg) {
			t.Errorf("stream %s as the server keeps it differs from what was asked: %+v", cfg.Name, st.CachedInfo().Config)
		}
	}
	o.EventsMaxAge = 3 * time.Hour
	if err := bus.EnsureStreams(ctx, b.JS, o); err != nil {
		t.Fatal(err)
	}
	st, err := b.JS.Stream(ctx, bus.StreamEvents)
	if err != nil {
		t.Fatal(err)
	}
	if got := st.CachedInfo().Config.MaxAge; got != 3*time.Hour {
		t.Errorf("EVENTS max age %s after a change, want 3h", got)
	}
}
