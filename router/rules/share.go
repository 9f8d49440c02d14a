package rules

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
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
	// Hash identifies the content; the version label may stay the same
	// across edits.
	Hash   string `json:"hash"`
	File   string `json:"file"`
	Source []byte `json:"source"`
	// Routing is the routing_file's content, by the path config.yaml names.
	RoutingFile string    `json:"routing_file,omitempty"`
	Routing     []byte    `json:"routing,omitempty"`
	By          string    `json:"by"`
	At          time.Time `json:"at"`
}

// Share keeps every process on one rules version until ctx ends: a version
// this process loads from its own files (Reload) is put in the bucket, and
// a version another process put there is loaded here, through the same
// check as a local edit (a version that fails is refused and logged). At
// start, a version already in the bucket wins over this process's files,
// so a router started with an old file joins the others; an empty bucket
// receives this process's version. Versions are told apart by a hash of
// the files' content, not by their version label, which admins may leave
// unchanged.
func (l *Live) Share(ctx context.Context, js jetstream.JetStream, name string) error {
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: KVBucket, Description: "routing rules in force, shared by router processes", History: 10,
	})
	if err != nil {
		return fmt.Errorf("rules bucket: %w", err)
	}
	encode := func(cfg *config.Config, src []byte, version string) []byte {
		rf, rsrc := cfg.RoutingSource()
		data, _ := json.Marshal(sharedVersion{Version: version, Hash: contentHash(src, rsrc), File: l.file, Source: src,
			RoutingFile: rf, Routing: rsrc, By: name, At: time.Now().UTC()})
		return data
	}
	put := func(cfg *config.Config, src []byte, version string) {
		pctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, err := kv.Put(pctx, kvKey, encode(cfg, src, version)); err != nil {
			l.log.Error("share routing rules", zap.String("version", version), zap.Error(err))
		}
	}
	// Watch first: the watcher delivers the value in the bucket (if any),
	// then nil, then every later update, so none can slip between reading
	// and watching.
	w, err := kv.Watch(ctx, kvKey)
	if err != nil {
		return fmt.Errorf("watch rules bucket: %w", err)
	}
	defer func() { _ = w.Stop() }()
	own := l.ownContent()
	for initial := true; ; {
		select {
		case <-ctx.Done():
			return nil
		case e, ok := <-w.Updates():
			if !ok {
				return nil
			}
			switch {
			case e == nil && initial:
				initial = false
				if own != nil {
					// An empty bucket: offer ours. If another process got
					// there first, its value comes through the watcher.
					if _, err := kv.Create(ctx, kvKey, encode(own.cfg, own.src, l.Engine().Version())); err != nil && !errors.Is(err, jetstream.ErrKeyExists) {
						l.log.Error("share routing rules", zap.Error(err))
					}
				}
				l.publish.Store(&put)
			case e != nil && e.Operation() == jetstream.KeyValuePut:
				l.apply(e.Value())
				if initial {
					initial = false
					l.publish.Store(&put)
				}
			}
		}
	}
}

type ownContent struct {
	cfg *config.Config
	src []byte
}

// ownContent reads this process's files, to offer them and to know their
// hash; nil when the process has no config file.
func (l *Live) ownContent() *ownContent {
	if l.file == "" {
		return nil
	}
	src, err := os.ReadFile(l.file)
	if err != nil {
		return nil
	}
	cfg, err := config.Parse(l.file, src, os.LookupEnv)
	if err != nil {
		return nil
	}
	_, rsrc := cfg.RoutingSource()
	l.hash.Store(contentHash(src, rsrc))
	return &ownContent{cfg: cfg, src: src}
}

func contentHash(src, routing []byte) string {
	h := sha256.New()
	h.Write(src)
	h.Write([]byte{0})
	h.Write(routing)
	return hex.EncodeToString(h.Sum(nil))
}

// apply loads a version another process shared, unless it is in force.
func (l *Live) apply(data []byte) {
	var sv sharedVersion
	if err := json.Unmarshal(data, &sv); err != nil {
		l.refuse(fmt.Errorf("shared rules: %w", err))
		return
	}
	if h, _ := l.hash.Load().(string); sv.Hash != "" && sv.Hash == h {
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
		l.hash.Store(sv.Hash)
		l.log.Info("routing rules taken from another process", zap.String("version", sv.Version), zap.String("by", sv.By))
	}
}
