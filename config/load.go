package config

import (
	"bytes"
	"fmt"
	"os"
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
	d := newDecoder(filename, env)
	cfg := &Config{}
	if !d.decodeFile(src, reflect.ValueOf(cfg).Elem()) {
		return nil, d.probs.err()
	}
	cfg.applyDefaults()
	cfg.where = &validator{probs: d.probs, index: d.index, failed: d.failed, unset: d.unset}
	cfg.validate(cfg.where)
	if err := d.probs.err(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// decodeFile decodes the YAML in src into dst, recording problems in
// d.probs. It returns false when the file is too broken (not YAML, not a
// mapping) for validating what was decoded to be of any use.
func (d *decoder) decodeFile(src []byte, dst reflect.Value) bool {
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
	d.index[""] = loc{val: nodePos(body)}
	d.decode("", body, dst, 0)
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
