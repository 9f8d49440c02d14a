package email

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	netmail "net/mail"
	"strings"
	"sync"
	"time"

	"github.com/inroute/inroute/bus"
	"github.com/inroute/inroute/config"
	"github.com/inroute/inroute/connectors"
	"go.uber.org/zap"
)

// Options configures the connector.
type Options struct {
	// Mailboxes are the active mailboxes (config.EmailConnector.Active).
	Mailboxes []config.Mailbox
	// MaxSize is the largest mail fetched whole; a larger one keeps its
	// headers and a note.
	MaxSize int64
	// MaxAttachmentSize is the largest attachment kept.
	MaxAttachmentSize int64
	// Blobs stores attachment bytes; nil lists attachments by name only.
	Blobs BlobPutter
	// Send runs the SMTP side (replies on outbound.email); false reads
	// mail only.
	Send bool
	// SendOptions configures the SMTP side (Mailboxes is filled in).
	SendOptions OutboundOptions
	// OurDomains are the domains our replies' Message-IDs may carry (the
	// mailboxes' own, on or off); with the outbox's fallback
	// inroute.invalid they tell our own mail coming back from a customer's
	// that happens to have a ULID Message-ID.
	OurDomains []string
	Now        func() time.Time
	// Backoff is the first and the longest wait before reconnecting
	// (default 1s and 5m).
	BackoffMin, BackoffMax time.Duration
}

// BlobPutter stores bytes and returns their reference (blob.Dir does).
type BlobPutter interface {
	Put(r io.Reader) (ref string, size int64, err error)
}

// Connector is the e-mail channel: one reader per mailbox, one sender.
type Connector struct {
	pub *connectors.Inbound
	b   *bus.Bus
	opt Options
	log *zap.Logger
	// ours holds our own addresses: mail from them is a loop.
	ours map[string]bool
	// domains holds the domains of our replies' Message-IDs.
	domains map[string]bool
	// crash, in tests, stops a session right after a step ("publish",
	// "checkpoint") for a UID, the way a crash there would.
	crash func(step string, uid uint32) bool
}

var _ connectors.Connector = (*Connector)(nil)

// New makes the connector; Run starts it.
func New(pub *connectors.Inbound, b *bus.Bus, opt Options, log *zap.Logger) *Connector {
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.MaxSize <= 0 {
		opt.MaxSize = 25 << 20
	}
	if opt.MaxAttachmentSize <= 0 {
		opt.MaxAttachmentSize = 10 << 20
	}
	if opt.BackoffMin <= 0 {
		opt.BackoffMin = time.Second
	}
	if opt.BackoffMax <= 0 {
		opt.BackoffMax = 5 * time.Minute
	}
	ours := map[string]bool{}
	domains := map[string]bool{"inroute.invalid": true}
	for _, m := range opt.Mailboxes {
		ours[strings.ToLower(m.Address)] = true
		if a, err := netmail.ParseAddress(m.SMTP.From); err == nil {
			ours[strings.ToLower(a.Address)] = true
		}
		if _, d, ok := strings.Cut(m.Address, "@"); ok {
			domains[strings.ToLower(d)] = true
		}
	}
	for _, d := range append(opt.OurDomains, opt.SendOptions.MessageIDDomain) {
		if d != "" {
			domains[strings.ToLower(d)] = true
		}
	}
	return &Connector{pub: pub, b: b, opt: opt, log: log, ours: ours, domains: domains}
}

// Name implements connectors.Connector.
func (c *Connector) Name() string { return "email" }

// Register implements connectors.Connector: e-mail has no webhooks.
func (c *Connector) Register(*http.ServeMux) {}

// Run reads every mailbox and sends replies until ctx ends, then returns
// once every reader and sender has stopped. A mail in hand at the stop
// is left half done (its publish or checkpoint cancelled); that is safe
// because every step repeats harmlessly on the next start.
func (c *Connector) Run(ctx context.Context) error {
	cps, err := openCheckpoints(ctx, c.b)
	if err != nil {
		return err
	}
	q, err := OpenQuarantine(ctx, c.b)
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	errs := make(chan error, len(c.opt.Mailboxes)+1)
	for _, mb := range c.opt.Mailboxes {
		r := &reader{c: c, mb: mb, cps: cps, q: q, log: c.log.With(zap.String("mailbox", mb.Name))}
		wg.Go(func() { r.run(ctx) })
	}
	if c.opt.Send {
		so := c.opt.SendOptions
		so.Mailboxes = c.opt.Mailboxes
		out := NewOutbound(c.b, so, c.log.Named("smtp"))
		wg.Go(func() {
			if err := out.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
				errs <- fmt.Errorf("email outbound: %w", err)
			}
		})
	}
	wg.Wait()
	close(errs)
	return errors.Join(collect(errs)...)
}

func collect(ch <-chan error) []error {
	var out []error
	for err := range ch {
		out = append(out, err)
	}
	return out
}
