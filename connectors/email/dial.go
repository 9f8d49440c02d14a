package email

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/inroute/inroute/config"
)

// dialTimeout bounds connecting and the TLS handshake.
const dialTimeout = 30 * time.Second

// dialIMAP connects to and logs in to the server of cfg. The caller
// closes the client (Logout then Close, or Close alone on error paths).
func dialIMAP(ctx context.Context, cfg config.IMAP, opt *imapclient.Options) (*imapclient.Client, error) {
	if opt == nil {
		opt = &imapclient.Options{}
	}
	host, _, _ := net.SplitHostPort(cfg.Addr)
	opt.TLSConfig = &tls.Config{ServerName: host, InsecureSkipVerify: cfg.InsecureSkipVerify, MinVersion: tls.VersionTLS12} //nolint:gosec // opt-in for test servers
	d := &net.Dialer{Timeout: dialTimeout}
	conn, err := d.DialContext(ctx, "tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("imap dial %s: %w", cfg.Addr, err)
	}
	// Until login is done, the context's end closes the connection so a
	// hanging server cannot hold a stop.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	var c *imapclient.Client
	switch cfg.TLS {
	case config.TLSImplicit:
		tc := tls.Client(conn, opt.TLSConfig)
		if err := tc.HandshakeContext(ctx); err != nil {
			conn.Close()
			return nil, fmt.Errorf("imap tls %s: %w", cfg.Addr, err)
		}
		c = imapclient.New(tc, opt)
	case config.TLSStart:
		c, err = imapclient.NewStartTLS(conn, opt)
		if err != nil {
			conn.Close()
			return nil, fmt.Errorf("imap starttls %s: %w", cfg.Addr, err)
		}
	default:
		c = imapclient.New(conn, opt)
	}
	if err := c.Login(cfg.User, cfg.Password).Wait(); err != nil {
		c.Close()
		return nil, fmt.Errorf("imap login %s as %s: %w", cfg.Addr, cfg.User, err)
	}
	return c, nil
}
