package parse

import (
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"
)

// StripQuoted returns the new text of a reply: quoted history and
// signature removed. It cuts at the first sign of history that clients
// put above it (an attribution line, an "Original Message" separator, an
// Outlook header block), drops "> " quoted lines wherever they are (so that
// answers written between or below quotes survive), then drops the
// signature and "Sent from my iPhone" lines. If nothing would be left, the
// whole text is returned: the customer wrote something, and rules must
// see it.
func StripQuoted(text string) string {
	// No-break spaces are how HTML-made text pads separators ("---&nbsp;
	// Original&nbsp;---"); as plain spaces they match like typed ones.
	text = strings.ReplaceAll(cleanText(text), "\u00a0", " ")
	whole := strings.TrimSpace(text)
	if whole == "" {
		return ""
	}
	lines := strings.Split(text, "\n")
	lines = dropHistory(lines)
	lines = cutSignature(lines)
	lines = dropDeviceFooters(lines)
	out := strings.TrimSpace(joinLines(lines))
	if out == "" {
		return whole
	}
	return out
}

var (
	// "-----Original Message-----" and its translations, as Outlook,
	// Foxmail, QQ Mail and NetEase write them.
	separatorRE = regexp.MustCompile(`(?i)^[-_=*\s]*[-_=]{2,}\s*(original message|original|ursprüngliche nachricht|message d'origine|mensaje original|messaggio originale|mensagem original|oorspronkelijk bericht|原始邮件|原始郵件|邮件原件|郵件原件|原邮件|原郵件)\s*[-_=]{2,}[-_=*\s]*$`)
	// The line Outlook puts above its header block.
	ruleLineRE = regexp.MustCompile(`^\s*[_\-—=]{8,}\s*$`)
	// Gmail's Japanese and some other clients end with the address alone.
	attributionAddrRE  = regexp.MustCompile(`^<[^<>\s]+@[^<>\s]+>\s*[:：]$`)
	attributionStartRE = regexp.MustCompile(`(?i)^(on|le|am|el|em|il|op|den|dne|w dniu|в|在|于|於)\b|^(在|于|於)`)
	forwardMarkRE      = regexp.MustCompile(`(?i)forwarded message|begin forwarded message|weitergeleitete nachricht|message transféré|mensaje reenviado|转发的邮件|轉寄的郵件|转发邮件`)
	deviceFooterRE     = regexp.MustCompile(`(?i)^(sent from my .{1,40}|sent from (mail|outlook|yahoo mail|gmail|proton ?mail|samsung|huawei|xiaomi) ?.{0,40}|sent with .{1,40}|sent via .{1,40}|get outlook for (ios|android).{0,10}|envoyé de mon .{1,40}|enviado desde mi .{1,40}|von meinem .{1,40} gesendet|inviato da .{1,40}|(发自|來自|来自|發自)我的.{1,20}|发自网易邮箱.{0,10}|来自网易邮箱.{0,10}|从我的.{1,20}发送|從我的.{1,20}傳送|.{0,20}から送信)\.?\s*(<[^>]*>)?$`)
)

// Keys of the Outlook header block ("From: ... Sent: ... To: ..."), in the
// languages of the clients customers use.
var (
	fromKeys = keySet("from", "von", "de", "da", "van", "od", "от", "发件人", "寄件者", "寄件人", "差出人", "보낸 사람")
	restKeys = keySet("sent", "date", "to", "cc", "subject", "gesendet", "datum", "an", "betreff", "envoyé", "à", "objet",
		"enviado", "para", "asunto", "inviato", "a", "oggetto", "verzonden", "aan", "onderwerp", "отправлено", "кому", "тема",
		"发送时间", "发送日期", "时间", "日期", "收件人", "抄送", "主题", "寄件日期", "傳送時間", "收件者", "副本", "主旨",
		"送信日時", "宛先", "件名", "보낸 날짜", "받는 사람", "제목")
)

// mailKeys are the keys only a mail header has.
var mailKeys = keySet("sent", "subject", "gesendet", "betreff", "envoyé", "objet", "enviado", "asunto", "inviato",
	"oggetto", "verzonden", "onderwerp", "отправлено", "тема", "发送时间", "主题", "寄件日期", "傳送時間", "主旨",
	"送信日時", "件名", "보낸 날짜", "제목")

func keySet(keys ...string) map[string]bool {
	m := make(map[string]bool, len(keys))
	for _, k := range keys {
		m[k] = true
	}
	return m
}

func isQuoted(line string) bool {
	t := strings.TrimLeft(line, " \t")
	return strings.HasPrefix(t, ">") || strings.HasPrefix(t, "＞")
}

// headerKey returns the lower-cased key of a "Key: value" line, with the
// bold stars Outlook's plain text keeps ("*From:* ...").
func headerKey(line string) string {
	t := strings.TrimSpace(strings.ReplaceAll(line, "\u00a0", " "))
	t = strings.TrimLeft(t, "* ")
	i := strings.IndexAny(t, ":：")
	if i <= 0 || i > 40 {
		return ""
	}
	return strings.ToLower(strings.TrimSpace(strings.Trim(t[:i], "* ")))
}

// isHeaderBlock reports whether an Outlook-style header block starts at i:
// a From line and at least two more of its keys close below it. A From
// without an address needs a Sent or Subject key too, so that "From:
// Shanghai / To: Beijing / Date: ..." in a booking question is not cut.
func isHeaderBlock(lines []string, i int) bool {
	if !fromKeys[headerKey(lines[i])] {
		return false
	}
	mailLike := strings.ContainsAny(lines[i], "@<")
	found, seen := 0, 0
	// Bounded look-ahead: a hostile text of many From lines and blank
	// lines must not cost quadratic time.
	for j := i + 1; j < len(lines) && j <= i+16 && seen < 8; j++ {
		if strings.TrimSpace(lines[j]) == "" {
			continue
		}
		seen++
		k := headerKey(lines[j])
		if restKeys[k] {
			found++
			mailLike = mailLike || mailKeys[k]
		}
	}
	return found >= 2 && mailLike
}

// attribution reports whether an "On ... wrote:" line (wrapped over up to
// three lines, as Gmail does with long names) starts at i, and how many
// lines it spans. strong is set when the line carries a date or an
// address, so it may cut the text even without quoted lines below it.
func attribution(lines []string, i int) (span int, strong bool) {
	// Every attribution ends in a colon; most lines do not, and the
	// patterns below are not cheap.
	last := 0
	for k := 1; k <= 3 && i+k <= len(lines); k++ {
		t := strings.TrimRight(lines[i+k-1], " \t\u00a0")
		if strings.HasSuffix(t, ":") || strings.HasSuffix(t, "：") {
			last = k
			break
		}
	}
	if last == 0 {
		return 0, false
	}
	first := strings.TrimSpace(strings.ReplaceAll(lines[i], "\u00a0", " "))
	if first == "" || utf8.RuneCountInString(first) > 300 {
		return 0, false
	}
	joined := first
	for k := 2; k <= last; k++ {
		next := strings.TrimSpace(strings.ReplaceAll(lines[i+k-1], "\u00a0", " "))
		if next == "" || isQuoted(next) {
			return 0, false
		}
		// Only a line that begins like an attribution or breaks inside
		// an address may continue on the next one.
		if !attributionStartRE.MatchString(first) && strings.Count(joined, "<") <= strings.Count(joined, ">") &&
			!strings.Contains(joined, "@") {
			return 0, false
		}
		joined += " " + next
	}
	if len(joined) > 500 {
		return 0, false
	}
	addr := ""
	if j := strings.LastIndexByte(joined, '<'); j >= 0 {
		addr = joined[j:]
	}
	if attributionMarked(joined) || addr != "" && attributionAddrRE.MatchString(addr) && hasDigit(joined) {
		strong = strings.Contains(joined, "@") || hasDigit(joined) || attributionStartRE.MatchString(joined)
		return last, strong
	}
	return 0, false
}

// Attribution markers, by where they stand: right before the colon
// ("... wrote:"), or before the writer's name ("Am ... schrieb Name:").
// Plain string tests: case-folded regular expressions over every line
// cost more than the rest of the parse.
var (
	endMarkers = []string{"wrote", "a écrit", "escribió", "escreveu", "ha scritto", "kirjoitti", "napisał", "napisała",
		"написал(а)", "написала", "написал", "写道", "寫道", "작성", "のメール", "のメッセージ"}
	innerMarkers = []string{" schrieb ", " schreef ", " skrev ", " wrote "}
)

func attributionMarked(joined string) bool {
	s := strings.TrimRight(joined, " \t")
	s = strings.TrimSuffix(strings.TrimSuffix(s, ":"), "：")
	s = strings.TrimRight(s, " \t")
	lower := strings.ToLower(s)
	for _, m := range endMarkers {
		if !strings.HasSuffix(lower, m) {
			continue
		}
		before, _ := utf8.DecodeLastRuneInString(lower[:len(lower)-len(m)])
		if m[0] >= utf8.RuneSelf || !unicode.IsLetter(before) {
			return true
		}
	}
	if attributionStartRE.MatchString(s) {
		for _, m := range innerMarkers {
			if strings.Contains(lower, m) {
				return true
			}
		}
	}
	return false
}

func hasDigit(s string) bool {
	return strings.IndexFunc(s, unicode.IsDigit) >= 0
}

func isSeparator(line string) bool {
	return (strings.Contains(line, "--") || strings.Contains(line, "__") || strings.Contains(line, "==")) &&
		separatorRE.MatchString(line)
}

// nextNonBlank looks a few lines ahead only; quotes follow their
// attribution closely.
func nextNonBlank(lines []string, i int) int {
	for end := i + 8; i < len(lines) && i < end; i++ {
		if strings.TrimSpace(lines[i]) != "" {
			return i
		}
	}
	return -1
}

func prevNonBlank(lines []string, i int) int {
	for i--; i >= 0; i-- {
		if strings.TrimSpace(lines[i]) != "" {
			return i
		}
	}
	return -1
}

// dropHistory removes quoted lines and cuts at the start of history that
// is not marked line by line.
func dropHistory(lines []string) []string {
	keep := make([]bool, len(lines))
	cut := len(lines)
	for i := 0; i < len(lines); i++ {
		line := lines[i]
		if isQuoted(line) {
			continue
		}
		keep[i] = true
		if isSeparator(line) {
			cut = i
			break
		}
		if isHeaderBlock(lines, i) {
			p := prevNonBlank(lines, i)
			if p >= 0 && forwardMarkRE.MatchString(lines[p]) {
				// A forwarded mail is what the customer sends us, not
				// history of our conversation.
				continue
			}
			cut = i
			if p >= 0 && (ruleLineRE.MatchString(lines[p]) || isSeparator(lines[p])) {
				cut = p
			}
			break
		}
		if span, strong := attribution(lines, i); span > 0 {
			if j := nextNonBlank(lines, i+span); j >= 0 && isQuoted(lines[j]) {
				for k := i; k < i+span; k++ {
					keep[k] = false
				}
				i += span - 1
				continue
			}
			if strong {
				cut = i
				break
			}
		}
	}
	out := make([]string, 0, cut)
	for i := 0; i < cut; i++ {
		if keep[i] {
			out = append(out, lines[i])
		}
	}
	return out
}

// cutSignature drops everything from the signature delimiter on ("-- ",
// and the "--" that clients leave when they trim trailing spaces).
func cutSignature(lines []string) []string {
	for i, l := range lines {
		if l == "-- " || l == "--" {
			return lines[:i]
		}
	}
	return lines
}

// dropDeviceFooters removes "Sent from my iPhone" style lines at the end.
func dropDeviceFooters(lines []string) []string {
	for {
		i := prevNonBlank(lines, len(lines))
		if i < 0 {
			return lines
		}
		t := strings.TrimSpace(strings.ReplaceAll(lines[i], "\u00a0", " "))
		if !deviceFooterRE.MatchString(t) {
			return lines
		}
		lines = lines[:i]
	}
}

// joinLines joins lines with trailing spaces removed and runs of blank
// lines (left where quotes were) folded into one.
func joinLines(lines []string) string {
	var b strings.Builder
	blank := 0
	for _, l := range lines {
		l = strings.TrimRight(l, " \t\u00a0\u3000")
		if l == "" {
			blank++
			continue
		}
		if b.Len() > 0 {
			if blank > 0 {
				b.WriteString("\n\n")
			} else {
				b.WriteByte('\n')
			}
		}
		blank = 0
		b.WriteString(l)
	}
	return b.String()
}
