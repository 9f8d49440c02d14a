// Package blob keeps attachment bytes outside the database, content
// addressed: a file's reference is "sha256:<hex>" of its bytes, so the same
// file stored twice takes the space once.
package blob

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// ErrTooLarge means the bytes exceed the size limit; nothing was kept.
var ErrTooLarge = errors.New("blob too large")

// ErrBadRef means the reference is not one this store made.
var ErrBadRef = errors.New("bad blob reference")

const refPrefix = "sha256:"

// Dir is a content-addressed blob directory.
type Dir struct {
	root    string
	maxSize int64
}

// Open prepares root (creating it) with a per-blob size limit (0: none).
func Open(root string, maxSize int64) (*Dir, error) {
	if err := os.MkdirAll(filepath.Join(root, "tmp"), 0o750); err != nil {
		return nil, fmt.Errorf("blob dir: %w", err)
	}
	return &Dir{root: root, maxSize: maxSize}, nil
}

// Put stores r's bytes durably and returns their reference and size.
func (d *Dir) Put(r io.Reader) (ref string, size int64, err error) {
	tmp, err := os.CreateTemp(filepath.Join(d.root, "tmp"), "put-*")
	if err != nil {
		return "", 0, fmt.Errorf("blob put: %w", err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	h := sha256.New()
	src := r
	if d.maxSize > 0 {
		src = io.LimitReader(r, d.maxSize+1)
	}
	size, err = io.Copy(io.MultiWriter(tmp, h), src)
	if err != nil {
		return "", 0, fmt.Errorf("blob put: %w", err)
	}
	if d.maxSize > 0 && size > d.maxSize {
		return "", 0, fmt.Errorf("%w: more than %d bytes", ErrTooLarge, d.maxSize)
	}
	if err = tmp.Sync(); err != nil {
		return "", 0, fmt.Errorf("blob put: %w", err)
	}
	if err = tmp.Close(); err != nil {
		return "", 0, fmt.Errorf("blob put: %w", err)
	}
	sum := hex.EncodeToString(h.Sum(nil))
	ref = refPrefix + sum
	final := d.path(sum)
	if err = os.MkdirAll(filepath.Dir(final), 0o750); err != nil {
		return "", 0, fmt.Errorf("blob put: %w", err)
	}
	if err = os.Rename(tmp.Name(), final); err != nil {
		return "", 0, fmt.Errorf("blob put: %w", err)
	}
	return ref, size, nil
}

// Open returns the bytes of ref.
func (d *Dir) Open(ref string) (io.ReadCloser, error) {
	p, err := d.Path(ref)
	if err != nil {
		return nil, err
	}
	return os.Open(p)
}

// Delete removes ref; deleting what is not there is not an error.
func (d *Dir) Delete(ref string) error {
	p, err := d.Path(ref)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("blob delete: %w", err)
	}
	return nil
}

// Path is where ref's bytes live.
func (d *Dir) Path(ref string) (string, error) {
	sum, ok := strings.CutPrefix(ref, refPrefix)
	if !ok || len(sum) != 64 {
		return "", fmt.Errorf("%w: %q", ErrBadRef, ref)
	}
	if _, err := hex.DecodeString(sum); err != nil {
		return "", fmt.Errorf("%w: %q", ErrBadRef, ref)
	}
	return d.path(sum), nil
}

// IsRef reports whether s is a blob reference (rather than a URL).
func IsRef(s string) bool { return strings.HasPrefix(s, refPrefix) }

func (d *Dir) path(sum string) string { return filepath.Join(d.root, sum[:2], sum[2:4], sum) }
