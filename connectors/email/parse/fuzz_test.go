package parse

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"
)

func seedFixtures(f *testing.F) [][]byte {
	files, err := filepath.Glob(filepath.Join("testdata", "*.eml"))
	if err != nil || len(files) == 0 {
		f.Fatalf("no fixtures: %v", err)
	}
	var seeds [][]byte
	for _, name := range files {
		raw, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		seeds = append(seeds, raw)
	}
	return seeds
}

// noRecover makes a panic crash the fuzz run instead of turning into
// ErrUnusable, so that it is found and fixed.
func noRecover(f *testing.F) {
	recoverPanics = false
	f.Cleanup(func() { recoverPanics = true })
}

func FuzzParse(f *testing.F) {
	noRecover(f)
	for _, raw := range seedFixtures(f) {
		f.Add(raw, int64(0), 0)
		f.Add(raw, int64(64), 1)
	}
	f.Fuzz(func(t *testing.T, raw []byte, maxSize int64, maxAtt int) {
		opt := Options{MaxAttachmentSize: maxSize % (1 << 20), MaxAttachments: maxAtt % 64}
		if opt.MaxAttachmentSize < 0 {
			opt.MaxAttachmentSize = -opt.MaxAttachmentSize
		}
		m, err := Parse(raw, opt)
		if err != nil {
			if !errors.Is(err, ErrUnusable) || m != nil {
				t.Fatalf("Parse = %v, %v: want ErrUnusable and no mail", m, err)
			}
		} else {
			checkInvariants(t, m, opt)
		}
		h, err := ParseHeader(raw)
		if err != nil {
			if !errors.Is(err, ErrUnusable) {
				t.Fatalf("ParseHeader error %v does not wrap ErrUnusable", err)
			}
			return
		}
		checkInvariants(t, h, Options{})
	})
}

func FuzzStripQuoted(f *testing.F) {
	for _, s := range []string{
		"Hi\n\nOn Mon, 3 Jun 2024 at 10:00, A <a@b.c> wrote:\n> old\n",
		"new\n-----Original Message-----\nFrom: x\n",
		"在 2024年6月3日 10:00，张三 <a@b.c> 写道：\n>旧\n新",
		"发件人：a\n发送时间：b\n收件人：c\n主题：d\n",
		"> only quoted\n",
		"text\n-- \nsig\n\nSent from my iPhone\n",
	} {
		f.Add(s)
	}
	for _, raw := range seedFixtures(f) {
		if _, body, ok := strings.Cut(string(raw), "\r\n\r\n"); ok {
			f.Add(body)
		}
	}
	f.Fuzz(func(t *testing.T, in string) {
		out := StripQuoted(in)
		if !utf8.ValidString(out) {
			t.Fatalf("StripQuoted(%q) = %q: not valid UTF-8", in, out)
		}
		if strings.TrimSpace(cleanText(in)) != "" && strings.TrimSpace(out) == "" {
			t.Fatalf("StripQuoted(%q) is empty", in)
		}
		if strings.ContainsAny(out, "\r\x00") {
			t.Fatalf("StripQuoted(%q) = %q: CR or NUL left", in, out)
		}
		if again := StripQuoted(out); len(again) > len(out) {
			t.Fatalf("StripQuoted grew on its own output: %q -> %q", out, again)
		}
	})
}

func FuzzHTMLText(f *testing.F) {
	for _, s := range []string{
		"<p>a</p><ul><li>b</li></ul><a href='https://x'>y</a>",
		"<blockquote>q<blockquote>qq</blockquote></blockquote><pre>p\n q</pre>",
		"<table><tr><td>a<td>b</table><br><img alt=x>",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		out := HTMLText(in)
		if !utf8.ValidString(out) || strings.IndexByte(out, 0) >= 0 {
			t.Fatalf("HTMLText(%q) = %q", in, out)
		}
	})
}
