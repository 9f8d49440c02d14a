package config_test

import (
	"os"
	"testing"

	"github.com/inroute/inroute/config"
)

const imapBox = "connectors:\n  email:\n    mailboxes:\n      - name: support\n        imap: {addr: \"imap.example.com:993\", user: support@example.com, password: pw}\n"

func TestEmailConfigErrors(t *testing.T) {
	tests := []struct {
		name, src string
		want      string
	}{
		{"no password", "connectors:\n  email:\n    mailboxes:\n      - imap: {addr: \"imap.example.com:993\", user: support@example.com}\n",
			`config.yaml:4:9: connectors.email.mailboxes[0].imap.password: missing (set it from the environment, e.g. ${INROUTE_IMAP_PASSWORD})`},
		{"addr without port", "connectors:\n  email:\n    mailboxes:\n      - imap: {addr: imap.example.com, user: a@example.com, password: p}\n",
			`config.yaml:4:22: connectors.email.mailboxes[0].imap.addr: "imap.example.com" is not host:port`},
		{"tls mode", "connectors:\n  email:\n    mailboxes:\n      - imap: {addr: \"h:993\", user: a@example.com, password: p, tls: ssl}\n",
			`config.yaml:4:70: connectors.email.mailboxes[0].imap.tls: unknown TLS mode "ssl" (want one of tls, starttls, none)`},
		{"no address", "connectors:\n  email:\n    mailboxes:\n      - imap: {addr: \"h:993\", user: support, password: p}\n",
			`config.yaml:4:9: connectors.email.mailboxes[0].address: missing (say which address customers write to (or make imap.user an address))`},
		{"move_to is the folder", imapBox + "        queue: \"\"\n      - name: other\n        imap: {addr: \"h:993\", user: o@example.com, password: p, move_to: INBOX}\n",
			`config.yaml:8:74: connectors.email.mailboxes[1].imap.move_to: cannot be the folder read ("INBOX")`},
		{"duplicate name", imapBox + "      - name: support\n        imap: {addr: \"h:993\", user: o@example.com, password: p}\n",
			`config.yaml:6:15: connectors.email.mailboxes[1].name: mailbox name "support" is used twice`},
		{"unknown queue hint", "routing:\n  queues: {general: {}}\n" + imapBox + "        queue: vip\n",
			`config.yaml:8:16: connectors.email.mailboxes[0].queue: unknown queue "vip" (declare it under routing.queues)`},
		{"smtp user without password", imapBox + "        smtp: {addr: \"smtp.example.com:587\", user: u}\n",
			`config.yaml:6:9: connectors.email.mailboxes[0].smtp.password: smtp.user and smtp.password go together`},
		{"smtp from not an address", imapBox + "        smtp: {addr: \"smtp.example.com:587\", from: \"Support\"}\n",
			`config.yaml:6:52: connectors.email.mailboxes[0].smtp.from: "Support" is not an address ("Support <support@example.com>")`},
		{"enabled with no mailbox", "connectors:\n  email:\n    enabled: true\n",
			`config.yaml:2:3: connectors.email.mailboxes: missing (the e-mail connector is enabled but no mailbox has an imap.addr)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := config.Parse("config.yaml", []byte(tt.src), envOf(nil))
			if err == nil || err.Error() != tt.want {
				t.Errorf("error:\n%v\nwant:\n%s", err, tt.want)
			}
		})
	}
}

func TestEmailConfigDefaults(t *testing.T) {
	src := imapBox + "      - name: off\n        imap: {addr: \"\"}\n"
	c, err := config.Parse("config.yaml", []byte(src), envOf(nil))
	if err != nil {
		t.Fatal(err)
	}
	e := c.Conns.Email
	if !e.On() || len(e.Active()) != 1 {
		t.Fatalf("on %v, active %d; want on with one mailbox (the one without imap.addr is off)", e.On(), len(e.Active()))
	}
	m := e.Active()[0]
	checks := []struct{ name, got, want string }{
		{"address from the IMAP user", m.Address, "support@example.com"},
		{"smtp from", m.SMTP.From, "support@example.com"},
		{"folder", m.IMAP.Folder, "INBOX"},
		{"imap tls", m.IMAP.TLS, "tls"},
		{"smtp tls", m.SMTP.TLS, "starttls"},
		{"max size", e.MaxSize.String(), "25MiB"},
		{"poll", m.IMAP.PollEvery.D().String(), "1m0s"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: %q, want %q", c.name, c.got, c.want)
		}
	}
	if !m.IMAP.UseIDLE() {
		t.Error("IDLE is off by default")
	}
	// The shipped config.yaml is off until INROUTE_IMAP_ADDR is set, and
	// on with the quick-start variables alone.
	shipped, err := config.Load("../config.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if shipped.Conns.Email.On() {
		t.Error("the shipped config reads mail with no INROUTE_IMAP_ADDR")
	}
	shippedSrc, err := os.ReadFile("../config.yaml")
	if err != nil {
		t.Fatal(err)
	}
	quick, err := config.Parse("config.yaml", shippedSrc, envOf(map[string]string{
		"INROUTE_IMAP_ADDR": "imap.example.com:993", "INROUTE_IMAP_USER": "Support@Example.com", "INROUTE_IMAP_PASSWORD": "pw",
		"INROUTE_SMTP_ADDR": "smtp.example.com:587", "INROUTE_SMTP_USER": "support@example.com", "INROUTE_SMTP_PASSWORD": "pw",
		"INROUTE_SMTP_FROM": "Wallet Support <support@example.com>",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if mb := quick.Conns.Email.Active(); len(mb) != 1 || mb[0].Address != "support@example.com" || mb[0].IMAP.TLS != "tls" ||
		mb[0].SMTP.From != "Wallet Support <support@example.com>" {
		t.Fatalf("quick start mailbox %+v", mb)
	}
}

func TestEmailConfigGuards(t *testing.T) {
	tests := []struct {
		name, src, want string
	}{
		{"plain text to another host", "connectors:\n  email:\n    mailboxes:\n      - imap: {addr: \"mail.example.com:143\", tls: none, user: a@example.com, password: p}\n",
			`config.yaml:4:51: connectors.email.mailboxes[0].imap.tls: none sends the password in clear text: only for a server on this machine (127.0.0.1, ::1, localhost), not "mail.example.com:143"`},
		{"poll too often", "connectors:\n  email:\n    mailboxes:\n      - imap: {addr: \"h:993\", user: a@example.com, password: p, poll_every: 10ms}\n",
			`config.yaml:4:77: connectors.email.mailboxes[0].imap.poll_every: must be at least 1s, got 10ms`},
		{"sent copy into the folder read", imapBox + "        smtp: {addr: \"smtp.example.com:587\", sent_folder: inbox}\n",
			`config.yaml:6:59: connectors.email.mailboxes[0].smtp.sent_folder: cannot be the folder read ("INBOX"): every reply would come back in`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := config.Parse("config.yaml", []byte(tt.src), envOf(nil))
			if err == nil || err.Error() != tt.want {
				t.Errorf("error:\n%v\nwant:\n%s", err, tt.want)
			}
		})
	}
	for _, addr := range []string{"127.0.0.1:143", "[::1]:143", "localhost:143"} {
		src := "connectors:\n  email:\n    mailboxes:\n      - imap: {addr: \"" + addr + "\", tls: none, user: a@example.com, password: p}\n"
		if _, err := config.Parse("config.yaml", []byte(src), envOf(nil)); err != nil {
			t.Errorf("%s without TLS: %v", addr, err)
		}
	}
}
