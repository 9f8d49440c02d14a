// Package testbus starts real, embedded JetStream servers for tests: random
// port, store in t.TempDir(), quiet unless INROUTE_TEST_NATS_LOG is set.
package testbus

import (
	"context"
	"fmt"
	"net"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/inroute/inroute/bus"
	"github.com/nats-io/nats-server/v2/server"
	"go.uber.org/zap"
)

// Server is an embedded JetStream server owned by one test.
type Server struct {
	*server.Server
	// URL is the client URL; it stays the same across Restart.
	URL      string
	StoreDir string
	addr     string
	sync     bool
	t        testing.TB
}

// Options changes how Start runs the server.
type Options struct {
	// SyncAlways fsyncs every write, as inroute's embedded default does.
	// Tests leave it off for speed; benchmarks turn it on.
	SyncAlways bool
}

// Start runs a JetStream server on a random loopback port and stops it when
// the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	return StartWith(t, Options{})
}

// StartWith is Start with options.
func StartWith(t testing.TB, o Options) *Server {
	t.Helper()
	s := &Server{StoreDir: t.TempDir(), addr: "127.0.0.1:-1", sync: o.SyncAlways, t: t}
	s.start()
	s.URL = s.ClientURL()
	// Restart must come back on the same port, so clients reconnect.
	s.addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(s.Addr().(*net.TCPAddr).Port))
	t.Cleanup(s.Shutdown)
	return s
}

func (s *Server) start() {
	s.t.Helper()
	var log *zap.Logger
	if os.Getenv("INROUTE_TEST_NATS_LOG") != "" {
		log, _ = zap.NewDevelopment()
	}
	srv, err := bus.StartEmbedded(bus.EmbeddedOptions{Listen: s.addr, StoreDir: s.StoreDir, SyncAlways: s.sync, SyncInterval: time.Minute, Logger: log})
	if err != nil {
		s.t.Fatalf("testbus: %v", err)
	}
	s.Server = srv
}

// Shutdown stops the server and waits for it to finish.
func (s *Server) Shutdown() {
	if s.Server == nil {
		return
	}
	s.Server.Shutdown()
	s.WaitForShutdown()
}

// Restart stops the server and starts it again on the same port with the
// same store, as an operator restarting NATS would.
func (s *Server) Restart() {
	s.t.Helper()
	s.Shutdown()
	s.start()
}

// Connect returns a bus client to s with its streams created, closed when
// the test ends.
func (s *Server) Connect(t testing.TB) *bus.Bus {
	t.Helper()
	b := Connect(t, s.URL)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := bus.EnsureStreams(ctx, b.JS, DefaultStreams()); err != nil {
		t.Fatalf("testbus: %v", err)
	}
	return b
}

// Connect dials url with test-friendly reconnect settings.
func Connect(t testing.TB, url string) *bus.Bus {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b, err := bus.Connect(ctx, bus.Options{URL: url, Name: t.Name(), ReconnectWait: 50 * time.Millisecond, PublishTimeout: 2 * time.Second})
	if err != nil {
		t.Fatalf("testbus: %v", err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

// DefaultStreams is the retention tests use.
func DefaultStreams() bus.StreamOptions {
	return bus.StreamOptions{DuplicateWindow: time.Hour, InboundMaxAge: time.Hour, EventsMaxAge: time.Hour, DeadMaxAge: time.Hour, Replicas: 1}
}

// CheckFor calls fn every `every` until it returns nil, and fails the test
// with fn's last error if that has not happened within `wait`.
func CheckFor(t testing.TB, wait, every time.Duration, fn func() error) {
	t.Helper()
	deadline := time.Now().Add(wait)
	var err error
	for {
		if err = fn(); err == nil {
			return
		}
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(every)
	}
	t.Fatalf("condition not met after %v: %v", wait, fmt.Sprint(err))
}
