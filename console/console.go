// Package console is the agents' web console: plain HTML, CSS and
// JavaScript embedded in the binary and served under /console/. It talks to
// the agent API (docs/agent-api.md) from the browser with the agent's token;
// it has no server-side state of its own.
package console

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
	"time"
)

// Prefix is the URL path the console is served under.
const Prefix = "/console/"

//go:embed static
var static embed.FS

// Security headers on every answer. The console loads nothing but its own
// files and calls nothing but its own origin's API; it never runs inline
// script or style, so the policy forbids both.
const csp = "default-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'; object-src 'none'"

// asset is one embedded file, ready to serve.
type asset struct {
	body  []byte
	ctype string
	etag  string
	// version is a short hash of body: index.html names each asset with
	// ?v=<version> so an asset fetched under its version can be cached for
	// good, and a new binary's assets are fetched afresh.
	version string
}

// Handler serves the console under Prefix (register it for "GET /console/").
// index.html is never cached; other files are revalidated by ETag, or cached
// for a year when fetched under the version index.html names them with.
func Handler() http.Handler {
	assets, err := load()
	if err != nil {
		// The files are compiled in: this cannot fail in a built binary.
		panic(err)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", csp)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			h.Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		name, ok := strings.CutPrefix(r.URL.Path, Prefix)
		if !ok {
			http.NotFound(w, r)
			return
		}
		if name == "" {
			name = "index.html"
		}
		a, ok := assets[name]
		if !ok {
			h.Set("Cache-Control", "no-store")
			http.NotFound(w, r)
			return
		}
		switch {
		case name == "index.html":
			h.Set("Cache-Control", "no-store")
		case r.URL.Query().Get("v") == a.version:
			h.Set("Cache-Control", "public, max-age=31536000, immutable")
		default:
			h.Set("Cache-Control", "no-cache")
		}
		h.Set("Content-Type", a.ctype)
		h.Set("ETag", a.etag)
		http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(a.body))
	})
}

// load reads the embedded files and writes each asset's version into
// index.html.
func load() (map[string]*asset, error) {
	root, err := fs.Sub(static, "static")
	if err != nil {
		return nil, err
	}
	assets := map[string]*asset{}
	err = fs.WalkDir(root, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := fs.ReadFile(root, p)
		if err != nil {
			return err
		}
		assets[p] = newAsset(p, body)
		return nil
	})
	if err != nil {
		return nil, err
	}
	idx, ok := assets["index.html"]
	if !ok {
		return nil, fmt.Errorf("console: static/index.html is missing")
	}
	html := string(idx.body)
	for name, a := range assets {
		if name == "index.html" {
			continue
		}
		html = strings.ReplaceAll(html, `"`+name+`"`, `"`+name+`?v=`+a.version+`"`)
	}
	assets["index.html"] = newAsset("index.html", []byte(html))
	return assets, nil
}

// types fixes the content types of the console's own files, whatever the
// host's mime tables say.
var types = map[string]string{
	".html": "text/html; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".svg":  "image/svg+xml",
}

func newAsset(name string, body []byte) *asset {
	sum := sha256.Sum256(body)
	ctype, ok := types[path.Ext(name)]
	if !ok {
		ctype = mime.TypeByExtension(path.Ext(name))
	}
	if ctype == "" {
		ctype = http.DetectContentType(body)
	}
	return &asset{body: body, ctype: ctype, etag: `"` + hex.EncodeToString(sum[:16]) + `"`, version: hex.EncodeToString(sum[:6])}
}
