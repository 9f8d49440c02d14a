package bus

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"go.uber.org/zap"
)

// EmbeddedOptions configures an in-process nats-server with JetStream.
type EmbeddedOptions struct {
	// Listen is host:port for outside clients; port -1 picks a free port.
	// Empty means no TCP listener: in-process clients only.
	Listen string
	// StoreDir is where JetStream keeps its files.
	StoreDir string
	// SyncAlways fsyncs every write; otherwise SyncInterval applies.
	SyncAlways   bool
	SyncInterval time.Duration
	// MaxStore caps file storage in bytes; 0 means no cap.
	MaxStore int64
	// Logger receives the server's log; nil keeps the server quiet.
	Logger *zap.Logger
}

// StartEmbedded starts a nats-server with JetStream and waits until it
// accepts connections.
func StartEmbedded(o EmbeddedOptions) (*server.Server, error) {
	if o.StoreDir == "" {
		return nil, errors.New("embedded nats: store dir is required")
	}
	opts := &server.Options{
		ServerName:   "inroute",
		JetStream:    true,
		StoreDir:     o.StoreDir,
		SyncAlways:   o.SyncAlways,
		SyncInterval: o.SyncInterval,
		NoSigs:       true,
		NoLog:        o.Logger == nil,
	}
	if o.MaxStore > 0 {
		opts.JetStreamMaxStore = o.MaxStore
	}
	if o.Listen == "" {
		opts.DontListen = true
	} else {
		host, port, err := net.SplitHostPort(o.Listen)
		if err != nil {
			return nil, fmt.Errorf("embedded nats: listen %q: %w", o.Listen, err)
		}
		p, err := strconv.Atoi(port)
		if err != nil {
			return nil, fmt.Errorf("embedded nats: listen %q: bad port", o.Listen)
		}
		if p == 0 {
			p = server.RANDOM_PORT
		}
		opts.Host, opts.Port = host, p
	}
	s, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("embedded nats: %w", err)
	}
	if o.Logger != nil {
		s.SetLoggerV2(&natsLogger{l: o.Logger.Named("nats").Sugar()}, false, false, false)
	}
	s.Start()
	if !s.ReadyForConnections(30 * time.Second) {
		s.Shutdown()
		return nil, errors.New("embedded nats: not ready for connections after 30s")
	}
	return s, nil
}

// natsLogger adapts zap to nats-server's Logger.
type natsLogger struct{ l *zap.SugaredLogger }

func (n *natsLogger) Noticef(format string, v ...any) { n.l.Infof(format, v...) }
func (n *natsLogger) Warnf(format string, v ...any)   { n.l.Warnf(format, v...) }
func (n *natsLogger) Fatalf(format string, v ...any)  { n.l.Errorf(format, v...) }
func (n *natsLogger) Errorf(format string, v ...any)  { n.l.Errorf(format, v...) }
func (n *natsLogger) Debugf(format string, v ...any)  { n.l.Debugf(format, v...) }
func (n *natsLogger) Tracef(format string, v ...any)  { n.l.Debugf(format, v...) }

var _ server.Logger = (*natsLogger)(nil)
