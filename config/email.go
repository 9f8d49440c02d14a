package config

import (
	"fmt"
	"net"
	"net/mail"
	"strings"
	"time"
)

// EmailConnector configures mail in (IMAP) and out (SMTP).
type EmailConnector struct {
	// Enabled: true or false; left out, the connector runs when at least
	// one mailbox has an IMAP address.
	Enabled *bool `yaml:"enabled"`
	// MaxSize is the largest mail fetched whole (default 25MiB); a larger
	// one keeps its headers and a note, and its body stays on the server.
	MaxSize ByteSize `yaml:"max_size"`
	// MaxAttachmentSize is the largest attachment kept (default 10MiB); a
	// larger one is listed by name with a note, without its bytes.
	MaxAttachmentSize ByteSize `yaml:"max_attachment_size"`
	// Mailboxes are the support addresses. A mailbox without an IMAP
	// address is off (so the shipped config can name one from the
	// environment).
	Mailboxes []Mailbox `yaml:"mailboxes"`
}

// Mailbox is one support address: where its mail is read and how its
// replies are sent.
type Mailbox struct {
	// Name identifies the mailbox in logs, metrics and its checkpoint
	// (default: the address). Keep it stable: a new name starts over.
	Name string `yaml:"name"`
	// Address is the support address customers write to (default: the
	// IMAP user when it is an address, else the SMTP from address).
	Address string `yaml:"address"`
	// Queue is a hint: mail to this mailbox that no topic claims starts in
	// this queue instead of the default one.
	Queue string `yaml:"queue"`
	IMAP  IMAP   `yaml:"imap"`
	SMTP  SMTP   `yaml:"smtp"`
}

// TLS modes for IMAP and SMTP connections.
const (
	TLSImplicit = "tls"
	TLSStart    = "starttls"
	TLSNone     = "none"
)

// IMAP is where a mailbox's mail is read.
type IMAP struct {
	// Addr is host:port (993 for implicit TLS, 143 for STARTTLS).
	Addr string `yaml:"addr"`
	// TLS is tls (implicit, the default), starttls, or none (plain text,
	// for a server on this machine or in tests).
	TLS      string `yaml:"tls"`
	User     string `yaml:"user"`
	Password string `yaml:"password"`
	// Folder is read for new mail (default INBOX).
	Folder string `yaml:"folder"`
	// MoveTo, when set, is where mail goes once inroute has it, instead
	// of being marked \Seen in Folder.
	MoveTo string `yaml:"move_to"`
	// PollEvery is how often the folder is checked when the server has no
	// IDLE (default 1m, at least 1s). An IDLE is renewed after 25 times
	// this, and after 25m at most.
	PollEvery Duration `yaml:"poll_every"`
	// IDLE: false polls even when the server offers IDLE (default true).
	IDLE *bool `yaml:"idle"`
	// InsecureSkipVerify accepts any certificate (a test server only).
	InsecureSkipVerify bool `yaml:"insecure_skip_verify"`
}

// UseIDLE reports whether IDLE is used when the server offers it.
func (i *IMAP) UseIDLE() bool { return i.IDLE == nil || *i.IDLE }

// SMTP is how a mailbox's replies are sent.
type SMTP struct {
	// Addr is host:port (587 for STARTTLS, 465 for implicit TLS). Empty:
	// the mailbox receives only, and replies to its customers go out
	// through the first mailbox that can send.
	Addr string `yaml:"addr"`
	// TLS is starttls (the default), tls (implicit) or none.
	TLS      string `yaml:"tls"`
	User     string `yaml:"user"`
	Password string `yaml:"password"`
	// From is the replies' From header (default: the mailbox address).
	From string `yaml:"from"`
	// SentFolder, when set, gets a copy of every reply by IMAP APPEND.
	SentFolder         string `yaml:"sent_folder"`
	InsecureSkipVerify bool   `yaml:"insecure_skip_verify"`
}

// On reports whether the e-mail connector runs.
func (e *EmailConnector) On() bool {
	if e.Enabled != nil {
		return *e.Enabled
	}
	return len(e.Active()) > 0
}

// Active lists the mailboxes that are on (those with an IMAP address).
func (e *EmailConnector) Active() []Mailbox {
	var out []Mailbox
	for _, m := range e.Mailboxes {
		if m.IMAP.Addr != "" {
			out = append(out, m)
		}
	}
	return out
}

// MailDomain is the domain of the first mailbox's address (on or off), or
// "" with none: the right-hand side of replies' Message-IDs.
func (e *EmailConnector) MailDomain() string {
	for _, m := range e.Mailboxes {
		if _, d, ok := strings.Cut(m.Address, "@"); ok && d != "" {
			return d
		}
	}
	return ""
}

// Domains lists the domains of every mailbox's address (on or off).
func (e *EmailConnector) Domains() []string {
	var out []string
	for _, m := range e.Mailboxes {
		if _, d, ok := strings.Cut(m.Address, "@"); ok && d != "" {
			out = append(out, d)
		}
	}
	return out
}

func (c *Config) emailDefaults() {
	e := &c.Conns.Email
	setDefault(&e.MaxSize, ByteSize(25<<20))
	setDefault(&e.MaxAttachmentSize, ByteSize(10<<20))
	for i := range e.Mailboxes {
		m := &e.Mailboxes[i]
		setDefault(&m.IMAP.TLS, TLSImplicit)
		setDefault(&m.IMAP.Folder, "INBOX")
		setDefault(&m.IMAP.PollEvery, Duration(time.Minute))
		setDefault(&m.SMTP.TLS, TLSStart)
		if m.Address == "" {
			if strings.Contains(m.IMAP.User, "@") {
				m.Address = m.IMAP.User
			} else if a, err := mail.ParseAddress(m.SMTP.From); err == nil {
				m.Address = a.Address
			}
		}
		m.Address = strings.ToLower(strings.TrimSpace(m.Address))
		setDefault(&m.SMTP.From, m.Address)
		setDefault(&m.Name, m.Address)
	}
}

// validateEmail checks the e-mail connector when it runs.
func (c *Config) validateEmail(v *validator) {
	e := &c.Conns.Email
	if !e.On() {
		return
	}
	if len(e.Active()) == 0 {
		v.missing("connectors.email.mailboxes", "the e-mail connector is enabled but no mailbox has an imap.addr")
	}
	if e.MaxSize < 64<<10 || e.MaxSize > 1<<30 {
		v.errorf("connectors.email.max_size", "must be between 64KiB and 1GiB, got %s", e.MaxSize)
	}
	if e.MaxAttachmentSize < 1<<10 || e.MaxAttachmentSize > e.MaxSize {
		v.errorf("connectors.email.max_attachment_size", "must be between 1KiB and max_size, got %s", e.MaxAttachmentSize)
	}
	tlsModes := []string{TLSImplicit, TLSStart, TLSNone}
	names := map[string]bool{}
	for i, m := range e.Mailboxes {
		if m.IMAP.Addr == "" {
			continue
		}
		p := fmt.Sprintf("connectors.email.mailboxes[%d]", i)
		if names[m.Name] {
			v.errorf(p+".name", "mailbox name %s is used twice", quote(m.Name))
		}
		names[m.Name] = true
		if m.Address == "" {
			v.missing(p+".address", "say which address customers write to (or make imap.user an address)")
		} else if a, err := mail.ParseAddress(m.Address); err != nil || a.Address != m.Address {
			v.errorf(p+".address", "%s is not an e-mail address", quote(m.Address))
		}
		if m.Queue != "" {
			c.queueRef(v, p+".queue", m.Queue)
		}
		hostPort(v, p+".imap.addr", m.IMAP.Addr)
		v.oneOf(p+".imap.tls", "TLS mode", m.IMAP.TLS, tlsModes)
		if m.IMAP.TLS == TLSNone && !loopback(m.IMAP.Addr) {
			// The login would cross the network in clear text.
			v.errorf(p+".imap.tls", "none sends the password in clear text: only for a server on this machine (127.0.0.1, ::1, localhost), not %s", quote(m.IMAP.Addr))
		}
		if m.IMAP.User == "" {
			v.missing(p+".imap.user", "the IMAP login is needed to read the mailbox")
		}
		if m.IMAP.Password == "" {
			v.missing(p+".imap.password", "set it from the environment, e.g. ${INROUTE_IMAP_PASSWORD}")
		}
		if m.IMAP.PollEvery.D() < time.Second {
			v.errorf(p+".imap.poll_every", "must be at least 1s, got %s", m.IMAP.PollEvery)
		}
		if m.IMAP.MoveTo != "" && strings.EqualFold(m.IMAP.MoveTo, m.IMAP.Folder) {
			v.errorf(p+".imap.move_to", "cannot be the folder read (%s)", quote(m.IMAP.Folder))
		}
		if m.SMTP.Addr != "" {
			hostPort(v, p+".smtp.addr", m.SMTP.Addr)
			v.oneOf(p+".smtp.tls", "TLS mode", m.SMTP.TLS, tlsModes)
			if (m.SMTP.User == "") != (m.SMTP.Password == "") {
				v.errorf(p+".smtp.password", "smtp.user and smtp.password go together")
			}
			if strings.EqualFold(m.SMTP.SentFolder, m.IMAP.Folder) {
				v.errorf(p+".smtp.sent_folder", "cannot be the folder read (%s): every reply would come back in", quote(m.IMAP.Folder))
			}
			if _, err := mail.ParseAddress(m.SMTP.From); err != nil {
				v.errorf(p+".smtp.from", "%s is not an address (\"Support <support@example.com>\")", quote(m.SMTP.From))
			}
		}
	}
}

func hostPort(v *validator, path, addr string) {
	if _, port, err := net.SplitHostPort(addr); err != nil || port == "" {
		v.errorf(path, "%s is not host:port", quote(addr))
	}
}

// loopback reports whether host:port names this machine.
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
