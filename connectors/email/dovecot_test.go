//go:build linux

package email

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/inroute/inroute/bus"
	"github.com/inroute/inroute/bus/testbus"
	"github.com/inroute/inroute/config"
	"github.com/inroute/inroute/connectors/email/mailtest"
	"github.com/inroute/inroute/message"
)

// These tests run the connector against a real Dovecot (Debian package
// dovecot-imapd), each with its own throw-away instance: own config,
// own port, own Maildir, started as root and run as the packaged
// dovecot and dovenull users. Without root or Dovecot they skip.

// dovecot is one throw-away Dovecot IMAP server.
type dovecot struct {
	addr, user, password string
	// maildir is the user's Maildir: its cur/new/tmp are the INBOX,
	// folder(name) the others (Maildir++).
	maildir  string
	uid, gid int
	conf     string
	logPath  string
	cmd      *exec.Cmd
	exited   chan struct{}
	seq      atomic.Int64
}

// startDovecot runs a Dovecot for the test and stops it at the end.
func startDovecot(t *testing.T) *dovecot {
	t.Helper()
	const skip = "dovecot not installed (Debian package dovecot-imapd); .ci/run installs it"
	bin, err := exec.LookPath("dovecot")
	if err != nil {
		t.Skip(skip)
	}
	if _, err := exec.LookPath("doveadm"); err != nil {
		t.Skip(skip)
	}
	if os.Geteuid() != 0 {
		t.Skip("dovecot test needs root (Dovecot switches to its own users); .ci/run runs as root")
	}
	// The mail user is the packaged dovecot user: Dovecot refuses UID 0
	// for mail, and needs no account of ours this way.
	u, err := user.Lookup("dovecot")
	if err != nil {
		t.Skipf("dovecot test: no dovecot user (%v); the Debian package dovecot-core creates it", err)
	}
	if _, err := user.Lookup("dovenull"); err != nil {
		t.Skipf("dovecot test: no dovenull user (%v); the Debian package dovecot-core creates it", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)

	// A short folder of our own rather than t.TempDir: Dovecot's unix
	// sockets live under base_dir and their paths must stay short.
	dir, err := os.MkdirTemp("", "inroute-dovecot-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	for p := filepath.Dir(dir); ; p = filepath.Dir(p) {
		if fi, err := os.Stat(p); err != nil || fi.Mode().Perm()&0o001 == 0 {
			t.Fatalf("dovecot test: the dovecot user cannot reach %s (%v): set TMPDIR to a folder everyone may enter", p, err)
		}
		if p == filepath.Dir(p) {
			break
		}
	}
	d := &dovecot{user: testUser, password: testPassword, uid: uid, gid: gid,
		maildir: filepath.Join(dir, "home", "Maildir"), conf: filepath.Join(dir, "dovecot.conf"),
		logPath: filepath.Join(dir, "dovecot.log")}
	for _, sub := range []string{"cur", "new", "tmp"} {
		if err := os.MkdirAll(filepath.Join(d.maildir, sub), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// The dovecot user reads the config and the passwd file and owns the
	// mail: MkdirTemp's 0700 would shut it out.
	must(t, os.Chmod(dir, 0o755))
	home := filepath.Join(dir, "home")
	must(t, filepath.Walk(home, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Chown(p, uid, gid)
	}))
	passwd := filepath.Join(dir, "passwd")
	must(t, os.WriteFile(passwd, fmt.Appendf(nil, "%s:{PLAIN}%s:%d:%d::%s::\n", d.user, d.password, uid, gid, home), 0o644))

	// A free port can be taken between our probe and Dovecot's listen:
	// try again on another.
	for attempt := 1; ; attempt++ {
		err := d.start(t, bin, dir, passwd)
		if err == nil {
			break
		}
		if attempt == 3 {
			t.Fatalf("dovecot did not start: %v\n%s", err, d.logTail())
		}
		t.Logf("dovecot did not start (%v); trying another port", err)
	}
	t.Cleanup(func() { d.stop(t) })
	return d
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// dovecotConf is the whole configuration: a config given with -c does not
// read conf.d.
const dovecotConf = `# throw-away Dovecot of an inroute test
base_dir = {{dir}}/run
state_dir = {{dir}}/state
instance_name = inroute-test
log_path = {{dir}}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_verbose = yes
first_valid_uid = {{uid}}
first_valid_gid = {{gid}}
mail_location = maildir:~/Maildir
# The imap processes show their command (IDLE) in their title.
verbose_proctitle = yes
# IDLE learns of new mail through inotify at once; without it (limits
# reached) this is how often it looks instead of every 30s.
mailbox_idle_check_interval = 1 secs
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {{passwd}}
}
userdb {
  driver = passwd-file
  args = username_format=%u {{passwd}}
}
namespace inbox {
  inbox = yes
  separator = /
  mailbox Processed {
    auto = create
  }
  mailbox Sent {
    auto = create
    special_use = \Sent
  }
}
service imap-login {
  chroot =
  inet_listener imap {
    address = 127.0.0.1
    port = {{port}}
  }
}
service anvil {
  chroot =
}
`

// start writes the config for a free port and runs Dovecot in the
// foreground until its IMAP port answers.
func (d *dovecot) start(t *testing.T, bin, dir, passwd string) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	d.addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	conf := strings.NewReplacer("{{dir}}", dir, "{{passwd}}", passwd, "{{port}}", strconv.Itoa(port),
		"{{uid}}", strconv.Itoa(d.uid), "{{gid}}", strconv.Itoa(d.gid)).Replace(dovecotConf)
	if err := os.WriteFile(d.conf, []byte(conf), 0o644); err != nil {
		return err
	}
	out, err := os.Create(filepath.Join(dir, "stdout.log"))
	if err != nil {
		return err
	}
	defer out.Close()
	d.cmd = exec.Command(bin, "-F", "-c", d.conf)
	d.cmd.Stdout, d.cmd.Stderr = out, out
	// Should the test binary die, Dovecot goes with it.
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := d.cmd.Start(); err != nil {
		return err
	}
	d.exited = make(chan struct{})
	go func() {
		_ = d.cmd.Wait()
		close(d.exited)
	}()
	deadline := time.Now().Add(15 * time.Second)
	for {
		select {
		case <-d.exited:
			msg, _ := os.ReadFile(filepath.Join(dir, "stdout.log"))
			return fmt.Errorf("dovecot exited: %s %s", d.cmd.ProcessState, bytes.TrimSpace(msg))
		default:
		}
		if greeting(d.addr) == nil {
			return nil
		}
		if time.Now().After(deadline) {
			d.kill()
			return errors.New("no IMAP greeting within 15s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// greeting connects to addr and reads the server's first line.
func greeting(addr string) error {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, "* OK") {
		return fmt.Errorf("greeting %q", line)
	}
	return nil
}

// stop asks Dovecot to stop and kills it if it does not.
func (d *dovecot) stop(t *testing.T) {
	if t.Failed() {
		t.Logf("dovecot log:\n%s", d.logTail())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "doveadm", "-c", d.conf, "stop").CombinedOutput(); err != nil {
		t.Logf("doveadm stop: %v %s", err, out)
	}
	select {
	case <-d.exited:
	case <-time.After(5 * time.Second):
		t.Log("dovecot still running after doveadm stop: killed")
		d.kill()
	}
}

func (d *dovecot) kill() {
	_ = d.cmd.Process.Kill()
	<-d.exited
}

// logTail is the end of Dovecot's log, for a failure.
func (d *dovecot) logTail() string {
	b, err := os.ReadFile(d.logPath)
	if err != nil {
		return err.Error()
	}
	if len(b) > 8<<10 {
		b = b[len(b)-8<<10:]
	}
	return string(b)
}

// deliver puts raw into the INBOX as a local delivery agent does: written
// into tmp/, then renamed into new/.
func (d *dovecot) deliver(t *testing.T, raw []byte) {
	t.Helper()
	name := fmt.Sprintf("%d.M%dP%dQ%d.inroute-test", time.Now().Unix(), time.Now().Nanosecond()/1000, os.Getpid(), d.seq.Add(1))
	tmp := filepath.Join(d.maildir, "tmp", name)
	must(t, os.WriteFile(tmp, raw, 0o600))
	must(t, os.Chown(tmp, d.uid, d.gid))
	must(t, os.Rename(tmp, filepath.Join(d.maildir, "new", name)))
}

// folder is the Maildir++ folder of a mailbox other than the INBOX.
func (d *dovecot) folder(name string) string { return filepath.Join(d.maildir, "."+name) }

// mailbox is the connector's config for this server.
func (d *dovecot) mailbox() config.Mailbox {
	return config.Mailbox{Name: "support", Address: testUser, IMAP: config.IMAP{
		Addr: d.addr, TLS: config.TLSNone, User: d.user, Password: d.password, Folder: "INBOX",
		PollEvery: config.Duration(time.Minute),
	}}
}

// account is the test's own login, for its view of the mailbox next to
// the connector's.
func (d *dovecot) account() mailtest.Account {
	return mailtest.Account{Addr: d.addr, User: d.user, Password: d.password}
}

// waitSeen waits until the mail msgID is in the INBOX once and \Seen.
func (d *dovecot) waitSeen(t *testing.T, msgID string) {
	t.Helper()
	testbus.CheckFor(t, 10*time.Second, 50*time.Millisecond, func() error {
		seen, err := d.account().Seen("INBOX", msgID)
		if err != nil || len(seen) != 1 || !seen[0] {
			return fmt.Errorf("%s: seen %v (%v)", msgID, seen, err)
		}
		return nil
	})
}

// status returns how many mails folder holds and its UIDVALIDITY.
func (d *dovecot) status(folder string) (n int, uidValidity uint32, err error) {
	err = d.account().Session(func(c *imapclient.Client) error {
		st, err := c.Status(folder, &imap.StatusOptions{NumMessages: true, UIDValidity: true}).Wait()
		if err != nil {
			return err
		}
		n, uidValidity = int(*st.NumMessages), st.UIDValidity
		return nil
	})
	return n, uidValidity, err
}

var (
	dovecotLoginLine = regexp.MustCompile(`imap-login: Info: Login: .*session=<([^>]+)>`)
	dovecotEndLine   = regexp.MustCompile(`imap\([^)]*\)<\d+><([^>]+)>: Info: Disconnected.* body_count=(\d+)`)
)

// bodiesFetched waits until every IMAP session so far has ended and
// returns how many mail bodies they fetched in all, from Dovecot's own
// account of each session (its log line at the end). The test's own
// sessions (account().Seen) fetch flags only: the count is the connector's.
func (d *dovecot) bodiesFetched(t *testing.T) int {
	t.Helper()
	var total int
	testbus.CheckFor(t, 10*time.Second, 50*time.Millisecond, func() error {
		b, err := os.ReadFile(d.logPath)
		if err != nil {
			return err
		}
		open := map[string]bool{}
		for _, m := range dovecotLoginLine.FindAllSubmatch(b, -1) {
			open[string(m[1])] = true
		}
		total = 0
		for _, m := range dovecotEndLine.FindAllSubmatch(b, -1) {
			delete(open, string(m[1]))
			n, _ := strconv.Atoi(string(m[2]))
			total += n
		}
		if len(open) > 0 {
			return fmt.Errorf("%d IMAP sessions still open", len(open))
		}
		return nil
	})
	return total
}

// idling reports (as nil) that an imap process of this Dovecot is in
// IDLE: with verbose_proctitle its title ends in "IDLE]".
func (d *dovecot) idling() error {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return err
	}
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces and parentheses.
		rest := stat[bytes.LastIndexByte(stat, ')')+1:]
		f := strings.Fields(string(rest))
		if len(f) < 2 || f[1] != strconv.Itoa(d.cmd.Process.Pid) {
			continue
		}
		title, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if bytes.Contains(title, []byte("/imap [")) && bytes.Contains(title, []byte(" IDLE]")) {
			return nil
		}
	}
	return errors.New("no imap session of this dovecot is in IDLE")
}

// gbkMail is a mail as a Chinese mail client in its legacy setting sends
// it: GBK in encoded words and an 8bit GBK body.
func gbkMail(t *testing.T, msgID, name, subject, body string) []byte {
	t.Helper()
	var b bytes.Buffer
	fmt.Fprintf(&b, "From: %s <han@customer.example>\r\nTo: %s\r\nSubject: %s\r\nDate: Tue, 04 Jun 2024 09:30:00 +0800\r\nMessage-ID: %s\r\n",
		mailtest.GBKWord(name), testUser, mailtest.GBKWord(subject), msgID)
	b.WriteString("MIME-Version: 1.0\r\nContent-Type: text/plain; charset=GBK\r\nContent-Transfer-Encoding: 8bit\r\n\r\n")
	b.Write(mailtest.GBK(strings.ReplaceAll(body, "\n", "\r\n") + "\r\n"))
	if utf8.Valid(b.Bytes()) {
		t.Fatal("the GBK mail is valid UTF-8: it tests nothing")
	}
	return b.Bytes()
}

func byMessageID(got []*message.Message) map[string][]*message.Message {
	out := map[string][]*message.Message{}
	for _, m := range got {
		out[m.ChannelMessageID] = append(out[m.ChannelMessageID], m)
	}
	return out
}

// Mail waiting before the start is published once and marked \Seen; a
// GBK mail arrives as Chinese text.
func TestDovecotReadsWaitingMail(t *testing.T) {
	d := startDovecot(t)
	b := testbus.Start(t).Connect(t)
	d.deliver(t, mail("<d1@customer.example>", "=?UTF-8?B?5p2O6Zu3?= <li@customer.example>", "=?UTF-8?B?5YWF5YC85rKh5pyJ5Yiw6LSm?=",
		"我的充值没有到账"))
	d.deliver(t, gbkMail(t, "<d2@customer.example>", "韩梅梅", "退款还没有收到", "你好，我上周申请的退款还没有收到，请帮忙查一下。"))
	r := startConnector(t, b, Options{Mailboxes: []config.Mailbox{d.mailbox()}}, nil)
	waitInbound(t, b, 2)
	d.waitSeen(t, "<d1@customer.example>")
	d.waitSeen(t, "<d2@customer.example>")
	r.stop()

	got := inbound(t, b)
	ids := byMessageID(got)
	if len(got) != 2 || len(ids["<d1@customer.example>"]) != 1 || len(ids["<d2@customer.example>"]) != 1 {
		t.Fatalf("bus holds %d messages: %v", len(got), ids)
	}
	utf, gbk := ids["<d1@customer.example>"][0], ids["<d2@customer.example>"][0]
	checks := []struct{ name, got, want string }{
		{"utf-8 from name", utf.From.Name, "李雷"},
		{"utf-8 subject", utf.Subject, "充值没有到账"},
		{"utf-8 text", utf.Text, "我的充值没有到账"},
		{"gbk from", gbk.From.Address, "han@customer.example"},
		{"gbk from name", gbk.From.Name, "韩梅梅"},
		{"gbk subject", gbk.Subject, "退款还没有收到"},
		{"gbk text", strings.TrimSpace(gbk.Text), "你好，我上周申请的退款还没有收到，请帮忙查一下。"},
		{"gbk mailbox", gbk.Extra[ExtraMailbox], "support"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: %q, want %q", c.name, c.got, c.want)
		}
	}
	if n := d.bodiesFetched(t); n != 2 {
		t.Errorf("the connector fetched %d mail bodies from Dovecot, want 2", n)
	}
	_, validity, err := d.status("INBOX")
	if err != nil {
		t.Fatal(err)
	}
	cps, err := openCheckpoints(context.Background(), b)
	if err != nil {
		t.Fatal(err)
	}
	cp, err := cps.get(context.Background(), "support")
	if err != nil || cp.LastUID != 2 || cp.UIDValidity != validity {
		t.Fatalf("checkpoint %+v (%v), want uid 2 under Dovecot's UIDVALIDITY %d", cp, err, validity)
	}
}

// IDLE: with polling set to an hour, mail delivered while the connector
// waits is on the bus within seconds.
func TestDovecotIdleWakes(t *testing.T) {
	d := startDovecot(t)
	b := testbus.Start(t).Connect(t)
	mb := d.mailbox()
	mb.IMAP.PollEvery = config.Duration(time.Hour)
	startConnector(t, b, Options{Mailboxes: []config.Mailbox{mb}}, nil)
	for i := 1; i <= 2; i++ {
		// The connector is in IDLE (again, after the first mail).
		testbus.CheckFor(t, 10*time.Second, 20*time.Millisecond, d.idling)
		at := time.Now()
		id := fmt.Sprintf("<idle%d@customer.example>", i)
		d.deliver(t, mail(id, "li@customer.example", "still waiting", fmt.Sprintf("mail %d", i)))
		testbus.CheckFor(t, 5*time.Second, 20*time.Millisecond, func() error {
			if n := len(inbound(t, b)); n != i {
				return fmt.Errorf("%d messages on the bus, want %d", n, i)
			}
			return nil
		})
		t.Logf("mail %d on the bus %v after its delivery", i, time.Since(at).Round(time.Millisecond))
		d.waitSeen(t, id)
	}
}

// A restart reads on from the checkpoint: nothing is read twice, and mail
// that came while the connector was stopped arrives once.
func TestDovecotRestartKeepsCheckpoint(t *testing.T) {
	d := startDovecot(t)
	b := testbus.Start(t).Connect(t)
	for i := 1; i <= 2; i++ {
		d.deliver(t, mail(fmt.Sprintf("<r%d@customer.example>", i), "li@customer.example", "hi", fmt.Sprintf("mail %d", i)))
	}
	first := startConnector(t, b, Options{Mailboxes: []config.Mailbox{d.mailbox()}}, nil)
	waitInbound(t, b, 2)
	d.waitSeen(t, "<r2@customer.example>")
	first.stop()
	before := d.bodiesFetched(t)
	if before != 2 {
		t.Errorf("the first connector fetched %d mail bodies, want 2", before)
	}

	d.deliver(t, mail("<r3@customer.example>", "li@customer.example", "hi", "mail 3, while stopped"))
	second := startConnector(t, b, Options{Mailboxes: []config.Mailbox{d.mailbox()}}, nil)
	waitInbound(t, b, 3)
	d.waitSeen(t, "<r3@customer.example>")
	second.stop()
	if n := d.bodiesFetched(t) - before; n != 1 {
		t.Errorf("the restarted connector fetched %d mail bodies, want 1 (the new mail only): the checkpoint was not honoured", n)
	}
	got := inbound(t, b)
	ids := byMessageID(got)
	for i := 1; i <= 3; i++ {
		if n := len(ids[fmt.Sprintf("<r%d@customer.example>", i)]); n != 1 {
			t.Errorf("mail %d is on the bus %d times, want 1", i, n)
		}
	}
	if len(got) != 3 {
		t.Errorf("%d messages on the bus, want 3", len(got))
	}
	for i := 1; i <= 2; i++ {
		d.waitSeen(t, fmt.Sprintf("<r%d@customer.example>", i))
	}
	cps, err := openCheckpoints(context.Background(), b)
	if err != nil {
		t.Fatal(err)
	}
	if cp, err := cps.get(context.Background(), "support"); err != nil || cp.LastUID != 3 {
		t.Fatalf("checkpoint %+v (%v), want uid 3", cp, err)
	}
}

// move_to: mail read goes to Processed (Dovecot's MOVE), waiting mail and
// new mail alike.
func TestDovecotMoveTo(t *testing.T) {
	d := startDovecot(t)
	b := testbus.Start(t).Connect(t)
	mb := d.mailbox()
	mb.IMAP.MoveTo = "Processed"
	for i := 1; i <= 2; i++ {
		d.deliver(t, mail(fmt.Sprintf("<m%d@customer.example>", i), "li@customer.example", "hi", fmt.Sprintf("move me %d", i)))
	}
	startConnector(t, b, Options{Mailboxes: []config.Mailbox{mb}}, nil)
	waitInbound(t, b, 2)
	moved := func(want int) func() error {
		return func() error {
			in, _, err := d.status("INBOX")
			if err != nil {
				return err
			}
			done, _, err := d.status("Processed")
			if err != nil {
				return err
			}
			if in != 0 || done != want {
				return fmt.Errorf("INBOX %d, Processed %d; want 0 and %d", in, done, want)
			}
			return nil
		}
	}
	testbus.CheckFor(t, 10*time.Second, 50*time.Millisecond, moved(2))
	testbus.CheckFor(t, 10*time.Second, 20*time.Millisecond, d.idling)
	d.deliver(t, mail("<m3@customer.example>", "li@customer.example", "hi", "move me too"))
	waitInbound(t, b, 3)
	testbus.CheckFor(t, 10*time.Second, 50*time.Millisecond, moved(3))
	// On disk too: the Processed Maildir holds the three files.
	var files int
	for _, sub := range []string{"cur", "new"} {
		ents, err := os.ReadDir(filepath.Join(d.folder("Processed"), sub))
		if err != nil {
			t.Fatal(err)
		}
		files += len(ents)
	}
	if files != 3 {
		t.Errorf("%d mail files in Processed, want 3", files)
	}
	if got := inbound(t, b); len(got) != 3 {
		t.Errorf("%d messages on the bus, want 3", len(got))
	}
}

// A reply sent by SMTP is filed in Dovecot's Sent folder, byte for byte
// the mail sent, and marked \Seen.
func TestDovecotSentCopy(t *testing.T) {
	d := startDovecot(t)
	b := testbus.Start(t).Connect(t)
	mx := mailtest.StartSMTP(t, mailtest.SMTPOptions{})
	mb := d.mailbox()
	mb.SMTP = config.SMTP{Addr: mx.Addr(), TLS: config.TLSNone, From: testUser, SentFolder: "Sent"}
	startConnector(t, b, Options{Mailboxes: []config.Mailbox{mb}, Send: true}, nil)

	out := message.Outbound{V: message.OutboundVersion, ID: "reply-1", ConversationID: 7, Channel: message.Email,
		To: "li@customer.example", From: testUser, Subject: "Re: 充值没有到账", Text: "您好，您的充值已经到账。",
		Thread: message.Thread{InReplyTo: "<d1@customer.example>", References: []string{"<d1@customer.example>"}},
		Agent:  "alice", CreatedAt: time.Now().UTC()}
	data, err := json.Marshal(out)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Publish(context.Background(), bus.OutboundSubject(message.Email), data, out.ID, nil); err != nil {
		t.Fatal(err)
	}
	testbus.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		if n := len(mx.Received()); n != 1 {
			return fmt.Errorf("%d mails sent, want 1", n)
		}
		return nil
	})
	sent := mx.Received()[0].Data
	var filed []mailtest.Stored
	testbus.CheckFor(t, 10*time.Second, 50*time.Millisecond, func() error {
		var err error
		if filed, err = d.account().Fetch("Sent"); err != nil {
			return err
		}
		if len(filed) != 1 {
			return fmt.Errorf("Sent holds %d mails, want 1", len(filed))
		}
		return nil
	})
	if !bytes.Equal(filed[0].Raw, sent) {
		t.Errorf("the Sent copy differs from the mail sent:\n%s\n---\n%s", filed[0].Raw, sent)
	}
	if !filed[0].Has(imap.FlagSeen) {
		t.Errorf("the Sent copy has flags %v, want \\Seen", filed[0].Flags)
	}
	if n, _, err := d.status("INBOX"); err != nil || n != 0 {
		t.Errorf("INBOX holds %d mails (%v), want none", n, err)
	}
}
