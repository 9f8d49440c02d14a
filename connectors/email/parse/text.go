package parse

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// cleanText gives text the shape inroute stores: valid UTF-8, LF line
// ends, no NUL (PostgreSQL cannot store it) and no byte order mark.
func cleanText(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if strings.IndexByte(s, '\r') >= 0 {
		s = strings.ReplaceAll(s, "\r\n", "\n")
		s = strings.ReplaceAll(s, "\r", "\n")
	}
	s = stripNUL(s)
	return strings.TrimPrefix(s, "\uFEFF")
}

func stripNUL(s string) string {
	if strings.IndexByte(s, 0) < 0 {
		return s
	}
	return strings.ReplaceAll(s, "\x00", "")
}

// trimBlankLines drops blank lines at the start and trailing whitespace,
// keeping the indentation of the first line.
func trimBlankLines(s string) string {
	s = strings.TrimRight(s, " \t\n\u00a0\u3000")
	for {
		i := strings.IndexByte(s, '\n')
		if i < 0 || strings.TrimSpace(s[:i]) != "" {
			return s
		}
		s = s[i+1:]
	}
}

func isBlank(s string) bool { return strings.TrimSpace(s) == "" }

func joinParts(parts []string, sep string) string {
	switch len(parts) {
	case 0:
		return ""
	case 1:
		return parts[0]
	}
	kept := parts[:0:0]
	for _, p := range parts {
		if !isBlank(p) {
			kept = append(kept, p)
		}
	}
	return strings.Join(kept, sep)
}

// truncateUTF8 cuts s to at most n bytes without splitting a character.
func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

func truncate(s string, n int, what string, pr *problemList) string {
	if len(s) <= n {
		return s
	}
	pr.add(fmt.Sprintf("%s longer than %s: cut", what, sizeText(int64(n))))
	return truncateUTF8(s, n)
}

// unflow joins the soft line breaks of format=flowed text (RFC 3676), so
// that a phrase wrapped by the sender's client reads as one line again.
func unflow(s string, delsp bool) string {
	s = strings.ReplaceAll(s, "\r\n", "\n")
	var out strings.Builder
	var para strings.Builder
	depth, open := 0, false
	emit := func() {
		if depth > 0 {
			out.WriteString(strings.Repeat(">", depth))
			out.WriteByte(' ')
		}
		out.WriteString(para.String())
		out.WriteByte('\n')
		para.Reset()
		open = false
	}
	for _, line := range strings.Split(s, "\n") {
		d := 0
		for d < len(line) && line[d] == '>' {
			d++
		}
		text := strings.TrimPrefix(line[d:], " ")
		if open && d != depth {
			emit()
		}
		depth = d
		flowed := strings.HasSuffix(text, " ") && text != "-- "
		if flowed && delsp {
			text = text[:len(text)-1]
		}
		para.WriteString(text)
		open = true
		if !flowed {
			emit()
		}
	}
	if open {
		emit()
	}
	return strings.TrimSuffix(out.String(), "\n")
}
