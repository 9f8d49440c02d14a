package email

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/inroute/inroute/bus"
	"github.com/nats-io/nats.go/jetstream"
)

// BucketCheckpoints is the KV bucket that holds, per mailbox, how far it
// has been read. It lives on the bus, not in the store, so the connector
// runs as its own process with nothing but NATS.
const BucketCheckpoints = "EMAIL_CHECKPOINTS"

// checkpoint is one mailbox's progress: every mail with a UID up to
// LastUID under UIDValidity is durable on the bus.
type checkpoint struct {
	UIDValidity uint32 `json:"uid_validity"`
	LastUID     uint32 `json:"last_uid"`
	// LastAt is the internal date of the last mail read: after a
	// UIDVALIDITY change, mail from a day before it is read again (and
	// dropped as duplicates by Message-ID), not the whole folder.
	LastAt time.Time `json:"last_at,omitzero"`
}

type checkpoints struct {
	kv jetstream.KeyValue
}

func openCheckpoints(ctx context.Context, b *bus.Bus) (*checkpoints, error) {
	kv, err := b.JS.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: BucketCheckpoints, Description: "e-mail connector: last UID read per mailbox", History: 5,
	})
	if err != nil {
		return nil, fmt.Errorf("bucket %s: %w", BucketCheckpoints, err)
	}
	return &checkpoints{kv: kv}, nil
}

// KV keys allow few characters; a mailbox name may hold any.
func checkpointKey(mailbox string) string { return "mb." + hex.EncodeToString([]byte(mailbox)) }

func (c *checkpoints) get(ctx context.Context, mailbox string) (checkpoint, error) {
	e, err := c.kv.Get(ctx, checkpointKey(mailbox))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return checkpoint{}, nil
	}
	if err != nil {
		return checkpoint{}, fmt.Errorf("read checkpoint of %s: %w", mailbox, err)
	}
	var cp checkpoint
	if err := json.Unmarshal(e.Value(), &cp); err != nil {
		return checkpoint{}, fmt.Errorf("checkpoint of %s is damaged: %w", mailbox, err)
	}
	return cp, nil
}

func (c *checkpoints) put(ctx context.Context, mailbox string, cp checkpoint) error {
	data, _ := json.Marshal(cp)
	if _, err := c.kv.Put(ctx, checkpointKey(mailbox), data); err != nil {
		return fmt.Errorf("save checkpoint of %s at uid %d: %w", mailbox, cp.LastUID, err)
	}
	return nil
}
