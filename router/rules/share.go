package rules

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/inroute/inroute/config"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
)

// KVBucket is the JetStream key-value bucket through which router
// processes share the rules version in force.
const KVBucket = "ROUTING_RULES"

const kvKey = "config"

// sharedVersion is what the bucket holds: the config file a process loaded
// its rules from. Receivers parse it with their own environment.
type sharedVersion struct {
	Version string `json:"version"`
	File    string `json:"file"`
	Source  []byte `json:"source"`
	// Routing is the routing_file's content, by the path config.yaml names.
	RoutingFile string    `json:"routing_file,omitempty"`
	Routing     []byte    `json:"routing,omitempty"`
	By          string    `json:"by"`
	At          time.Time `json:"at"`
}

// Share keeps every process on one rules version until ctx ends: a version
// this process loads from its own file (Reload) is put in the bucket, and a
// version another process put there is loaded here, through the same
// check as a local edit (a version that fails is refused and logged). At
// start, a version already in the bucket wins over this process's file, so
// a router started with an old file joins the others; an empty bucket
// receives this process's version.
func (l *Live) Share(ctx context.Context, js jetstream.JetStream, name string) error {
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: KVBucket, Description: "routing rules in force, shared by router processes", History: 10,
	})
	if err != nil {
		return fmt.Errorf("rules bucket: %w", err)
	}
	put := func(cfg *config.Config, src []byte, version string) {
		rf, rsrc := cfg.RoutingSource()
		data, _ := json.Marshal(sharedVersion{Version: version, File: l.file, Source: src, RoutingFile: rf, Routing: rsrc, By: name, At: time.Now().UTC()})
		pctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, err := kv.Put(pctx, kvKey, data); err != nil {
			l.log.Error("share routing rules", zap.String("version", version), zap.Error(err))
		}
	}
	entry, err := kv.Get(ctx, kvKey)
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		if l.file != "" {
			if src, err := os.ReadFile(l.file); err == nil {
				if cfg, err := config.Parse(l.file, src, os.LookupEnv); err == nil {
					put(cfg, src, l.Engine().Version())
				}
			}
		}
	case err != nil:
		return fmt.Errorf("rules bucket: %w", err)
	default:
		l.apply(entry.Value())
	}
	l.publish.Store(&put)
	defer l.publish.Store(nil)

	w, err := kv.Watch(ctx, kvKey, jetstream.UpdatesOnly())
	if err != nil {
		return fmt.Errorf("watch rules bucket: %w", err)
	}
	defer func() { _ = w.Stop() }()
	for {
		select {
		case <-ctx.Done():
			return nil
		case e, ok := <-w.Updates():
			if !ok {
				return nil
			}
			if e != nil && e.Operation() == jetstream.KeyValuePut {
				l.apply(e.Value())
			}
		}
	}
}

// apply loads a version another process shared, unless it is in force.
func (l *Live) apply(data []byte) {
	var sv sharedVersion
	if err := json.Unmarshal(data, &sv); err != nil {
		l.refuse(fmt.Errorf("shared rules: %w", err))
		return
	}
	if sv.Version == l.Engine().Version() {
		return
	}
	read := func(path string) ([]byte, error) {
		if path == sv.RoutingFile {
			return sv.Routing, nil
		}
		return nil, fmt.Errorf("%s was not shared with the rules", path)
	}
	cfg, err := config.ParseFiles(sv.File, sv.Source, os.LookupEnv, read)
	if err != nil {
		l.refuse(fmt.Errorf("rules shared by %s: %w", sv.By, err))
		return
	}
	if err := l.Swap(cfg); err == nil {
		l.log.Info("routing rules taken from another process", zap.String("version", sv.Version), zap.String("by", sv.By))
	}
}
