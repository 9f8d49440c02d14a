// Package system assembles inroute's parts into a running process: the bus
// (embedded or outside), the routing stage, the connectors and the HTTP API,
// with an orderly start and a graceful stop.
package system

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/inroute/inroute/api"
	"github.com/inroute/inroute/blob"
	"github.com/inroute/inroute/bus"
	"github.com/inroute/inroute/config"
	"github.com/inroute/inroute/connectors"
	"github.com/inroute/inroute/connectors/app"
	"github.com/inroute/inroute/console"
	"github.com/inroute/inroute/desk"
	"github.com/inroute/inroute/message"
	"github.com/inroute/inroute/outbox"
	"github.com/inroute/inroute/router"
	"github.com/inroute/inroute/router/rules"
	"github.com/inroute/inroute/store"
	"github.com/inroute/inroute/store/postgres"
	"github.com/inroute/inroute/store/sqlite"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"
)

// Role is a part of inroute a process runs.
type Role uint8

// The roles. Serve is all of them.
const (
	RoleRouter Role = 1 << iota
	RoleAPI
	RoleConnectors
	RoleAll = RoleRouter | RoleAPI | RoleConnectors
)

// ErrNeedsBus means a part was started alone without a shared bus to join.
var ErrNeedsBus = errors.New("nats.url (or INROUTE_NATS_URL) is required: a part started alone joins a shared NATS server")

// Options says what to run.
type Options struct {
	Config *config.Config
	Roles  Role
	// Connectors limits RoleConnectors to these names; empty means every
	// enabled connector.
	Connectors []string
	// HTTP overrides config http.listen; "-" disables the listener.
	HTTP string
	Log  *zap.Logger
	// Name identifies the process on the bus.
	Name string
	// ConfigPath is the file the config came from; the routing rules are
	// reloaded from it when it changes. Empty: no reloading.
	ConfigPath string
}

// System is a running inroute process.
type System struct {
	cfg      *config.Config
	log      *zap.Logger
	embedded *server.Server
	bus      *bus.Bus
	store    store.Store
	rules    *rules.Live
	sla      slaClock
	// onShutdown runs when the HTTP server starts shutting down (ending
	// long-polls).
	onShutdown []func()
	httpSrv    *http.Server
	ln         net.Listener

	cancel context.CancelFunc
	wg     sync.WaitGroup
	errs   chan error
	once   sync.Once
}

// Start brings the process up and returns once it serves. On error,
// everything already started is stopped again.
func Start(ctx context.Context, o Options) (_ *System, err error) {
	cfg := o.Config
	log := o.Log
	if log == nil {
		log = zap.NewNop()
	}
	s := &System{cfg: cfg, log: log, errs: make(chan error, 8)}
	defer func() {
		if err != nil {
			s.stopBus()
		}
	}()
	if err := s.startBus(ctx, o); err != nil {
		return nil, err
	}
	if o.Roles&(RoleRouter|RoleAPI) != 0 {
		st, err := openStore(ctx, cfg, s.deadline)
		if err != nil {
			return nil, err
		}
		s.store = st
	}

	runCtx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	// fail stops what was started before the bus closes (deferred above).
	fail := func(err error) (*System, error) {
		cancel()
		s.wg.Wait()
		return nil, err
	}
	mux := http.NewServeMux()
	api.RegisterHealth(mux, s.bus.Ready)
	// Each process has its own registry: what it runs registers here.
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorLog: zap.NewStdLog(log.Named("metrics"))}))

	if o.Roles&(RoleRouter|RoleAPI) != 0 {
		// Rules that do not compile or fail their own tests stop the start,
		// with the file, line and column of each problem.
		e, err := rules.Check(cfg)
		if err != nil {
			return fail(err)
		}
		s.rules = rules.NewLive(e, o.ConfigPath, log.Named("rules"))
		s.rules.SetFiles(cfg.Files())
		reg.MustRegister(s.rules)
		if o.ConfigPath != "" {
			s.run("rules watcher", func() error { return s.rules.Watch(runCtx) })
		}
		s.run("rules sharing", func() error { return s.rules.Share(runCtx, s.bus.JS, o.Name) })
	}
	var ob *outbox.Outbox
	if s.store != nil {
		phones := map[string]string{}
		for _, a := range cfg.Agents {
			phones[a.Name] = a.Phone
		}
		ob = &outbox.Outbox{Store: s.store, Pub: outbox.BusPublisher{Bus: s.bus}, AgentPhone: func(name string) string { return phones[name] }}
		// Replies' Message-IDs carry our own domain, so bounces and answers
		// that quote them come back to us recognisably.
		ob.MailDomain = cfg.Conns.Email.MailDomain()
	}
	if o.Roles&RoleRouter != 0 {
		stage := router.New(s.bus, s.store, s.rules, log.Named("router"), router.Options{AutoReply: &autoReplier{out: ob, rules: s.rules}})
		reg.MustRegister(stage.Collectors()...)
		s.run("router", func() error { return stage.Run(runCtx) })
	}
	if s.store != nil {
		blobs, err := blob.Open(cfg.BlobDir(), cfg.Store.Attachments.MaxSize.Int64())
		if err != nil {
			return fail(err)
		}
		metrics := desk.NewMetrics()
		d := desk.New(desk.Options{
			Store: s.store, Mirror: &desk.BusMirror{Bus: s.bus, Store: s.store, Now: time.Now}, Outbox: ob,
			Blobs: blobs, MaxAttachment: cfg.Store.Attachments.MaxSize.Int64(),
			Agents: cfg.Agents, Desk: cfg.Desk, Routing: func() *config.Routing { return s.rules.Engine().Routing() },
			Log: log.Named("desk"), Metrics: metrics, Notify: desk.BusNotify(s.bus),
		})
		agents := &api.Agents{Desk: d, Tokens: agentTokens(cfg), Seen: s.store.SeeAgent, MaxWait: cfg.Desk.MaxWait.D(),
			MaxBody: 2*cfg.Store.Attachments.MaxSize.Int64() + 1<<20, Blobs: blobs, Log: log.Named("api")}
		quar, err := quarantineFor(ctx, cfg, s.bus, log.Named("email"))
		if err != nil {
			return fail(err)
		}
		(&api.Admin{Rules: s.rules, Agents: agents, Log: log.Named("api"), Quarantine: quar}).Register(mux)
		if o.Roles&RoleAPI != 0 {
			s.onShutdown = append(s.onShutdown, d.Stop)
			agents.Register(mux)
			mux.Handle("GET /console/", console.Handler())
			mux.Handle("GET /{$}", http.RedirectHandler("/console/", http.StatusFound))
			reg.MustRegister(metrics.Collectors()...)
			reg.MustRegister(d.NewQueueCollector())
			removeLegacyConsumers(ctx, s.bus, log)
			wake, err := s.bus.NC.Subscribe(bus.SubjectsQueues, func(*nats.Msg) { d.Wake() })
			if err != nil {
				return fail(fmt.Errorf("watch queue stream: %w", err))
			}
			s.run("desk wake", func() error { <-runCtx.Done(); return wake.Unsubscribe() })
			s.run("desk monitor", func() error { return d.Run(runCtx) })
			s.run("delivery reports", func() error { return d.RunDeliveries(runCtx, s.bus.JS) })
			if cfg.Desk.Webhook.URL != "" {
				wh := deskWebhook(s.bus, cfg.Desk.Webhook, log.Named("desk-webhook"))
				s.run("desk webhook", func() error { return wh.Run(runCtx) })
			}
		}
	}
	if o.Roles&RoleConnectors != 0 {
		conns, err := buildConnectors(cfg, o.Connectors, &connectors.Inbound{Bus: s.bus}, log)
		if err != nil {
			return fail(err)
		}
		for _, c := range conns {
			c.Register(mux)
			s.run("connector "+c.Name(), func() error { return c.Run(runCtx) })
		}
	}

	listen := cfg.HTTP.Listen
	if o.HTTP != "" {
		listen = o.HTTP
	}
	if listen != "-" {
		ln, err := net.Listen("tcp", listen)
		if err != nil {
			return fail(fmt.Errorf("http listen %s: %w", listen, err))
		}
		s.ln = ln
		s.httpSrv = &http.Server{
			Handler:           mux,
			ReadHeaderTimeout: 10 * time.Second,
			ReadTimeout:       30 * time.Second,
			// Long enough for the longest long-poll of POST /v1/agent/next.
			WriteTimeout: max(60*time.Second, cfg.Desk.MaxWait.D()+15*time.Second),
			IdleTimeout:  2 * time.Minute,
			ErrorLog:     zap.NewStdLog(log.Named("http")),
		}
		for _, f := range s.onShutdown {
			s.httpSrv.RegisterOnShutdown(f)
		}
		s.run("http", func() error {
			if err := s.httpSrv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
				return err
			}
			return nil
		})
		log.Info("http listening", zap.String("addr", ln.Addr().String()))
	}
	return s, nil
}

func (s *System) startBus(ctx context.Context, o Options) error {
	cfg := s.cfg
	bo := bus.Options{
		URL: cfg.NATS.URL, Name: o.Name, Logger: s.log.Named("bus"),
		ReconnectWait: cfg.NATS.ReconnectWait.D(), PublishTimeout: cfg.NATS.PublishTimeout.D(),
	}
	if cfg.NATS.URL == "" {
		if o.Roles != RoleAll {
			return ErrNeedsBus
		}
		storeDir := filepath.Join(cfg.DataDir, "nats")
		if err := os.MkdirAll(storeDir, 0o750); err != nil {
			return fmt.Errorf("data dir: %w", err)
		}
		eo := bus.EmbeddedOptions{Listen: cfg.NATS.Embedded.Listen, StoreDir: storeDir, MaxStore: cfg.NATS.Embedded.MaxStore.Int64(),
			// The server's startup notices are many and rarely useful; its
			// warnings and errors are.
			Logger: s.log.WithOptions(zap.IncreaseLevel(zap.WarnLevel))}
		if cfg.NATS.Embedded.Sync == "always" || cfg.NATS.Embedded.Sync == "" {
			eo.SyncAlways = true
		} else {
			d, err := time.ParseDuration(cfg.NATS.Embedded.Sync)
			if err != nil {
				return fmt.Errorf("nats.embedded.sync: %w", err)
			}
			eo.SyncInterval = d
		}
		srv, err := bus.StartEmbedded(eo)
		if err != nil {
			return err
		}
		s.embedded = srv
		bo.InProcess = srv
		s.log.Info("embedded nats started", zap.String("store_dir", storeDir), zap.Bool("fsync_always", eo.SyncAlways),
			zap.String("client_url", s.NATSURL()))
	}
	b, err := bus.Connect(ctx, bo)
	if err != nil {
		return err
	}
	s.bus = b
	so := bus.StreamOptions{
		DuplicateWindow: cfg.NATS.Streams.DuplicateWindow.D(), InboundMaxAge: cfg.NATS.Streams.InboundMaxAge.D(),
		EventsMaxAge: cfg.NATS.Streams.EventsMaxAge.D(), DeadMaxAge: cfg.NATS.Streams.DeadLetterMaxAge.D(),
		Replicas: cfg.NATS.Streams.Replicas,
	}
	if err := bus.EnsureStreams(ctx, b.JS, so); err != nil {
		return err
	}
	return nil
}

// run starts a part in a goroutine the system owns; a part that fails
// reports on Err.
func (s *System) run(name string, fn func() error) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := fn(); err != nil {
			s.log.Error("part stopped", zap.String("part", name), zap.Error(err))
			select {
			case s.errs <- fmt.Errorf("%s: %w", name, err):
			default:
			}
		}
	}()
}

// Err reports the first part that failed while running.
func (s *System) Err() <-chan error { return s.errs }

// HTTPAddr is the address the API listens on ("" when it does not).
func (s *System) HTTPAddr() string {
	if s.ln == nil {
		return ""
	}
	return s.ln.Addr().String()
}

// NATSURL is the embedded server's client URL for outside processes ("" when
// the bus is outside or the embedded server does not listen).
func (s *System) NATSURL() string {
	if s.embedded == nil || s.embedded.Addr() == nil {
		return ""
	}
	return s.embedded.ClientURL()
}

func agentTokens(cfg *config.Config) *api.Tokens {
	agents := map[string]string{}
	for _, a := range cfg.Agents {
		agents[a.Name] = a.Token
	}
	return api.NewTokens(agents)
}

// ReloadRules reloads the routing rules from the config file (SIGHUP).
func (s *System) ReloadRules() error {
	if s.rules == nil {
		return errors.New("this process does not route")
	}
	return s.rules.Reload()
}

// Rules is the routing rules in force (nil for a process that needs none).
func (s *System) Rules() *rules.Live { return s.rules }

// Store is the process's store (nil for a process that needs none).
func (s *System) Store() store.Store { return s.store }

// OpenStore opens the configured store: PostgreSQL when store.url is set,
// otherwise the embedded SQLite file under the data directory.
func OpenStore(ctx context.Context, cfg *config.Config) (store.Store, error) {
	return openStore(ctx, cfg, nil)
}

func openStore(ctx context.Context, cfg *config.Config, deadline func(store.SLAKind, string, message.Urgency, time.Time) *time.Time) (store.Store, error) {
	blobs, err := blob.Open(cfg.BlobDir(), cfg.Store.Attachments.MaxSize.Int64())
	if err != nil {
		return nil, err
	}
	o := store.Options{
		ChatWindow: cfg.Store.ChatWindow.D(), ReopenWindow: cfg.Store.ReopenWindow.D(),
		PhoneRegion: cfg.Store.PhoneRegion, Blobs: blobs, Deadline: deadline,
	}
	if cfg.Store.URL != "" {
		return postgres.Open(ctx, cfg.Store.URL, o)
	}
	return sqlite.Open(ctx, cfg.StorePath(), o)
}

// Bus is the process's bus connection.
func (s *System) Bus() *bus.Bus { return s.bus }

// Shutdown stops taking new work, finishes what is in flight (open HTTP
// requests, the router's current batch), then closes the bus.
func (s *System) Shutdown(ctx context.Context) error {
	var err error
	s.once.Do(func() {
		if s.httpSrv != nil {
			if e := s.httpSrv.Shutdown(ctx); e != nil {
				err = errors.Join(err, fmt.Errorf("http shutdown: %w", e))
			}
		}
		s.cancel()
		done := make(chan struct{})
		go func() { s.wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-ctx.Done():
			err = errors.Join(err, fmt.Errorf("parts still running at shutdown deadline: %w", ctx.Err()))
		}
		s.stopBus()
	})
	return err
}

func (s *System) stopBus() {
	if s.store != nil {
		if err := s.store.Close(); err != nil {
			s.log.Warn("store close", zap.Error(err))
		}
	}
	if s.bus != nil {
		if err := s.bus.Close(); err != nil {
			s.log.Warn("bus close", zap.Error(err))
		}
	}
	if s.embedded != nil {
		s.embedded.Shutdown()
		s.embedded.WaitForShutdown()
	}
}

// ConnectorNames lists the connectors this build knows.
func ConnectorNames() []string { return []string{"app", "email", "twilio"} }

func buildConnectors(cfg *config.Config, only []string, pub *connectors.Inbound, log *zap.Logger) ([]connectors.Connector, error) {
	want := map[string]bool{}
	for _, n := range only {
		if !slices.Contains(ConnectorNames(), n) {
			return nil, fmt.Errorf("unknown connector %q (known: %s)", n, strings.Join(ConnectorNames(), ", "))
		}
		want[n] = true
	}
	var out []connectors.Connector
	if a := cfg.Conns.App; a.Enabled && (len(want) == 0 || want["app"]) {
		apps := map[string]string{}
		hooks := map[string]app.Webhook{}
		for _, x := range a.Apps {
			apps[x.Name] = x.Token
			if x.Webhook.URL != "" {
				hooks[x.Name] = app.Webhook{URL: x.Webhook.URL, Secret: x.Webhook.Secret, MaxAttempts: x.Webhook.MaxAttempts}
			}
		}
		out = append(out, app.New(pub, app.Options{
			Apps: apps, Webhooks: hooks, MaxBody: a.MaxBody.Int64(), ReplyRetention: a.ReplyRetention.D(),
			DuplicateWindow: cfg.NATS.Streams.DuplicateWindow.D(), Replicas: cfg.NATS.Streams.Replicas,
		}, log.Named("app")))
	} else if want["app"] {
		return nil, errors.New("connector app is not enabled in config (connectors.app.enabled)")
	}
	if tw := cfg.Conns.Twilio; tw.On() && (len(want) == 0 || want["twilio"]) {
		c, err := twilioConnector(cfg, pub, log.Named("twilio"))
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	} else if want["twilio"] {
		return nil, errors.New("connector twilio is not on in config: set connectors.twilio.account_sid and auth_token (INROUTE_TWILIO_ACCOUNT_SID, INROUTE_TWILIO_AUTH_TOKEN)")
	}
	if e := cfg.Conns.Email; e.On() && (len(want) == 0 || want["email"]) {
		c, err := emailConnector(cfg, pub, log.Named("email"))
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	} else if want["email"] {
		return nil, errors.New("connector email is not on in config: give a mailbox an imap.addr (INROUTE_IMAP_ADDR, INROUTE_IMAP_USER, INROUTE_IMAP_PASSWORD)")
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name() < out[j].Name() })
	return out, nil
}
