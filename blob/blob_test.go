package blob

import (
	"bytes"
	"errors"
	"io"
	"os"
	"strings"
	"testing"
)

func TestPutOpenDelete(t *testing.T) {
	d, err := Open(t.TempDir(), 1024)
	if err != nil {
		t.Fatal(err)
	}
	ref, size, err := d.Put(strings.NewReader("hello"))
	if err != nil || size != 5 || ref != "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824" {
		t.Fatalf("put: %q %d %v", ref, size, err)
	}
	// The same bytes again: the same reference, one file.
	ref2, _, err := d.Put(strings.NewReader("hello"))
	if err != nil || ref2 != ref {
		t.Fatalf("second put: %q %v", ref2, err)
	}
	r, err := d.Open(ref)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(r)
	r.Close()
	if string(got) != "hello" {
		t.Fatalf("read %q", got)
	}
	if err := d.Delete(ref); err != nil {
		t.Fatal(err)
	}
	if err := d.Delete(ref); err != nil {
		t.Fatalf("second delete: %v", err)
	}
	if _, err := d.Open(ref); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("open after delete: %v", err)
	}
}

func TestLimitsAndBadRefs(t *testing.T) {
	root := t.TempDir()
	d, _ := Open(root, 10)
	if _, _, err := d.Put(bytes.NewReader(make([]byte, 11))); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("oversize: %v", err)
	}
	if left, _ := os.ReadDir(root + "/tmp"); len(left) != 0 {
		t.Fatalf("oversize put left %d temp files", len(left))
	}
	for _, bad := range []string{"", "sha256:zz", "https://x/y", "sha256:../../etc/passwd"} {
		if _, err := d.Open(bad); !errors.Is(err, ErrBadRef) {
			t.Errorf("%q: %v", bad, err)
		}
	}
}
