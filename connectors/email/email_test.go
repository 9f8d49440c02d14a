package email

import (
	"context"
	"errors"
	"fmt"
	"github.com/emersion/go-imap/v2"
	"github.com/inroute/inroute/bus"
	"github.com/nats-io/nats.go/jetstream"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/inroute/inroute/blob"
	"github.com/inroute/inroute/bus/testbus"
	"github.com/inroute/inroute/config"
	"github.com/inroute/inroute/connectors/conformance"
	"github.com/inroute/inroute/connectors/email/mailtest"
	"github.com/inroute/inroute/message"
)

// TestConformance runs the suite every connector passes, with the mail
// server's side played by go-imap's in-memory server: delivering is a
// mail arriving in the INBOX, and the connector's acknowledgement is the
// \Seen flag on it.
func TestConformance(t *testing.T) {
	conformance.Run(t, func(t *testing.T, busURL string) conformance.Harness {
		b := testbus.Connect(t, busURL)
		srv := mailtest.StartIMAP(t, mailtest.IMAPOptions{})
		r := startConnector(t, b, Options{Mailboxes: []config.Mailbox{srv.Mailbox()}}, nil)
		return conformance.Harness{
			Channel: message.Email,
			Deliver: func(ctx context.Context, id string) error {
				msgID := "<" + id + "@customer.example>"
				// The suite calls Deliver from goroutines of its own: no t.Fatal here.
				if err := srv.Append("INBOX", mail(msgID, "Li Lei <li@customer.example>", "Top-up "+id, "My top-up has not arrived")); err != nil {
					return err
				}
				for {
					seen, err := srv.Seen("INBOX", msgID)
					if err != nil {
						return err
					}
					all := len(seen) > 0
					for _, s := range seen {
						all = all && s
					}
					if all {
						return nil
					}
					select {
					case <-ctx.Done():
						return fmt.Errorf("mail %s not marked \\Seen: %w", msgID, ctx.Err())
					case <-time.After(20 * time.Millisecond):
					}
				}
			},
			Matches: func(m *message.Message, id string) bool { return m.ChannelMessageID == "<"+id+"@customer.example>" },
			Stop: func(ctx context.Context) error {
				r.stop()
				return nil
			},
		}
	})
}

func TestIngestOrderAndFields(t *testing.T) {
	srv := mailtest.StartIMAP(t, mailtest.IMAPOptions{})
	b := testbus.Start(t).Connect(t)
	mb := srv.Mailbox()
	mb.Queue = "refunds"
	srv.Deliver("INBOX", mail("<a1@customer.example>", "=?UTF-8?B?5p2O6Zu3?= <Li@Customer.example>", "=?UTF-8?B?5YWF5YC85rKh5pyJ5Yiw6LSm?=",
		"我的充值没有到账\n\n-- \nLi Lei", "In-Reply-To: <r0@wallet.example>", "References: <q0@wallet.example> <r0@wallet.example>"))
	startConnector(t, b, Options{Mailboxes: []config.Mailbox{mb}}, nil)
	m := waitInbound(t, b, 1)[0]
	checks := []struct{ name, got, want string }{
		{"channel", string(m.Channel), "email"},
		{"dedupe key", m.ChannelMessageID, "<a1@customer.example>"},
		{"from", m.From.Address, "li@customer.example"},
		{"from name", m.From.Name, "李雷"},
		{"to", m.To.Address, testUser},
		{"subject", m.Subject, "充值没有到账"},
		{"text", m.Text, "我的充值没有到账"},
		{"message-id", m.Thread.MessageID, "<a1@customer.example>"},
		{"in-reply-to", m.Thread.InReplyTo, "<r0@wallet.example>"},
		{"references", strings.Join(m.Thread.References, " "), "<q0@wallet.example> <r0@wallet.example>"},
		{"queue hint", m.Extra[message.ExtraQueueHint], "refunds"},
		{"mailbox", m.Extra[ExtraMailbox], "support"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: %q, want %q", c.name, c.got, c.want)
		}
	}
	testbus.CheckFor(t, 5*time.Second, 20*time.Millisecond, func() error {
		seen, err := srv.Seen("INBOX", "<a1@customer.example>")
		if err != nil || len(seen) != 1 || !seen[0] {
			return fmt.Errorf("seen %v (%v)", seen, err)
		}
		return nil
	})
	cps, err := openCheckpoints(context.Background(), b)
	if err != nil {
		t.Fatal(err)
	}
	cp, err := cps.get(context.Background(), "support")
	if err != nil || cp.LastUID != 1 || cp.UIDValidity == 0 {
		t.Fatalf("checkpoint %+v (%v), want uid 1", cp, err)
	}
}

// A crash after the publish and before the checkpoint reads the mail
// again on restart: the bus drops the copy by Message-ID. A crash after
// the checkpoint and before \Seen marks the mail on restart. Nothing is
// lost, nothing doubled.
func TestCrashBetweenSteps(t *testing.T) {
	for _, step := range []string{"publish", "checkpoint"} {
		t.Run(step, func(t *testing.T) {
			srv := mailtest.StartIMAP(t, mailtest.IMAPOptions{})
			b := testbus.Start(t).Connect(t)
			for i := 1; i <= 5; i++ {
				srv.Deliver("INBOX", mail(fmt.Sprintf("<c%d@customer.example>", i), "li@customer.example", "hi", fmt.Sprintf("mail %d", i)))
			}
			var crashed atomic.Bool
			first := startConnector(t, b, Options{Mailboxes: []config.Mailbox{srv.Mailbox()}}, func(s string, uid uint32) bool {
				return s == step && uid == 3 && crashed.CompareAndSwap(false, true)
			})
			testbus.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
				if !crashed.Load() {
					return errors.New("no crash yet")
				}
				return nil
			})
			first.stop() // the session after the crash may have gone on; stop it too
			startConnector(t, b, Options{Mailboxes: []config.Mailbox{srv.Mailbox()}}, nil)
			for i := 1; i <= 5; i++ {
				id := fmt.Sprintf("<c%d@customer.example>", i)
				testbus.CheckFor(t, 5*time.Second, 20*time.Millisecond, func() error {
					seen, err := srv.Seen("INBOX", id)
					if err != nil || len(seen) != 1 || !seen[0] {
						return fmt.Errorf("%s seen %v (%v)", id, seen, err)
					}
					return nil
				})
			}
			got := inbound(t, b)
			count := map[string]int{}
			for _, m := range got {
				count[m.ChannelMessageID]++
			}
			for i := 1; i <= 5; i++ {
				if n := count[fmt.Sprintf("<c%d@customer.example>", i)]; n != 1 {
					t.Errorf("mail %d is on the bus %d times, want 1", i, n)
				}
			}
			if len(got) != 5 {
				t.Errorf("%d messages on the bus, want 5", len(got))
			}
		})
	}
}

// A folder that is recreated gets a new UIDVALIDITY: its UIDs start over.
// The connector reads it again and the bus drops what it had by
// Message-ID, so only the new mail is new.
func TestUIDValidityChange(t *testing.T) {
	srv := mailtest.StartIMAP(t, mailtest.IMAPOptions{})
	b := testbus.Start(t).Connect(t)
	var raws [][]byte
	for i := 1; i <= 3; i++ {
		raw := mail(fmt.Sprintf("<u%d@customer.example>", i), "li@customer.example", "hi", fmt.Sprintf("mail %d", i))
		raws = append(raws, raw)
		srv.Deliver("INBOX", raw)
	}
	r := startConnector(t, b, Options{Mailboxes: []config.Mailbox{srv.Mailbox()}}, nil)
	waitInbound(t, b, 3)
	r.stop()
	// The server rebuilt the folder: same mail, new numbering, plus one.
	if err := srv.DeleteFolder("INBOX"); err != nil {
		t.Fatal(err)
	}
	if err := srv.CreateFolder("INBOX"); err != nil {
		t.Fatal(err)
	}
	for _, raw := range raws {
		srv.Deliver("INBOX", raw)
	}
	srv.Deliver("INBOX", mail("<u4@customer.example>", "li@customer.example", "hi", "mail 4"))
	startConnector(t, b, Options{Mailboxes: []config.Mailbox{srv.Mailbox()}}, nil)
	waitInbound(t, b, 4)
	testbus.CheckFor(t, 5*time.Second, 20*time.Millisecond, func() error {
		seen, err := srv.Seen("INBOX", "<u4@customer.example>")
		if err != nil || len(seen) != 1 || !seen[0] {
			return fmt.Errorf("seen %v (%v)", seen, err)
		}
		return nil
	})
	if got := inbound(t, b); len(got) != 4 {
		t.Fatalf("%d messages on the bus after the resync, want 4", len(got))
	}
}

// IDLE: with polling set to an hour, new mail still arrives at once.
func TestIdleWakesOnNewMail(t *testing.T) {
	for _, tc := range []struct {
		name string
		idle bool
		poll time.Duration
	}{
		{"idle", true, time.Hour},
		{"polling", false, 100 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := mailtest.StartIMAP(t, mailtest.IMAPOptions{NoIDLE: !tc.idle})
			b := testbus.Start(t).Connect(t)
			mb := srv.Mailbox()
			mb.IMAP.PollEvery = config.Duration(tc.poll)
			startConnector(t, b, Options{Mailboxes: []config.Mailbox{mb}}, nil)
			// Let the connector reach its wait before the mail arrives.
			srv.Deliver("INBOX", mail("<i0@customer.example>", "li@customer.example", "first", "first"))
			waitInbound(t, b, 1)
			time.Sleep(100 * time.Millisecond) // into IDLE (or the poll wait)
			srv.Deliver("INBOX", mail("<i1@customer.example>", "li@customer.example", "second", "second"))
			waitInbound(t, b, 2)
		})
	}
}

// move_to, with MOVE, without it (copy, then delete by UID), and without
// UIDPLUS either (copy, then leave the original read and \Deleted: a
// plain EXPUNGE would take other \Deleted mail with it). A missing folder
// is created.
func TestMoveToFolder(t *testing.T) {
	for _, tc := range []struct {
		name  string
		opt   mailtest.IMAPOptions
		inbox int
	}{
		{"move", mailtest.IMAPOptions{}, 1},
		{"copy and expunge", mailtest.IMAPOptions{NoMove: true}, 1},
		{"copy, no UIDPLUS", mailtest.IMAPOptions{NoMove: true, NoUIDPlus: true}, 2},
		{"folder created", mailtest.IMAPOptions{Folders: []string{"INBOX"}}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := mailtest.StartIMAP(t, tc.opt)
			b := testbus.Start(t).Connect(t)
			mb := srv.Mailbox()
			mb.IMAP.MoveTo = "Processed"
			// Someone else's deleted mail must survive our moves.
			if err := srv.Append("INBOX", mail("<other@customer.example>", "li@customer.example", "old", "old"), imap.FlagSeen, imap.FlagDeleted); err != nil {
				t.Fatal(err)
			}
			srv.Deliver("INBOX", mail("<m1@customer.example>", "li@customer.example", "hi", "move me"))
			r := startConnector(t, b, Options{Mailboxes: []config.Mailbox{mb}}, nil)
			waitInbound(t, b, 1)
			testbus.CheckFor(t, 5*time.Second, 20*time.Millisecond, func() error {
				if n := srv.Count("Processed"); n != 1 {
					return fmt.Errorf("Processed holds %d", n)
				}
				if n := srv.Count("INBOX"); n != tc.inbox {
					return fmt.Errorf("INBOX holds %d", n)
				}
				return nil
			})
			// A restart neither reads nor moves anything again.
			r.stop()
			startConnector(t, b, Options{Mailboxes: []config.Mailbox{mb}}, nil)
			srv.Deliver("INBOX", mail("<m2@customer.example>", "li@customer.example", "hi", "and me"))
			waitInbound(t, b, 2)
			testbus.CheckFor(t, 5*time.Second, 20*time.Millisecond, func() error {
				if n := srv.Count("Processed"); n != 2 {
					return fmt.Errorf("Processed holds %d", n)
				}
				return nil
			})
			if got := inbound(t, b); len(got) != 2 {
				t.Fatalf("%d messages on the bus, want 2", len(got))
			}
		})
	}
}

// On its first start the connector reads the unread mail only: pointing
// it at a mailbox people already work in must not turn the mail they
// answered into new conversations (and acknowledgements).
func TestFirstStartReadsUnreadMailOnly(t *testing.T) {
	srv := mailtest.StartIMAP(t, mailtest.IMAPOptions{})
	b := testbus.Start(t).Connect(t)
	for i := range 3 {
		if err := srv.Append("INBOX", mail(fmt.Sprintf("<old%d@customer.example>", i), "li@customer.example", "old", "answered"), imap.FlagSeen); err != nil {
			t.Fatal(err)
		}
	}
	srv.Deliver("INBOX", mail("<new@customer.example>", "li@customer.example", "new", "not read yet"))
	if err := srv.Append("INBOX", mail("<old3@customer.example>", "li@customer.example", "old", "answered"), imap.FlagSeen); err != nil {
		t.Fatal(err)
	}
	startConnector(t, b, Options{Mailboxes: []config.Mailbox{srv.Mailbox()}}, nil)
	srv.Deliver("INBOX", mail("<later@customer.example>", "li@customer.example", "later", "arrived after the start"))
	got := waitInbound(t, b, 2)
	if len(got) != 2 || got[0].ChannelMessageID != "<new@customer.example>" || got[1].ChannelMessageID != "<later@customer.example>" {
		ids := []string{}
		for _, m := range got {
			ids = append(ids, m.ChannelMessageID)
		}
		t.Fatalf("read %v; want the unread mail and the new one only", ids)
	}
	cps, _ := openCheckpoints(context.Background(), b)
	if cp, err := cps.get(context.Background(), "support"); err != nil || cp.LastUID != 6 {
		t.Fatalf("checkpoint %+v (%v), want uid 6", cp, err)
	}
}

// A text that JSON makes three times larger ("<" is "\u003c") is cut to
// fit the bus instead of stopping the mailbox on it.
func TestHugeTextFitsTheBus(t *testing.T) {
	srv := mailtest.StartIMAP(t, mailtest.IMAPOptions{})
	b := testbus.Start(t).Connect(t)
	srv.Deliver("INBOX", mail("<huge@customer.example>", "li@customer.example", "logs", strings.Repeat("<&>", 280_000)))
	srv.Deliver("INBOX", mail("<after@customer.example>", "li@customer.example", "hi", "the next mail"))
	startConnector(t, b, Options{Mailboxes: []config.Mailbox{srv.Mailbox()}}, nil)
	got := waitInbound(t, b, 2)
	if got[0].ChannelMessageID != "<huge@customer.example>" || !strings.Contains(got[0].Extra[ExtraProblems], "text cut") ||
		!strings.HasPrefix(got[0].Text, "<&><&>") {
		t.Fatalf("huge mail became %q… (%s)", got[0].Text[:min(20, len(got[0].Text))], got[0].Extra[ExtraProblems])
	}
}

func TestQuarantineNamesAreUnique(t *testing.T) {
	names := map[string]bool{}
	for _, mb := range []string{"客服", "售后", "sales team", "sales_team", "support"} {
		n := quarantineName(mb, 7, 42)
		if names[n] {
			t.Errorf("%q and another mailbox share the quarantine name %s", mb, n)
		}
		names[n] = true
	}
	if n := quarantineName("support", 7, 42); !strings.HasPrefix(n, "support-") || !strings.HasSuffix(n, ".7.42") {
		t.Errorf("name %s does not say which mailbox and mail", n)
	}
}

// Bad mail goes to the quarantine with its reason and the mailbox moves
// on; an admin can list, re-run and drop it.
func TestQuarantine(t *testing.T) {
	srv := mailtest.StartIMAP(t, mailtest.IMAPOptions{})
	b := testbus.Start(t).Connect(t)
	bad := []byte("Subject: no sender at all\r\nMessage-ID: <bad@nowhere>\r\n\r\nwho wrote this?\r\n")
	srv.Deliver("INBOX", bad)
	srv.Deliver("INBOX", mail("<good@customer.example>", "li@customer.example", "hi", "fine"))
	r := startConnector(t, b, Options{Mailboxes: []config.Mailbox{srv.Mailbox()}}, nil)
	got := waitInbound(t, b, 1)
	if len(got) != 1 || got[0].ChannelMessageID != "<good@customer.example>" {
		t.Fatalf("bus holds %v", got)
	}
	ctx := context.Background()
	q, err := OpenQuarantine(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	var items []Quarantined
	testbus.CheckFor(t, 5*time.Second, 20*time.Millisecond, func() error {
		items, err = q.List(ctx)
		if err != nil || len(items) != 1 {
			return fmt.Errorf("quarantine %v (%v)", items, err)
		}
		return nil
	})
	it := items[0]
	if it.Mailbox != "support" || it.UID != 1 || it.Error == "" || it.Size != int64(len(bad)) {
		t.Fatalf("quarantined %+v", it)
	}
	t.Logf("quarantined: %s", it.Error)
	seen, _ := srv.Seen("INBOX", "<bad@nowhere>")
	if len(seen) != 1 || !seen[0] {
		t.Errorf("the quarantined mail is not marked read: %v", seen)
	}
	if _, err := r.c.Retry(ctx, q, it.Name); err == nil {
		t.Fatal("re-running unreadable mail succeeded")
	}
	if _, raw, err := q.Get(ctx, it.Name); err != nil || string(raw) != string(bad) {
		t.Fatalf("raw mail not kept as it was: %q (%v)", raw, err)
	}
	// A mail that reads now (say, after an upgrade) leaves the quarantine
	// for the bus.
	fixed := mail("<fixed@customer.example>", "li@customer.example", "hi", "readable now")
	if err := q.Put(ctx, Quarantined{Mailbox: "support", Address: testUser, UIDValidity: 1, UID: 99, Error: "old bug"}, fixed); err != nil {
		t.Fatal(err)
	}
	id, err := r.c.Retry(ctx, q, quarantineName("support", 1, 99))
	if err != nil || id == "" {
		t.Fatalf("retry: %q, %v", id, err)
	}
	waitInbound(t, b, 2)
	if err := q.Drop(ctx, it.Name); err != nil {
		t.Fatal(err)
	}
	if items, _ := q.List(ctx); len(items) != 0 {
		t.Fatalf("quarantine still holds %v", items)
	}
	if err := q.Drop(ctx, it.Name); !errors.Is(err, ErrNotQuarantined) {
		t.Fatalf("drop of a missing mail: %v", err)
	}
}

// A mail above max_size keeps its headers and a note; the mailbox goes on.
func TestOversizedMail(t *testing.T) {
	srv := mailtest.StartIMAP(t, mailtest.IMAPOptions{})
	b := testbus.Start(t).Connect(t)
	big := mail("<big@customer.example>", "li@customer.example", "scan of my card", strings.Repeat("A", 200<<10))
	srv.Deliver("INBOX", big)
	srv.Deliver("INBOX", mail("<small@customer.example>", "li@customer.example", "hi", "small"))
	startConnector(t, b, Options{Mailboxes: []config.Mailbox{srv.Mailbox()}, MaxSize: 64 << 10}, nil)
	got := waitInbound(t, b, 2)
	m := got[0]
	if m.ChannelMessageID != "<big@customer.example>" || m.Subject != "scan of my card" || m.Extra[ExtraOversize] == "" ||
		!strings.Contains(m.Text, "only its headers were read") {
		t.Fatalf("oversized mail became %+v", m)
	}
}

// Attachments go to the blob store; an automatic mail is marked as such;
// mail from our own address is a loop.
func TestAttachmentsAndAutomatic(t *testing.T) {
	srv := mailtest.StartIMAP(t, mailtest.IMAPOptions{})
	b := testbus.Start(t).Connect(t)
	blobs, err := blob.Open(t.TempDir(), 0)
	if err != nil {
		t.Fatal(err)
	}
	withFile := "From: li@customer.example\r\nTo: " + testUser + "\r\nSubject: receipt\r\nMessage-ID: <att@customer.example>\r\n" +
		"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b1\r\n\r\n--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" +
		"see the receipt\r\n--b1\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename=\"receipt.pdf\"\r\n" +
		"Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQKJcfsj6IK\r\n--b1--\r\n"
	srv.Deliver("INBOX", []byte(withFile))
	srv.Deliver("INBOX", mail("<ooo@customer.example>", "li@customer.example", "Automatic reply: hi", "I am away", "Auto-Submitted: auto-replied"))
	srv.Deliver("INBOX", mail("<self@wallet.example>", testUser, "Re: hi", "our own mail"))
	// A reply of ours, copied back by a customer's server, and a customer
	// whose mailer also makes ULID Message-IDs.
	srv.Deliver("INBOX", mail("<01JDKZ6Q3M8V5N7X2B4C6D8E0F@wallet.example>", "li@customer.example", "Re: hi", "our reply, back"))
	srv.Deliver("INBOX", mail("<01JDKZ6Q3M8V5N7X2B4C6D8E0G@mailer.shop.example>", "li@customer.example", "hi", "a person"))
	// The support address is a group: it marks what it forwards as list
	// mail. A newsletter is list mail from someone else's list.
	srv.Deliver("INBOX", mail("<grp@customer.example>", "li@customer.example", "help", "via the group",
		"Precedence: list", "List-Id: <support.wallet.example>"))
	srv.Deliver("INBOX", mail("<news@shop.example>", "news@shop.example", "Sale", "50% off", "Precedence: bulk", "List-Id: <news.shop.example>"))
	// The group rewrote the sender (DMARC) to itself and kept them in
	// Reply-To.
	srv.Deliver("INBOX", mail("<dmarc@customer.example>", "\"Li Lei via Support\" <"+testUser+">", "help", "rewritten",
		"Reply-To: Li Lei <li@customer.example>", "List-Id: Support <support.wallet.example>", "Precedence: list"))
	startConnector(t, b, Options{Mailboxes: []config.Mailbox{srv.Mailbox()}, Blobs: blobs}, nil)
	got := waitInbound(t, b, 8)
	if a := got[0].Attachments; len(a) != 1 || a[0].Name != "receipt.pdf" || a[0].ContentType != "application/pdf" ||
		!strings.HasPrefix(a[0].URL, "sha256:") || a[0].Size != 15 {
		t.Errorf("attachments %+v", a)
	}
	if got[1].Automatic != message.AutoReply || got[1].Extra[message.ExtraAutomaticReason] == "" {
		t.Errorf("auto-reply read as %q (%q)", got[1].Automatic, got[1].Extra[message.ExtraAutomaticReason])
	}
	if got[2].Automatic != message.Loop {
		t.Errorf("our own mail read as %q", got[2].Automatic)
	}
	if got[3].Automatic != message.Loop {
		t.Errorf("our own reply, back, read as %q", got[3].Automatic)
	}
	if got[4].Automatic != "" {
		t.Errorf("a customer's mail with a ULID Message-ID read as %q (%s)", got[4].Automatic, got[4].Extra[message.ExtraAutomaticReason])
	}
	if got[5].Automatic != "" {
		t.Errorf("a customer's mail through the support group read as %q (%s)", got[5].Automatic, got[5].Extra[message.ExtraAutomaticReason])
	}
	if got[6].Automatic != message.Bulk {
		t.Errorf("a newsletter read as %q", got[6].Automatic)
	}
	if m := got[7]; m.Automatic != "" || m.From.Address != "li@customer.example" || m.From.Name != "Li Lei" {
		t.Errorf("a mail the group rewrote read as %q from %+v", m.Automatic, m.From)
	}
}

// A bounce of one of our replies, from the mail system, fails that reply;
// the same report from anyone else does not.
func TestBounceFailsOurReply(t *testing.T) {
	srv := mailtest.StartIMAP(t, mailtest.IMAPOptions{})
	b := testbus.Start(t).Connect(t)
	const reply = "01JDKZ6Q3M8V5N7X2B4C6D8E0F"
	dsn := func(msgID, from string, extra ...string) []byte {
		var sb strings.Builder
		fmt.Fprintf(&sb, "From: %s\r\nTo: %s\r\nSubject: Undelivered Mail Returned to Sender\r\nMessage-ID: %s\r\n", from, testUser, msgID)
		for _, h := range extra {
			sb.WriteString(h + "\r\n")
		}
		sb.WriteString("MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=r\r\n\r\n" +
			"--r\r\nContent-Type: text/plain\r\n\r\nThe mail could not be delivered.\r\n" +
			"--r\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.wallet.example\r\n\r\n" +
			"Final-Recipient: rfc822; li@customer.example\r\nAction: failed\r\nStatus: 5.1.1\r\n" +
			"Diagnostic-Code: smtp; 550 5.1.1 user unknown\r\n" +
			"--r\r\nContent-Type: text/rfc822-headers\r\n\r\nFrom: " + testUser + "\r\nMessage-ID: <" + reply + "@wallet.example>\r\n" +
			"--r--\r\n")
		return []byte(sb.String())
	}
	srv.Deliver("INBOX", dsn("<forged@x.example>", "mallory@x.example"))
	srv.Deliver("INBOX", dsn("<dsn@mx.wallet.example>", "MAILER-DAEMON@mx.wallet.example", "Return-Path: <>"))
	startConnector(t, b, Options{Mailboxes: []config.Mailbox{srv.Mailbox()}}, nil)
	got := waitInbound(t, b, 2)
	for _, m := range got {
		if m.Automatic != message.Bounce || !slices.Contains(m.Thread.References, "<"+reply+"@wallet.example>") {
			t.Errorf("%s: automatic %q references %v", m.ChannelMessageID, m.Automatic, m.Thread.References)
		}
	}
	ctx := context.Background()
	st, err := b.JS.Stream(ctx, bus.StreamEvents)
	if err != nil {
		t.Fatal(err)
	}
	var reports []message.Delivery
	testbus.CheckFor(t, 5*time.Second, 20*time.Millisecond, func() error {
		reports = nil
		info, err := st.Info(ctx, jetstream.WithSubjectFilter(bus.DeliverySubject(message.Email)))
		if err != nil {
			return err
		}
		for seq := info.State.FirstSeq; info.State.Msgs > 0 && seq <= info.State.LastSeq; seq++ {
			raw, err := st.GetMsg(ctx, seq)
			if err != nil || raw.Subject != bus.DeliverySubject(message.Email) {
				continue
			}
			d, err := message.DecodeDelivery(raw.Data)
			if err != nil {
				return err
			}
			reports = append(reports, *d)
		}
		if len(reports) == 0 {
			return errors.New("no delivery report")
		}
		return nil
	})
	if len(reports) != 1 || reports[0].MessageID != reply || reports[0].Status != message.DeliveryFailed ||
		!strings.Contains(reports[0].Detail, "550 5.1.1 user unknown") {
		t.Fatalf("reports %+v; want one failure of %s with the diagnostic", reports, reply)
	}
}
