package rules

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/inroute/inroute/config"
	"github.com/inroute/inroute/message"
	"github.com/inroute/inroute/router"
	"go.uber.org/zap"
)

// Status is what an admin sees of the rules in force.
type Status struct {
	Version  string    `json:"version"`
	LoadedAt time.Time `json:"loaded_at"`
	File     string    `json:"file,omitempty"`
	// LastError is the most recent refused version's problem, with its
	// position; cleared when a version loads.
	LastError   string     `json:"last_error,omitempty"`
	LastErrorAt *time.Time `json:"last_error_at,omitempty"`
	Reloads     int64      `json:"reloads"`
	Refused     int64      `json:"refused"`
}

// Live holds the rules version in force and swaps in new ones: a version
// is parsed, validated and tested first, and only then replaces the old
// one, atomically. A broken version is refused and the old keeps routing.
type Live struct {
	cur  atomic.Pointer[Engine]
	file string
	log  *zap.Logger

	mu     sync.Mutex // serializes reloads and guards status
	status Status
	// publish, once Share runs, hands a version loaded from the local
	// files to the other processes.
	publish atomic.Pointer[func(cfg *config.Config, src []byte, version string)]
	// files are the files the version in force was read from (config.yaml
	// and its routing_file), which Watch watches.
	files atomic.Pointer[[]string]
	// hash identifies the content of the version in force (see Share).
	hash atomic.Value
}

var _ router.Decider = (*Live)(nil)

// NewLive starts with e, loaded from file.
func NewLive(e *Engine, file string, log *zap.Logger) *Live {
	l := &Live{file: file, log: log}
	l.cur.Store(e)
	l.status = Status{Version: e.Version(), LoadedAt: time.Now().UTC(), File: file}
	return l
}

// Decide implements router.Decider with the version in force.
func (l *Live) Decide(m *message.Message) router.Decision { return l.cur.Load().Decide(m) }

// Engine is the version in force.
func (l *Live) Engine() *Engine { return l.cur.Load() }

// Status reports the version in force and the last refusal.
func (l *Live) Status() Status {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.status
}

// Reload reads the config file again and swaps in its rules if they pass;
// with Share running, the new version goes to every other process too.
func (l *Live) Reload() error {
	src, err := os.ReadFile(l.file)
	if err != nil {
		err = fmt.Errorf("read config: %w", err)
		l.refuse(err)
		return err
	}
	cfg, err := config.Parse(l.file, src, os.LookupEnv)
	if err != nil {
		l.refuse(err)
		return err
	}
	if err := l.Swap(cfg); err != nil {
		return err
	}
	files := cfg.Files()
	l.files.Store(&files)
	_, rsrc := cfg.RoutingSource()
	l.hash.Store(contentHash(src, rsrc))
	if p := l.publish.Load(); p != nil {
		(*p)(cfg, src, l.Engine().Version())
	}
	return nil
}

// SetFiles tells Watch which files the version in force came from.
func (l *Live) SetFiles(files []string) { l.files.Store(&files) }

func (l *Live) watched() map[string]bool {
	out := map[string]bool{}
	if abs, err := filepath.Abs(l.file); err == nil {
		out[abs] = true
	}
	if fs := l.files.Load(); fs != nil {
		for _, f := range *fs {
			if abs, err := filepath.Abs(f); err == nil {
				out[abs] = true
			}
		}
	}
	return out
}

// Swap checks cfg's rules and puts them in force if they pass.
func (l *Live) Swap(cfg *config.Config) error {
	e, err := Check(cfg)
	if err != nil {
		l.refuse(err)
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	old := l.cur.Swap(e)
	l.status.Reloads++
	if old == nil || old.Version() != e.Version() {
		l.log.Info("routing rules loaded", zap.String("version", e.Version()), zap.String("previous", versionOf(old)))
	}
	l.status.Version, l.status.LoadedAt, l.status.LastError, l.status.LastErrorAt = e.Version(), time.Now().UTC(), "", nil
	return nil
}

func versionOf(e *Engine) string {
	if e == nil {
		return ""
	}
	return e.Version()
}

func (l *Live) refuse(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now().UTC()
	l.status.Refused++
	l.status.LastError, l.status.LastErrorAt = err.Error(), &now
	l.log.Error("routing rules refused; the previous version keeps routing",
		zap.String("version_in_force", versionOf(l.cur.Load())), zap.Error(err))
}

// Watch reloads whenever the config file changes, until ctx ends. It
// watches the file's directory, not the file, because many editors save
// by writing a new file and renaming it over the old one.
func (l *Live) Watch(ctx context.Context) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return err
	}
	defer w.Close()
	dirs := map[string]bool{}
	watchDirs := func() error {
		for f := range l.watched() {
			if d := filepath.Dir(f); !dirs[d] {
				if err := w.Add(d); err != nil {
					return err
				}
				dirs[d] = true
			}
		}
		return nil
	}
	if err := watchDirs(); err != nil {
		return err
	}
	// Editors write in bursts (truncate, write, chmod, rename): wait for
	// the burst to settle before reading.
	const settle = 150 * time.Millisecond
	var timer *time.Timer
	fire := make(chan struct{}, 1)
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.Events:
			if !ok {
				return nil
			}
			if !l.watched()[filepath.Clean(ev.Name)] || ev.Op == fsnotify.Chmod {
				continue
			}
			if timer == nil {
				timer = time.AfterFunc(settle, func() {
					select {
					case fire <- struct{}{}:
					default:
					}
				})
			} else {
				timer.Reset(settle)
			}
		case <-fire:
			if err := l.Reload(); err != nil && !errors.Is(err, context.Canceled) {
				continue // refused and logged; the old version keeps routing
			}
			// A new routing_file may live in another folder.
			if err := watchDirs(); err != nil {
				l.log.Warn("watching the config files", zap.Error(err))
			}
		case err, ok := <-w.Errors:
			if !ok {
				return nil
			}
			l.log.Warn("watching the config file", zap.Error(err))
		}
	}
}
