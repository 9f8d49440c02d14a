package system

import (
	"context"
	"errors"
	"fmt"

	"github.com/inroute/inroute/api"
	"github.com/inroute/inroute/blob"
	"github.com/inroute/inroute/bus"
	"github.com/inroute/inroute/config"
	"github.com/inroute/inroute/connectors"
	"github.com/inroute/inroute/connectors/email"
	"go.uber.org/zap"
)

// emailConnector builds the e-mail connector from config. Attachments go
// to the blob directory, which processes on several machines must share.
func emailConnector(cfg *config.Config, pub *connectors.Inbound, log *zap.Logger) (*email.Connector, error) {
	e := cfg.Conns.Email
	blobs, err := blob.Open(cfg.BlobDir(), cfg.Store.Attachments.MaxSize.Int64())
	if err != nil {
		return nil, err
	}
	return email.New(pub, pub.Bus, email.Options{
		Mailboxes: e.Active(), MaxSize: e.MaxSize.Int64(), MaxAttachmentSize: e.MaxAttachmentSize.Int64(),
		Blobs: blobs, Send: true, SendOptions: email.OutboundOptions{Blobs: blobs, MessageIDDomain: e.MailDomain()},
		OurDomains: e.Domains(),
	}, log), nil
}

// mailQuarantine serves the e-mail quarantine to the admin API.
type mailQuarantine struct {
	q *email.Quarantine
	c *email.Connector
}

var _ api.Quarantine = mailQuarantine{}

func quarantineFor(ctx context.Context, cfg *config.Config, b *bus.Bus, log *zap.Logger) (api.Quarantine, error) {
	if !cfg.Conns.Email.On() {
		return nil, nil
	}
	q, err := email.OpenQuarantine(ctx, b)
	if err != nil {
		return nil, err
	}
	c, err := emailConnector(cfg, &connectors.Inbound{Bus: b}, log)
	if err != nil {
		return nil, err
	}
	return mailQuarantine{q: q, c: c}, nil
}

func notQuarantined(err error) error {
	if errors.Is(err, email.ErrNotQuarantined) {
		return fmt.Errorf("%w: %w", api.ErrNotQuarantined, err)
	}
	return err
}

func (m mailQuarantine) List(ctx context.Context) (any, error) { return m.q.List(ctx) }

func (m mailQuarantine) Raw(ctx context.Context, name string) ([]byte, error) {
	_, raw, err := m.q.Get(ctx, name)
	return raw, notQuarantined(err)
}

func (m mailQuarantine) Retry(ctx context.Context, name string) (string, error) {
	id, err := m.c.Retry(ctx, m.q, name)
	return id, notQuarantined(err)
}

func (m mailQuarantine) Drop(ctx context.Context, name string) error {
	return notQuarantined(m.q.Drop(ctx, name))
}
