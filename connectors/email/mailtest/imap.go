package mailtest

import (
	"bytes"
	"fmt"
	"io"
	"log"
	"net"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"
	"github.com/inroute/inroute/config"
)

// The login of a double started without one.
const (
	DefaultUser     = "support@wallet.example"
	DefaultPassword = "secret"
)

// DefaultFolders are the folders of a double started without any.
var DefaultFolders = []string{"INBOX", "Processed", "Sent"}

// IMAPOptions configures StartIMAP. The zero value is a server with
// IDLE, the default login and the default folders.
type IMAPOptions struct {
	// User and Password are the one login (default DefaultUser and
	// DefaultPassword).
	User, Password string
	// Folders the user has (default DefaultFolders).
	Folders []string
	// NoIDLE: the server does not offer IDLE, so a client has to poll.
	NoIDLE bool
	// IMAP4rev2 offers IMAP4rev2 as well as IMAP4rev1: go-imap's client
	// then speaks rev2.
	IMAP4rev2 bool
	// NoMove and NoUIDPlus leave out MOVE and UIDPLUS, as older servers
	// do: a client must copy, and may not expunge by UID.
	NoMove, NoUIDPlus bool
}

// IMAP is a running IMAP double.
type IMAP struct {
	t    testing.TB
	addr string
	acct Account
	user *imapmemserver.User
}

// StartIMAP runs go-imap's IMAP server with its in-memory backend on
// 127.0.0.1 (a free port) until the test ends. It offers UIDPLUS and MOVE
// and, unless told not to, IDLE; logins need no TLS.
func StartIMAP(t testing.TB, opt IMAPOptions) *IMAP {
	t.Helper()
	if opt.User == "" {
		opt.User, opt.Password = DefaultUser, DefaultPassword
	}
	if opt.Folders == nil {
		opt.Folders = DefaultFolders
	}
	mem := imapmemserver.New()
	u := imapmemserver.NewUser(opt.User, opt.Password)
	for _, f := range opt.Folders {
		if err := u.Create(f, nil); err != nil {
			t.Fatalf("imap double: create %s: %v", f, err)
		}
	}
	mem.AddUser(u)
	caps := imap.CapSet{imap.CapIMAP4rev1: {}, imap.CapUIDPlus: {}, imap.CapMove: {}}
	if opt.NoMove {
		delete(caps, imap.CapMove)
	}
	if opt.NoUIDPlus {
		delete(caps, imap.CapUIDPlus)
	}
	if opt.IMAP4rev2 {
		caps[imap.CapIMAP4rev2] = struct{}{}
	}
	srv := imapserver.New(&imapserver.Options{
		NewSession: func(*imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
			return mem.NewSession(), nil, nil
		},
		Caps:         caps,
		InsecureAuth: true,
		// Connections the clients drop at the test's end are no news.
		Logger: log.New(io.Discard, "", 0),
	})
	var ln net.Listener
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if opt.NoIDLE {
		ln = noIDLEListener{ln}
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	addr := ln.Addr().String()
	return &IMAP{t: t, addr: addr, user: u, acct: Account{Addr: addr, User: opt.User, Password: opt.Password}}
}

// Addr is the server's host:port.
func (s *IMAP) Addr() string { return s.addr }

// User is the login's user name (also its address).
func (s *IMAP) User() string { return s.acct.User }

// Password is the login's password.
func (s *IMAP) Password() string { return s.acct.Password }

// Account is the login, for a session of the test's own.
func (s *IMAP) Account() Account { return s.acct }

// Mailbox is the connector's configuration for this server: the mailbox
// "support" at the login's address, read from INBOX without TLS, polled
// every 100ms where the server has no IDLE.
func (s *IMAP) Mailbox() config.Mailbox {
	return config.Mailbox{Name: "support", Address: s.acct.User, IMAP: config.IMAP{
		Addr: s.addr, TLS: config.TLSNone, User: s.acct.User, Password: s.acct.Password, Folder: "INBOX",
		PollEvery: config.Duration(100 * time.Millisecond),
	}}
}

// Deliver puts raw into folder, unread, as a mail server does when mail
// arrives; clients in IDLE on the folder hear of it. A failure ends the
// test: call it from the test's goroutine (Append from others).
func (s *IMAP) Deliver(folder string, raw []byte) {
	s.t.Helper()
	if err := s.Append(folder, raw); err != nil {
		s.t.Fatal(err)
	}
}

// Append puts raw into folder with flags, on the server's side (no
// session of a client).
func (s *IMAP) Append(folder string, raw []byte, flags ...imap.Flag) error {
	_, err := s.user.Append(folder, literal{bytes.NewReader(raw)}, &imap.AppendOptions{Flags: flags, Time: time.Now()})
	if err != nil {
		return fmt.Errorf("imap double: deliver to %s: %w", folder, err)
	}
	return nil
}

// noIDLEListener hides IDLE from the capabilities its connections
// announce: go-imap's server announces IDLE to every IMAP4rev1 client once
// it is logged in, whatever its options say.
type noIDLEListener struct{ net.Listener }

func (l noIDLEListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return noIDLEConn{c}, nil
}

type noIDLEConn struct{ net.Conn }

var (
	// capLine is a capability list: "* CAPABILITY ..." or a status
	// response with a CAPABILITY code ("A1 OK [CAPABILITY ...] Logged in").
	capLine = regexp.MustCompile(`(?m)^\S+ (?:(?:OK|PREAUTH) \[)?CAPABILITY [^\r\n]*`)
	idleCap = regexp.MustCompile(` IDLE([ \]]|$)`)
)

// Write takes IDLE out of capability lists. They come in short responses
// (the greeting, the answers to LOGIN and CAPABILITY) that the server
// flushes on their own, so a list never straddles two writes.
func (c noIDLEConn) Write(p []byte) (int, error) {
	q := capLine.ReplaceAllFunc(p, func(line []byte) []byte { return idleCap.ReplaceAll(line, []byte("$1")) })
	if _, err := c.Conn.Write(q); err != nil {
		return 0, err
	}
	return len(p), nil
}

type literal struct{ *bytes.Reader }

func (l literal) Size() int64 { return int64(l.Len()) }

// Count is how many mails folder holds. A failure (no such folder) ends
// the test.
func (s *IMAP) Count(folder string) int {
	s.t.Helper()
	st, err := s.user.Status(folder, &imap.StatusOptions{NumMessages: true})
	if err != nil {
		s.t.Fatalf("imap double: status of %s: %v", folder, err)
	}
	return int(*st.NumMessages)
}

// CreateFolder adds a folder, with a new UIDVALIDITY.
func (s *IMAP) CreateFolder(name string) error { return s.user.Create(name, nil) }

// DeleteFolder removes a folder and its mail. Deleted and created again,
// a folder starts over with a new UIDVALIDITY, as when a server rebuilds
// its index.
func (s *IMAP) DeleteFolder(name string) error { return s.user.Delete(name) }

// Seen is Account().Seen.
func (s *IMAP) Seen(folder, msgID string) ([]bool, error) { return s.acct.Seen(folder, msgID) }

// Fetch is Account().Fetch.
func (s *IMAP) Fetch(folder string) ([]Stored, error) { return s.acct.Fetch(folder) }

// Account is a login on an IMAP server without TLS: the double's, or a
// real one's in a test. Each call is a session of its own, next to the
// connector's, that changes nothing in the mailbox.
type Account struct {
	Addr, User, Password string
}

// Session logs in, runs fn, and logs out.
func (a Account) Session(fn func(c *imapclient.Client) error) error {
	c, err := imapclient.DialInsecure(a.Addr, nil)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Login(a.User, a.Password).Wait(); err != nil {
		return err
	}
	if err := fn(c); err != nil {
		return err
	}
	return c.Logout().Wait()
}

// Seen says, for every mail in folder whose Message-ID is msgID, whether
// it is \Seen; none when no mail there has that Message-ID.
func (a Account) Seen(folder, msgID string) ([]bool, error) {
	var out []bool
	err := a.Session(func(c *imapclient.Client) error {
		if _, err := c.Select(folder, &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
			return err
		}
		data, err := c.UIDSearch(&imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "Message-ID", Value: msgID}}}, nil).Wait()
		if err != nil {
			return err
		}
		uids := data.AllUIDs()
		if len(uids) == 0 {
			return nil
		}
		bufs, err := c.Fetch(imap.UIDSetNum(uids...), &imap.FetchOptions{UID: true, Flags: true}).Collect()
		if err != nil {
			return err
		}
		for _, b := range bufs {
			out = append(out, hasFlag(b.Flags, imap.FlagSeen))
		}
		return nil
	})
	return out, err
}

// Stored is one mail in a folder.
type Stored struct {
	UID   imap.UID
	Flags []imap.Flag
	Raw   []byte
}

// Has reports whether the mail has flag (flags compare without case).
func (m Stored) Has(flag imap.Flag) bool { return hasFlag(m.Flags, flag) }

// Fetch reads every mail in folder, oldest first, with its flags; reading
// does not mark it \Seen.
func (a Account) Fetch(folder string) ([]Stored, error) {
	var out []Stored
	err := a.Session(func(c *imapclient.Client) error {
		sel, err := c.Select(folder, &imap.SelectOptions{ReadOnly: true}).Wait()
		if err != nil {
			return err
		}
		if sel.NumMessages == 0 {
			return nil
		}
		section := &imap.FetchItemBodySection{Peek: true}
		bufs, err := c.Fetch(imap.SeqSetNum(1, sel.NumMessages),
			&imap.FetchOptions{UID: true, Flags: true, BodySection: []*imap.FetchItemBodySection{section}}).Collect()
		if err != nil {
			return err
		}
		for _, b := range bufs {
			out = append(out, Stored{UID: b.UID, Flags: b.Flags, Raw: b.FindBodySection(section)})
		}
		return nil
	})
	return out, err
}

func hasFlag(flags []imap.Flag, f imap.Flag) bool {
	for _, g := range flags {
		if strings.EqualFold(string(g), string(f)) {
			return true
		}
	}
	return false
}
