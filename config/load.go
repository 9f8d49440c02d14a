package config

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"reflect"

	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
)

// Load reads the configuration file at path, expanding ${VAR} references
// from the process environment. Problems with the file's contents are
// reported as in Parse; a file that cannot be read is reported as the
// wrapped *fs.PathError, so errors.Is(err, fs.ErrNotExist) works.
func Load(path string) (*Config, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load config: %w", err)
	}
	return Parse(path, src, os.LookupEnv)
}

// Parse decodes, defaults and validates a configuration. filename is used
// only in messages. env looks up variables for ${NAME} and
// ${NAME:-default}; nil means an empty environment.
//
// Every problem found is reported, each at the line and column of the key
// or value at fault: the error is a *Error for one problem, Errors for
// several. On error the Config is nil.
func Parse(filename string, src []byte, env func(string) (string, bool)) (*Config, error) {
	if env == nil {
		env = func(string) (string, bool) { return "", false }
	}
	return ParseFiles(filename, src, env, os.ReadFile)
}

// ParseFiles is Parse with the reader of files the config names
// (routing_file), so a config shared over the bus can be parsed from the
// bytes that came with it.
func ParseFiles(filename string, src []byte, env func(string) (string, bool), read func(string) ([]byte, error)) (*Config, error) {
	if env == nil {
		env = func(string) (string, bool) { return "", false }
	}
	d := newDecoder(filename, env)
	cfg := &Config{}
	if !d.decodeFile(src, reflect.ValueOf(cfg).Elem()) {
		return nil, d.probs.err()
	}
	cfg.where = &validator{probs: d.probs, index: d.index, failed: d.failed, unset: d.unset}
	cfg.whereRouting = cfg.where
	if cfg.RoutingFile != "" {
		cfg.routingPath = cfg.RoutingFile
		if !filepath.IsAbs(cfg.routingPath) {
			cfg.routingPath = filepath.Join(filepath.Dir(filename), cfg.RoutingFile)
		}
		_, inline := d.index["routing"]
		rsrc, err := read(cfg.routingPath)
		switch {
		case inline:
			cfg.where.errorf("routing_file", "set either routing: or routing_file:, not both")
		case err != nil:
			cfg.where.errorf("routing_file", "cannot read %s: %v", cfg.routingPath, err)
		default:
			rd := newDecoder(cfg.routingPath, env)
			if rd.decodeFileAt("routing", rsrc, reflect.ValueOf(&cfg.Routing).Elem()) {
				cfg.whereRouting = &validator{probs: rd.probs, index: rd.index, failed: rd.failed, unset: rd.unset}
			}
			d.probs.list = append(d.probs.list, rd.probs.list...)
			rd.probs.list = nil
			cfg.routingSrc = rsrc
		}
	}
	cfg.applyDefaults()
	cfg.validate(cfg.where)
	if cfg.whereRouting != cfg.where {
		// The routing file's problems are positioned in that file.
		cfg.whereRouting.probs = &problems{file: cfg.routingPath}
		cfg.validateRouting(cfg.whereRouting)
		d.probs.list = append(d.probs.list, cfg.whereRouting.probs.list...)
	}
	if err := d.probs.err(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// RoutingSource is the routing file's path and bytes, when routing_file
// is used.
func (c *Config) RoutingSource() (string, []byte) { return c.routingPath, c.routingSrc }

// Files are the files this config was read from: config.yaml and, with
// routing_file, the routing rules' own file.
func (c *Config) Files() []string {
	if c.routingPath != "" && c.where != nil {
		return []string{c.where.probs.file, c.routingPath}
	}
	if c.where != nil {
		return []string{c.where.probs.file}
	}
	return nil
}

// decodeFile decodes the YAML in src into dst, recording problems in
// d.probs. It returns false when the file is too broken (not YAML, not a
// mapping) for validating what was decoded to be of any use.
func (d *decoder) decodeFile(src []byte, dst reflect.Value) bool { return d.decodeFileAt("", src, dst) }

// decodeFileAt decodes a file whose top level is the setting at root
// ("" for config.yaml itself, "routing" for a routing_file).
func (d *decoder) decodeFileAt(root string, src []byte, dst reflect.Value) bool {
	// Editors on Windows like to start files with a byte order mark, which
	// is invisible and not part of the YAML.
	src = bytes.TrimPrefix(src, []byte("\xef\xbb\xbf"))
	f, err := parseYAML(src)
	if err != nil {
		d.probs.addYAML(startOfFile, "invalid YAML: ", err)
		return false
	}

	var body ast.Node
	for i, doc := range f.Docs {
		if doc == nil || isNull(doc.Body) {
			continue
		}
		if body != nil {
			at := nodePos(doc.Body)
			if p, ok := tokenPos(doc.Start); ok {
				at = p
			}
			d.probs.addf(at, "only one YAML document is allowed; this is document %d", i+1)
			return false
		}
		body = doc.Body
	}
	if body == nil {
		return true // empty or only comments: all defaults
	}

	body = d.expandTree(body)
	r, ok := d.resolve("", body)
	if !ok {
		return false
	}
	switch r.(type) {
	case *ast.MappingNode, *ast.MappingValueNode, *ast.NullNode, nil:
	default:
		d.probs.addf(nodePos(r), "the file must be a mapping of settings (key: value lines), got %s", describe(r))
		return false
	}
	d.index[root] = loc{val: nodePos(body)}
	d.decode(root, body, dst, 0)
	// Malformed ${...} in values the decoder never reached (under an unknown
	// key, say) are still mistakes worth reporting.
	for n, msg := range d.envErrs {
		if !d.envDone[n] {
			d.probs.addf(nodePos(n), "%s", msg)
		}
	}
	return true
}

// parseYAML is parser.ParseBytes made safe for any input: a config file is
// only text, so a bug in the YAML library must not take the process down.
func parseYAML(src []byte) (f *ast.File, err error) {
	defer func() {
		if r := recover(); r != nil {
			f, err = nil, fmt.Errorf("the YAML parser failed on this file: %v", r)
		}
	}()
	f, err = parser.ParseBytes(src, 0)
	if err == nil && f == nil {
		err = fmt.Errorf("the YAML parser returned nothing")
	}
	return f, err
}
