// Package email is the e-mail connector: it reads support mailboxes over
// IMAP (IDLE where the server has it, polling otherwise) and publishes each
// mail as a normalized message once, and sends agents' replies over SMTP
// so that they thread under the customer's mail.
//
// The order of every step is what makes it safe: a mail is published, then
// its UID is checkpointed in a KV bucket, then it is marked \Seen (or
// moved). A crash anywhere repeats at most the publish, which the bus drops
// by the mail's Message-ID.
package email
