// Package mailtest holds protocol-level doubles of the mail servers the
// e-mail connector talks to, for tests of the connector and of the whole
// system:
//
//   - StartIMAP: go-imap's IMAP server over its in-memory backend, one
//     user with a few folders, where a test delivers mail as a mail server
//     would on arrival and reads back what the connector did to it (\Seen,
//     moved, filed in Sent).
//   - StartSMTP: go-smtp's server, recording every mail it accepts
//     (envelope and DATA), with the TLS modes and AUTH of a submission
//     server, and programmed failures at MAIL, RCPT or DATA.
//   - Account: a test's own IMAP login, on the double or on a real server
//     (the Dovecot the connector's tests run), to look at a mailbox next
//     to the connector.
//   - GBK and GBKWord: text and headers as a Chinese mail client in its
//     legacy setting writes them, for the mails a test delivers.
//
// Every server listens on 127.0.0.1 on a free port and is stopped by the
// test's cleanup.
package mailtest
