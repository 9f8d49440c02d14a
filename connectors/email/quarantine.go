package email

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"time"

	"github.com/inroute/inroute/bus"
	"github.com/inroute/inroute/config"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
)

// BucketQuarantine is the object store bucket that keeps mail the
// connector could not turn into a message, raw, with the reason, until an
// admin re-runs or drops it. An object store because a mail may be larger
// than one bus message.
const BucketQuarantine = "EMAIL_QUARANTINE"

// ErrNotQuarantined means no quarantined mail has that name.
var ErrNotQuarantined = errors.New("no such quarantined mail")

// Quarantined describes one quarantined mail.
type Quarantined struct {
	// Name identifies it: mailbox, UIDVALIDITY and UID.
	Name        string    `json:"name"`
	Mailbox     string    `json:"mailbox"`
	Address     string    `json:"address"`
	UIDValidity uint32    `json:"uid_validity"`
	UID         uint32    `json:"uid"`
	Error       string    `json:"error"`
	At          time.Time `json:"at"`
	Size        int64     `json:"size"`
}

// Quarantine keeps unusable mail.
type Quarantine struct {
	obs jetstream.ObjectStore
}

// OpenQuarantine opens (creating) the quarantine bucket.
func OpenQuarantine(ctx context.Context, b *bus.Bus) (*Quarantine, error) {
	obs, err := b.JS.CreateOrUpdateObjectStore(ctx, jetstream.ObjectStoreConfig{
		Bucket: BucketQuarantine, Description: "e-mail connector: mail that could not be read, kept raw with the reason",
	})
	if err != nil {
		return nil, fmt.Errorf("object store %s: %w", BucketQuarantine, err)
	}
	return &Quarantine{obs: obs}, nil
}

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9_@-]+`)

// quarantineName is readable (the mailbox's name with what is not ASCII
// replaced) and unique (a hash of the whole name): "客服" and "售后"
// must not share a name and overwrite each other's mail.
func quarantineName(mailbox string, validity, uid uint32) string {
	sum := sha256.Sum256([]byte(mailbox))
	return fmt.Sprintf("%s-%x.%d.%d", unsafeName.ReplaceAllString(mailbox, "_"), sum[:4], validity, uid)
}

// Put keeps raw under the mail's name. The name is the mail's place in
// its mailbox, so a second Put is the same mail again (read again after a
// stop) and replaces the first.
func (q *Quarantine) Put(ctx context.Context, item Quarantined, raw []byte) error {
	item.Name = quarantineName(item.Mailbox, item.UIDValidity, item.UID)
	_, err := q.obs.Put(ctx, jetstream.ObjectMeta{
		Name: item.Name, Description: item.Error,
		Metadata: map[string]string{
			"mailbox": item.Mailbox, "address": item.Address, "uid_validity": fmt.Sprint(item.UIDValidity),
			"uid": fmt.Sprint(item.UID), "error": item.Error, "at": item.At.UTC().Format(time.RFC3339Nano),
		},
	}, bytes.NewReader(raw))
	if err != nil {
		return fmt.Errorf("quarantine %s: %w", item.Name, err)
	}
	return nil
}

func fromInfo(info *jetstream.ObjectInfo) Quarantined {
	md := info.Metadata
	v, _ := strconv.ParseUint(md["uid_validity"], 10, 32)
	u, _ := strconv.ParseUint(md["uid"], 10, 32)
	at, _ := time.Parse(time.RFC3339Nano, md["at"])
	return Quarantined{Name: info.Name, Mailbox: md["mailbox"], Address: md["address"], UIDValidity: uint32(v), UID: uint32(u),
		Error: md["error"], At: at, Size: int64(info.Size)}
}

// List returns every quarantined mail, oldest first.
func (q *Quarantine) List(ctx context.Context) ([]Quarantined, error) {
	infos, err := q.obs.List(ctx)
	if errors.Is(err, jetstream.ErrNoObjectsFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list quarantine: %w", err)
	}
	out := make([]Quarantined, 0, len(infos))
	for _, info := range infos {
		out = append(out, fromInfo(info))
	}
	slices.SortFunc(out, func(a, b Quarantined) int { return a.At.Compare(b.At) })
	return out, nil
}

// Get returns one quarantined mail and its bytes.
func (q *Quarantine) Get(ctx context.Context, name string) (Quarantined, []byte, error) {
	info, err := q.obs.GetInfo(ctx, name)
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return Quarantined{}, nil, fmt.Errorf("%s: %w", name, ErrNotQuarantined)
	}
	if err != nil {
		return Quarantined{}, nil, fmt.Errorf("quarantine %s: %w", name, err)
	}
	raw, err := q.obs.GetBytes(ctx, name)
	if err != nil {
		return Quarantined{}, nil, fmt.Errorf("quarantine %s: %w", name, err)
	}
	return fromInfo(info), raw, nil
}

// Drop deletes a quarantined mail.
func (q *Quarantine) Drop(ctx context.Context, name string) error {
	// Delete of a missing (or already deleted) object is no error to the
	// object store; to an admin who typed a name it is.
	_, err := q.obs.GetInfo(ctx, name)
	if err == nil {
		err = q.obs.Delete(ctx, name)
	}
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return fmt.Errorf("%s: %w", name, ErrNotQuarantined)
	}
	if err != nil {
		return fmt.Errorf("drop %s: %w", name, err)
	}
	return nil
}

// Retry reads a quarantined mail again (after a fix, or with a newer
// inroute) and, when it now becomes a message, publishes it and takes it
// out of the quarantine. It returns the message's id.
func (c *Connector) Retry(ctx context.Context, q *Quarantine, name string) (string, error) {
	item, raw, err := q.Get(ctx, name)
	if err != nil {
		return "", err
	}
	mb := config.Mailbox{Name: item.Mailbox, Address: item.Address}
	for _, m := range c.opt.Mailboxes {
		if m.Name == item.Mailbox {
			mb = m
		}
	}
	m, bounce, err := c.build(mb, source{uidValidity: item.UIDValidity, uid: item.UID, raw: raw})
	if err != nil {
		return "", fmt.Errorf("%s still cannot be read: %w", name, err)
	}
	id, _, err := c.pub.Publish(ctx, m)
	if err != nil {
		return "", fmt.Errorf("publish %s: %w", name, err)
	}
	if bounce != nil {
		c.reportBounce(ctx, *bounce, c.log)
	}
	if err := q.Drop(ctx, name); err != nil {
		// Published: a second retry publishes a duplicate the bus drops.
		c.log.Warn("retried mail left in quarantine", zap.String("name", name), zap.Error(err))
	}
	return id, nil
}
