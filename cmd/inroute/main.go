// Command inroute is the omnichannel inbound message router: one binary that
// runs the whole system (serve) or any one part of it against a shared NATS.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/inroute/inroute/config"
	"github.com/inroute/inroute/system"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// version is set at build time (-ldflags "-X main.version=...").
var version = ""

// Exit codes.
const (
	exitOK     = 0
	exitFail   = 1
	exitConfig = 2 // usage or configuration errors
)

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}

type command struct {
	name, args, short, long string
	run                     func(ctx context.Context, args []string, stdout, stderr io.Writer) int
}

func commands() []command {
	return []command{
		{"serve", "[flags]", "run the whole system in one process",
			`Runs every part in one process: an embedded NATS server with JetStream (files
under <data-dir>/nats, fsync on every write), the routing stage, every enabled
connector and the HTTP API. With nats.url (or INROUTE_NATS_URL) set, it joins
that NATS server or cluster instead and embeds none.`, runServe},
		{"router", "[flags]", "run the routing stage alone against a shared NATS",
			`Runs only the routing stage. Any number of router processes share one durable
consumer, so each message is routed by exactly one of them. Needs nats.url.
Serves /healthz and /readyz only when --http is given.`, runPart(system.RoleRouter)},
		{"api", "[flags]", "run the HTTP API (agents) alone against a shared NATS",
			`Runs only the agent API and health endpoints. Needs nats.url.`, runPart(system.RoleAPI)},
		{"connector", "NAME [flags]", "run one connector alone against a shared NATS",
			`Runs one connector (` + strings.Join(system.ConnectorNames(), ", ") + `) with its HTTP endpoints. Needs nats.url.`, runConnector},
		{"rules", "SUBCOMMAND [flags]", "check, test and explain the routing rules", rulesUsage, runRules},
		{"store", "SUBCOMMAND [flags]", "find, merge and unmerge contacts; purge old history", storeUsage, runStore},
		{"agent", "SUBCOMMAND [flags]", "take, answer and route conversations (agent API client)", agentUsage, runAgent},
		{"version", "", "print the version", "", runVersion},
		{"help", "[COMMAND]", "show help for inroute or one command", "", nil},
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return exitConfig
	}
	name, rest := args[0], args[1:]
	switch name {
	case "help", "-h", "--help", "-help":
		if len(rest) > 0 {
			return helpFor(rest[0], stdout, stderr)
		}
		usage(stdout)
		return exitOK
	case "--version", "-version":
		name = "version"
	}
	for _, c := range commands() {
		if c.name == name && c.run != nil {
			return c.run(ctx, rest, stdout, stderr)
		}
	}
	fmt.Fprintf(stderr, "inroute: unknown command %q\n\n", name)
	usage(stderr)
	return exitConfig
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "inroute routes customer messages from every channel to agents' queues.")
	fmt.Fprintln(w, "\nUsage:\n  inroute COMMAND [flags]\n\nCommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-10s %s\n", c.name, c.short)
	}
	fmt.Fprintln(w, "\nRun 'inroute help COMMAND' for a command's flags.")
}

func helpFor(name string, stdout, stderr io.Writer) int {
	for _, c := range commands() {
		if c.name != name {
			continue
		}
		fmt.Fprintf(stdout, "Usage: inroute %s %s\n\n%s\n", c.name, c.args, c.short)
		if c.long != "" {
			fmt.Fprintf(stdout, "\n%s\n", c.long)
		}
		if c.name != "version" && c.name != "help" && c.name != "store" && c.name != "rules" && c.name != "agent" {
			fmt.Fprintln(stdout, "\nFlags:")
			fs, _ := newFlags(c.name, c.name == "serve")
			fs.SetOutput(stdout)
			fs.PrintDefaults()
		}
		return exitOK
	}
	fmt.Fprintf(stderr, "inroute help: unknown command %q\n", name)
	return exitConfig
}

type flags struct {
	config, dataDir, http string
}

func newFlags(name string, withDataDir bool) (*flag.FlagSet, *flags) {
	f := &flags{}
	fs := flag.NewFlagSet("inroute "+name, flag.ContinueOnError)
	fs.StringVar(&f.config, "config", "./config.yaml", "configuration file")
	if withDataDir {
		fs.StringVar(&f.dataDir, "data-dir", "", "data directory (overrides data_dir in the config)")
	}
	fs.StringVar(&f.http, "http", "", "HTTP listen address host:port (overrides http.listen)")
	return fs, f
}

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return start(ctx, "serve", args, system.Options{Roles: system.RoleAll}, stderr)
}

func runPart(role system.Role) func(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return func(ctx context.Context, args []string, stdout, stderr io.Writer) int {
		name := map[system.Role]string{system.RoleRouter: "router", system.RoleAPI: "api"}[role]
		return start(ctx, name, args, system.Options{Roles: role}, stderr)
	}
}

func runConnector(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		fmt.Fprintf(stderr, "inroute connector: name the connector (%s)\n", strings.Join(system.ConnectorNames(), ", "))
		return exitConfig
	}
	return start(ctx, "connector", args[1:], system.Options{Roles: system.RoleConnectors, Connectors: []string{args[0]}}, stderr)
}

func runVersion(_ context.Context, _ []string, stdout, _ io.Writer) int {
	fmt.Fprintf(stdout, "inroute %s\n", buildVersion())
	return exitOK
}

func buildVersion() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}

// start loads config, starts the parts and waits for a signal or a failure.
func start(ctx context.Context, name string, args []string, o system.Options, stderr io.Writer) int {
	fs, f := newFlags(name, name == "serve")
	fs.SetOutput(stderr)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitConfig
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "inroute %s: unexpected argument %q\n", name, fs.Arg(0))
		return exitConfig
	}
	cfg, err := config.Load(f.config)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return exitConfig
	}
	if f.dataDir != "" {
		cfg.DataDir = f.dataDir
	}
	log, err := newLogger(cfg.Log, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "inroute: %v\n", err)
		return exitConfig
	}
	defer func() { _ = log.Sync() }()

	switch {
	case f.http != "":
		o.HTTP = f.http
	case o.Roles == system.RoleRouter:
		o.HTTP = "-" // a router has no endpoints of its own; health only on request
	}
	o.Config, o.Log, o.Name, o.ConfigPath = cfg, log, "inroute-"+name, f.config

	if o.Roles&(system.RoleAPI|system.RoleConnectors) != 0 {
		for _, who := range cfg.DevTokens() {
			log.Warn("development token in use; set a real one before exposing inroute", zap.String("holder", who))
		}
	}

	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	startCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	sys, err := system.Start(startCtx, o)
	cancel()
	if err != nil {
		log.Error("start failed", zap.Error(err))
		if errors.Is(err, system.ErrNeedsBus) {
			return exitConfig
		}
		return exitFail
	}
	log.Info("inroute started", zap.String("command", name), zap.String("version", buildVersion()),
		zap.String("http", sys.HTTPAddr()), zap.String("nats", sys.NATSURL()), zap.String("data_dir", cfg.DataDir))

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	code := exitOK
wait:
	for {
		select {
		case <-hup:
			// Reload logs a refusal itself; the old rules keep routing.
			if err := sys.ReloadRules(); err == nil {
				log.Info("routing rules reloaded on SIGHUP")
			}
		case <-ctx.Done():
			log.Info("shutting down: finishing in-flight work")
			break wait
		case err := <-sys.Err():
			log.Error("a part failed; shutting down", zap.Error(err))
			code = exitFail
			break wait
		}
	}
	stop() // a second signal now kills the process at once
	shutCtx, cancel := context.WithTimeout(context.Background(), cfg.HTTP.ShutdownTimeout.D())
	defer cancel()
	if err := sys.Shutdown(shutCtx); err != nil {
		log.Error("shutdown", zap.Error(err))
		return exitFail
	}
	log.Info("stopped")
	return code
}

// newLogger builds the process logger: console lines on a terminal, JSON
// otherwise (for log shippers).
func newLogger(c config.Log, w io.Writer) (*zap.Logger, error) {
	level, err := zapcore.ParseLevel(c.Level)
	if err != nil {
		return nil, fmt.Errorf("log.level: %w", err)
	}
	format := c.Format
	if format == "" || format == "auto" {
		format = "json"
		if isTerminal(w) {
			format = "console"
		}
	}
	encCfg := zap.NewProductionEncoderConfig()
	encCfg.TimeKey = "ts"
	encCfg.EncodeTime = zapcore.ISO8601TimeEncoder
	var enc zapcore.Encoder
	if format == "console" {
		encCfg.EncodeLevel = zapcore.CapitalColorLevelEncoder
		enc = zapcore.NewConsoleEncoder(encCfg)
	} else {
		enc = zapcore.NewJSONEncoder(encCfg)
	}
	core := zapcore.NewCore(enc, zapcore.Lock(zapcore.AddSync(w)), level)
	return zap.New(core, zap.ErrorOutput(zapcore.Lock(zapcore.AddSync(w)))), nil
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// parseInterspersed parses fs from args, letting flags come before, between
// or after the positional arguments (`store merge 1 2 --config F`), and
// returns the positional arguments.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}
