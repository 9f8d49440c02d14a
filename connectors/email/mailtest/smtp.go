package mailtest

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"github.com/inroute/inroute/config"
)

// SMTPOptions configures StartSMTP. The zero value is a plain server that
// takes mail from anyone.
type SMTPOptions struct {
	// TLS is a config TLS mode: config.TLSNone (or ""), config.TLSStart
	// (STARTTLS offered) or config.TLSImplicit (TLS from the first byte).
	// The certificate is self-signed for 127.0.0.1 and localhost: a
	// client has to skip verifying it.
	TLS string
	// User and Password, when User is set, are the one login, by AUTH
	// PLAIN, required before MAIL.
	User, Password string
	// Listener, when set, is served instead of a new one on
	// 127.0.0.1:0 (a server that comes up at an address known before).
	Listener net.Listener
	// DataDelay holds the answer to the end of DATA this long: a slow
	// server, with the mail in flight.
	DataDelay time.Duration
}

// Stage is where in a transaction a programmed failure answers.
type Stage string

// The stages of FailNext.
const (
	AtMail Stage = "mail"
	AtRcpt Stage = "rcpt"
	AtData Stage = "data"
)

// The stages of FailSessions: steps of a session before any transaction.
const (
	// AtGreeting answers the connection with the error instead of 220
	// (an IP on a blocklist), then every command but QUIT with 503.
	AtGreeting Stage = "greeting"
	// AtHello answers the first EHLO (or HELO) with the error.
	AtHello Stage = "hello"
	// AtAuth answers AUTH with the error (an expired password).
	AtAuth Stage = "auth"
)

// Mail is one mail the double accepted: its envelope, its DATA as
// received, and how the session was.
type Mail struct {
	From  string
	Rcpts []string
	Data  []byte
	// TLS: the session was encrypted (STARTTLS or implicit).
	TLS bool
	// AuthUser is who logged in ("" without AUTH).
	AuthUser string
	// Helo is the name of the client's last EHLO before the mail (after
	// STARTTLS: the one sent encrypted).
	Helo string
}

// SMTP is a running SMTP double.
type SMTP struct {
	addr string
	opt  SMTPOptions

	mu       sync.Mutex
	mails    []Mail
	failures []failure
	sessions map[Stage][]*smtp.SMTPError
	hellos   []string
	// conns holds the programmed AUTH failure of each connection seen:
	// go-smtp makes a new session after STARTTLS, on the same one.
	conns map[*smtp.Conn]*smtp.SMTPError
}

// failure is the answer to one transaction at one stage.
type failure struct {
	at  Stage
	err *smtp.SMTPError
}

var (
	_ smtp.Backend     = (*SMTP)(nil)
	_ smtp.AuthSession = (*session)(nil)
)

// StartSMTP runs go-smtp's server on 127.0.0.1 (a free port) until the
// test ends. It accepts every mail, and SMTPUTF8 addresses, unless told
// to fail (FailNext).
func StartSMTP(t testing.TB, opt SMTPOptions) *SMTP {
	t.Helper()
	ln := opt.Listener
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
	}
	s := &SMTP{addr: ln.Addr().String(), opt: opt, sessions: map[Stage][]*smtp.SMTPError{},
		conns: map[*smtp.Conn]*smtp.SMTPError{}}
	srv := smtp.NewServer(s)
	srv.Domain = "smtp.test"
	srv.ReadTimeout = 10 * time.Second
	srv.WriteTimeout = 10 * time.Second
	srv.MaxMessageBytes = 10 << 20
	srv.EnableSMTPUTF8 = true
	srv.ErrorLog = log.New(io.Discard, "", 0)
	switch opt.TLS {
	case config.TLSStart:
		srv.TLSConfig = serverTLS(t)
	case config.TLSImplicit:
		ln = tls.NewListener(ln, serverTLS(t))
	}
	ln = &refusingListener{Listener: ln, s: s}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if srv.Shutdown(ctx) != nil {
			_ = srv.Close()
		}
	})
	return s
}

// serverTLS is a TLS configuration with a fresh self-signed certificate
// for 127.0.0.1 and localhost.
func serverTLS(t testing.TB) *tls.Config {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "smtp.test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}, MinVersion: tls.VersionTLS12}
}

// Addr is the server's host:port.
func (s *SMTP) Addr() string { return s.addr }

// FailNext answers the next n transactions with err at stage at (the
// transactions before that stage go on as usual). A transaction takes
// its programmed answer at MAIL.
func (s *SMTP) FailNext(at Stage, err *smtp.SMTPError, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.failures = append(s.failures, failure{at: at, err: err})
	}
}

// FailSessions answers the next n sessions (connections) with err at
// stage at: AtGreeting, AtHello or AtAuth. Each stage has its own queue.
func (s *SMTP) FailSessions(at Stage, err *smtp.SMTPError, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.sessions[at] = append(s.sessions[at], err)
	}
}

// sessionFailure takes the next programmed failure at stage at, nil if
// none.
func (s *SMTP) sessionFailure(at Stage) *smtp.SMTPError {
	s.mu.Lock()
	defer s.mu.Unlock()
	q := s.sessions[at]
	if len(q) == 0 {
		return nil
	}
	s.sessions[at] = q[1:]
	return q[0]
}

// Hellos is the name each session greeted with first (its first EHLO or
// HELO: before STARTTLS, on a STARTTLS session), in order.
func (s *SMTP) Hellos() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.hellos)
}

// refusingListener answers the connections that have an AtGreeting
// failure itself.
type refusingListener struct {
	net.Listener
	s *SMTP
}

func (l *refusingListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if e := l.s.sessionFailure(AtGreeting); e != nil {
			go refuse(c, e)
			continue
		}
		return c, nil
	}
}

// refuse greets with e, then answers like a server that will not serve:
// 503 to everything but QUIT.
func refuse(c net.Conn, e *smtp.SMTPError) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	answer := strconv.Itoa(e.Code)
	if ec := e.EnhancedCode; ec != smtp.EnhancedCodeNotSet && ec != smtp.NoEnhancedCode {
		answer += fmt.Sprintf(" %d.%d.%d", ec[0], ec[1], ec[2])
	}
	if _, err := io.WriteString(c, answer+" "+e.Message+"\r\n"); err != nil {
		return
	}
	r := bufio.NewReader(c)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		if strings.EqualFold(strings.TrimSpace(line), "QUIT") {
			_, _ = io.WriteString(c, "221 2.0.0 Bye\r\n")
			return
		}
		if _, err := io.WriteString(c, "503 5.5.1 No SMTP service here\r\n"); err != nil {
			return
		}
	}
}

// Received is every mail accepted so far, in order.
func (s *SMTP) Received() []Mail {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.mails)
}

// NewSession implements smtp.Backend.
// It is called at the first EHLO (or HELO) of a connection, and at the
// first after STARTTLS.
func (s *SMTP) NewSession(c *smtp.Conn) (smtp.Session, error) {
	s.mu.Lock()
	authFail, seen := s.conns[c]
	if !seen {
		s.hellos = append(s.hellos, c.Hostname())
	}
	s.mu.Unlock()
	if !seen {
		if e := s.sessionFailure(AtHello); e != nil {
			return nil, e
		}
		authFail = s.sessionFailure(AtAuth)
		s.mu.Lock()
		s.conns[c] = authFail
		s.mu.Unlock()
	}
	return &session{s: s, conn: c, authFail: authFail}, nil
}

type session struct {
	s        *SMTP
	conn     *smtp.Conn
	authUser string
	from     string
	rcpts    []string
	fail     *failure
	authFail *smtp.SMTPError
}

// AuthMechanisms implements smtp.AuthSession.
func (ss *session) AuthMechanisms() []string {
	if ss.s.opt.User == "" {
		return nil
	}
	return []string{sasl.Plain}
}

// Auth implements smtp.AuthSession.
func (ss *session) Auth(string) (sasl.Server, error) {
	if ss.authFail != nil {
		return nil, ss.authFail
	}
	return sasl.NewPlainServer(func(_, username, password string) error {
		if username != ss.s.opt.User || password != ss.s.opt.Password {
			return smtp.ErrAuthFailed
		}
		ss.authUser = username
		return nil
	}), nil
}

func (ss *session) Mail(from string, _ *smtp.MailOptions) error {
	if ss.s.opt.User != "" && ss.authUser == "" {
		return smtp.ErrAuthRequired
	}
	ss.from = from
	ss.s.mu.Lock()
	if len(ss.s.failures) > 0 {
		f := ss.s.failures[0]
		ss.s.failures = ss.s.failures[1:]
		ss.fail = &f
	}
	ss.s.mu.Unlock()
	if ss.fail != nil && ss.fail.at == AtMail {
		return ss.fail.err
	}
	return nil
}

func (ss *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	if ss.fail != nil && ss.fail.at == AtRcpt {
		return ss.fail.err
	}
	ss.rcpts = append(ss.rcpts, to)
	return nil
}

func (ss *session) Data(r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	time.Sleep(ss.s.opt.DataDelay)
	if ss.fail != nil && ss.fail.at == AtData {
		return ss.fail.err
	}
	_, encrypted := ss.conn.TLSConnectionState()
	ss.s.mu.Lock()
	ss.s.mails = append(ss.s.mails, Mail{From: ss.from, Rcpts: slices.Clone(ss.rcpts), Data: data, TLS: encrypted, AuthUser: ss.authUser,
		Helo: ss.conn.Hostname()})
	ss.s.mu.Unlock()
	return nil
}

func (ss *session) Reset() {
	ss.from, ss.rcpts, ss.fail = "", nil, nil
}

func (ss *session) Logout() error { return nil }
