package mailtest_test

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"mime"
	"slices"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"github.com/inroute/inroute/config"
	"github.com/inroute/inroute/connectors/email/mailtest"
	"golang.org/x/text/encoding/simplifiedchinese"
)

func rawMail(msgID string) []byte {
	return []byte("From: li@customer.example\r\nTo: " + mailtest.DefaultUser + "\r\nSubject: hi\r\nMessage-ID: " + msgID +
		"\r\n\r\nhello\r\n")
}

// Mail delivered is there unread; a client that marks it \Seen is seen
// to have done so.
func TestIMAPDeliverAndSeen(t *testing.T) {
	for _, tc := range []struct {
		name string
		opt  mailtest.IMAPOptions
		idle bool
	}{
		{"idle", mailtest.IMAPOptions{}, true},
		{"no idle", mailtest.IMAPOptions{NoIDLE: true}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := mailtest.StartIMAP(t, tc.opt)
			mb := s.Mailbox()
			if mb.IMAP.Addr != s.Addr() || mb.IMAP.User != mailtest.DefaultUser || mb.IMAP.Password != mailtest.DefaultPassword ||
				mb.Address != s.User() || mb.IMAP.TLS != config.TLSNone || mb.IMAP.Folder != "INBOX" {
				t.Fatalf("mailbox %+v", mb)
			}
			s.Deliver("INBOX", rawMail("<a@customer.example>"))
			s.Deliver("INBOX", rawMail("<b@customer.example>"))
			if n := s.Count("INBOX"); n != 2 {
				t.Fatalf("INBOX holds %d mails, want 2", n)
			}
			if seen, err := s.Seen("INBOX", "<a@customer.example>"); err != nil || !slices.Equal(seen, []bool{false}) {
				t.Fatalf("seen %v (%v), want [false]", seen, err)
			}
			err := s.Account().Session(func(c *imapclient.Client) error {
				if c.Caps().Has(imap.CapIdle) != tc.idle {
					t.Errorf("IDLE offered: %v, want %v", c.Caps().Has(imap.CapIdle), tc.idle)
				}
				if _, err := c.Select("INBOX", nil).Wait(); err != nil {
					return err
				}
				return c.Store(imap.SeqSetNum(1), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagSeen}}, nil).Close()
			})
			if err != nil {
				t.Fatal(err)
			}
			if seen, err := s.Seen("INBOX", "<a@customer.example>"); err != nil || !slices.Equal(seen, []bool{true}) {
				t.Fatalf("seen %v (%v), want [true]", seen, err)
			}
			if seen, err := s.Seen("INBOX", "<nowhere@customer.example>"); err != nil || len(seen) != 0 {
				t.Fatalf("seen %v (%v) for a mail that is not there", seen, err)
			}
			got, err := s.Fetch("INBOX")
			if err != nil || len(got) != 2 {
				t.Fatalf("fetch: %d mails (%v)", len(got), err)
			}
			if !bytes.Equal(got[1].Raw, rawMail("<b@customer.example>")) || got[1].Has(imap.FlagSeen) || !got[0].Has(imap.FlagSeen) {
				t.Fatalf("fetched %+v", got)
			}
			// Fetching marks nothing.
			if seen, _ := s.Seen("INBOX", "<b@customer.example>"); !slices.Equal(seen, []bool{false}) {
				t.Fatalf("fetch marked the mail: %v", seen)
			}
		})
	}
}

// A folder deleted and created again has a new UIDVALIDITY.
func TestIMAPRecreatedFolder(t *testing.T) {
	s := mailtest.StartIMAP(t, mailtest.IMAPOptions{User: "help@wallet.example", Password: "pw", Folders: []string{"INBOX"}})
	validity := func() uint32 {
		var v uint32
		if err := s.Account().Session(func(c *imapclient.Client) error {
			st, err := c.Status("INBOX", &imap.StatusOptions{UIDValidity: true}).Wait()
			if err == nil {
				v = st.UIDValidity
			}
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return v
	}
	s.Deliver("INBOX", rawMail("<a@customer.example>"))
	before := validity()
	if err := s.DeleteFolder("INBOX"); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateFolder("INBOX"); err != nil {
		t.Fatal(err)
	}
	if after := validity(); after == before || s.Count("INBOX") != 0 {
		t.Fatalf("UIDVALIDITY %d then %d, %d mails", before, after, s.Count("INBOX"))
	}
	if err := s.Append("Sent", rawMail("<c@customer.example>")); err == nil {
		t.Fatal("appended to a folder that does not exist")
	}
}

// send is one SMTP transaction as a submission client makes it.
func send(s *mailtest.SMTP, mode, user, password, from, to string, data []byte) error {
	tc := &tls.Config{InsecureSkipVerify: true} //nolint:gosec // the double's certificate is self-signed
	var c *smtp.Client
	var err error
	switch mode {
	case config.TLSStart:
		c, err = smtp.DialStartTLS(s.Addr(), tc)
	case config.TLSImplicit:
		c, err = smtp.DialTLS(s.Addr(), tc)
	default:
		c, err = smtp.Dial(s.Addr())
	}
	if err != nil {
		return err
	}
	defer c.Close()
	if user != "" {
		if err := c.Auth(sasl.NewPlainClient("", user, password)); err != nil {
			return err
		}
	}
	if err := c.SendMail(from, []string{to}, bytes.NewReader(data)); err != nil {
		return err
	}
	return c.Quit()
}

// The SMTP double records what it accepts, in each TLS mode, and answers
// with the programmed failures first.
func TestSMTPRecordsAndFails(t *testing.T) {
	for _, mode := range []string{config.TLSNone, config.TLSStart, config.TLSImplicit} {
		t.Run(mode, func(t *testing.T) {
			user := ""
			if mode != config.TLSNone {
				user = "help@wallet.example"
			}
			s := mailtest.StartSMTP(t, mailtest.SMTPOptions{TLS: mode, User: user, Password: "pw"})
			if user != "" {
				if err := send(s, mode, "", "", "a@x.example", "b@y.example", []byte("no login\r\n")); err == nil {
					t.Fatal("mail accepted without the login")
				}
				if err := send(s, mode, user, "wrong", "a@x.example", "b@y.example", []byte("bad login\r\n")); err == nil {
					t.Fatal("mail accepted with a wrong password")
				}
			}
			busy := &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Try again later"}
			unknown := &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "User unknown"}
			s.FailNext(mailtest.AtData, busy, 1)
			s.FailNext(mailtest.AtRcpt, unknown, 1)
			var se *smtp.SMTPError
			if err := send(s, mode, user, "pw", "a@x.example", "b@y.example", []byte("first\r\n")); !errors.As(err, &se) || se.Code != 451 {
				t.Fatalf("first: %v, want 451", err)
			}
			if err := send(s, mode, user, "pw", "a@x.example", "b@y.example", []byte("second\r\n")); !errors.As(err, &se) || se.Code != 550 {
				t.Fatalf("second: %v, want 550", err)
			}
			if err := send(s, mode, user, "pw", "a@x.example", "李@y.example", []byte("third\r\n")); err != nil {
				t.Fatalf("third: %v", err)
			}
			got := s.Received()
			if len(got) != 1 {
				t.Fatalf("%d mails recorded, want 1: %+v", len(got), got)
			}
			m := got[0]
			if m.From != "a@x.example" || !slices.Equal(m.Rcpts, []string{"李@y.example"}) || !strings.HasPrefix(string(m.Data), "third") ||
				m.TLS != (mode != config.TLSNone) || m.AuthUser != user {
				t.Fatalf("recorded %+v", m)
			}
		})
	}
}

func TestGBK(t *testing.T) {
	if b := mailtest.GBK("充值"); !bytes.Equal(b, []byte{0xb3, 0xe4, 0xd6, 0xb5}) {
		t.Fatalf("GBK 充值 = % x", b)
	}
	dec := mime.WordDecoder{CharsetReader: func(charset string, r io.Reader) (io.Reader, error) {
		if !strings.EqualFold(charset, "GBK") {
			return nil, errors.New("charset " + charset)
		}
		return simplifiedchinese.GBK.NewDecoder().Reader(r), nil
	}}
	if s, err := dec.Decode(mailtest.GBKWord("我的充值没有到账")); s != "我的充值没有到账" || err != nil {
		t.Fatalf("GBKWord decodes to %q (%v)", s, err)
	}
}
