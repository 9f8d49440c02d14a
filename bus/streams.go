package bus

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// StreamOptions sets retention for inroute's streams.
type StreamOptions struct {
	// DuplicateWindow is how long Nats-Msg-Id values are remembered.
	DuplicateWindow time.Duration
	InboundMaxAge   time.Duration
	EventsMaxAge    time.Duration
	DeadMaxAge      time.Duration
	Replicas        int
}

// StreamConfigs returns the configuration of every inroute stream.
func StreamConfigs(o StreamOptions) []jetstream.StreamConfig {
	replicas := max(o.Replicas, 1)
	base := func(name, subjects, desc string) jetstream.StreamConfig {
		return jetstream.StreamConfig{
			Name:        name,
			Description: desc,
			Subjects:    []string{subjects},
			Storage:     jetstream.FileStorage,
			Replicas:    replicas,
			Duplicates:  o.DuplicateWindow,
			AllowDirect: true,
		}
	}
	inbound := base(StreamInbound, SubjectsInbound, "normalized customer messages from connectors")
	inbound.Retention = jetstream.LimitsPolicy
	inbound.MaxAge = o.InboundMaxAge

	queues := base(StreamQueues, SubjectsQueues, "routed work waiting for agents")
	queues.Retention = jetstream.WorkQueuePolicy
	// One item per conversation subject: a newer item replaces the older.
	queues.MaxMsgsPerSubject = 1
	queues.Discard = jetstream.DiscardOld

	outbound := base(StreamOutbound, SubjectsOutbound, "replies waiting for connectors to send")
	outbound.Retention = jetstream.WorkQueuePolicy

	events := base(StreamEvents, SubjectsEvents, "conversation, SLA and operations events")
	events.Retention = jetstream.LimitsPolicy
	events.MaxAge = o.EventsMaxAge

	dead := base(StreamDeadLetter, SubjectsDeadLetter, "messages a stage could not process, with the reason")
	dead.Retention = jetstream.LimitsPolicy
	dead.MaxAge = o.DeadMaxAge

	return []jetstream.StreamConfig{inbound, queues, outbound, events, dead}
}

// EnsureStreams creates every stream, or updates it to o. It is safe to call
// from many processes at once and on every start.
//
// A stream that already has the configuration is left alone: an update
// races, inside nats-server 2.15, with consumers being created on the
// stream by the other processes starting at the same time (the race
// detector shows it), and there is nothing to update.
func EnsureStreams(ctx context.Context, js jetstream.JetStream, o StreamOptions) error {
	for _, cfg := range StreamConfigs(o) {
		if st, err := js.Stream(ctx, cfg.Name); err == nil && SameStream(st.CachedInfo().Config, cfg) {
			continue
		}
		if _, err := js.CreateOrUpdateStream(ctx, cfg); err != nil {
			return fmt.Errorf("ensure stream %s: %w", cfg.Name, err)
		}
	}
	return nil
}

// SameStream compares what StreamConfigs sets; the server fills in the
// rest with its defaults.
func SameStream(have, want jetstream.StreamConfig) bool {
	return have.Description == want.Description && slices.Equal(have.Subjects, want.Subjects) &&
		have.Storage == want.Storage && have.Replicas == want.Replicas && have.Duplicates == want.Duplicates &&
		have.AllowDirect == want.AllowDirect && have.Retention == want.Retention && have.MaxAge == want.MaxAge &&
		unlimited(have.MaxMsgsPerSubject) == unlimited(want.MaxMsgsPerSubject) && have.Discard == want.Discard
}

// unlimited reads 0 (not set) as the server's -1 (no limit).
func unlimited(n int64) int64 {
	if n <= 0 {
		return -1
	}
	return n
}

// StreamsPresent reports the first stream that is missing.
func StreamsPresent(ctx context.Context, js jetstream.JetStream) error {
	for _, name := range []string{StreamInbound, StreamQueues, StreamOutbound, StreamEvents, StreamDeadLetter} {
		if _, err := js.Stream(ctx, name); err != nil {
			if errors.Is(err, jetstream.ErrStreamNotFound) {
				return fmt.Errorf("stream %s is missing", name)
			}
			return fmt.Errorf("stream %s: %w", name, err)
		}
	}
	return nil
}
