package email

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/inroute/inroute/config"
	"go.uber.org/zap"
)

// idleRenew bounds one IDLE: RFC 2177 asks clients to renew well before
// a server's 30-minute inactivity timeout.
const idleRenew = 25 * time.Minute

// errCrash ends a session where a test asked it to, as a crash would.
var errCrash = errors.New("simulated crash")

// reader reads one mailbox.
type reader struct {
	c   *Connector
	mb  config.Mailbox
	cps *checkpoints
	q   *Quarantine
	log *zap.Logger
	// watch bounds the commands of the current session.
	watch *watchdog
}

// run keeps a session open, reconnecting with a doubling backoff, until
// ctx ends.
func (r *reader) run(ctx context.Context) {
	wait := r.c.opt.BackoffMin
	for ctx.Err() == nil {
		start := time.Now()
		err := r.session(ctx)
		if ctx.Err() != nil {
			return
		}
		if time.Since(start) > time.Minute {
			// A session that lasted was healthy: the next failure is new.
			wait = r.c.opt.BackoffMin
		}
		r.log.Warn("imap session ended; reconnecting", zap.Duration("backoff", wait), zap.Error(err))
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = min(2*wait, r.c.opt.BackoffMax)
	}
}

// session is one connection: select the folder, catch up, then wait for
// new mail (IDLE or polling) and read it, until an error or ctx ends.
func (r *reader) session(ctx context.Context) error {
	wake := make(chan struct{}, 1)
	signal := func() {
		select {
		case wake <- struct{}{}:
		default:
		}
	}
	opt := &imapclient.Options{UnilateralDataHandler: &imapclient.UnilateralDataHandler{
		Mailbox: func(d *imapclient.UnilateralDataMailbox) {
			if d.NumMessages != nil {
				signal()
			}
		},
	}}
	c, err := dialIMAP(ctx, r.mb.IMAP, opt)
	if err != nil {
		return err
	}
	defer c.Close()
	// A stop closes the connection, which ends any command in flight.
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()

	// A server that stays connected but stops answering would hold a
	// command for ever: each gets cmdTimeout, then the connection goes.
	watch := newWatchdog(c)
	defer watch.stop()

	folder := r.mb.IMAP.Folder
	r.watch = watch
	if err := r.ensureMoveTo(c); err != nil {
		return err
	}
	var sel *imap.SelectData
	err = watch.run(func() (err error) { sel, err = c.Select(folder, nil).Wait(); return err })
	if err != nil {
		return fmt.Errorf("imap select %s: %w", folder, err)
	}
	cp, err := r.cps.get(ctx, r.mb.Name)
	if err != nil {
		return err
	}
	if cp.UIDValidity != sel.UIDValidity {
		if cp.UIDValidity != 0 {
			r.log.Warn("UIDVALIDITY changed: reading the folder again; mail seen before is dropped by its Message-ID",
				zap.Uint32("was", cp.UIDValidity), zap.Uint32("now", sel.UIDValidity))
		} else {
			r.log.Info("first start on this mailbox: reading its unread mail (all of it with move_to); mail already read stays as it is")
		}
		if err := r.resync(ctx, c, sel, cp); err != nil {
			return err
		}
		if cp, err = r.cps.get(ctx, r.mb.Name); err != nil {
			return err
		}
	}
	r.log.Info("mailbox open", zap.String("folder", folder), zap.Uint32("uid_validity", cp.UIDValidity),
		zap.Uint32("last_uid", cp.LastUID), zap.Bool("idle_offered", c.Caps().Has(imap.CapIdle)), zap.Bool("idle", r.idle(c)))
	// A crash between the checkpoint and \Seen (or the move) leaves
	// mail read but unmarked: finish the marking first.
	if err := r.finishMarking(c, cp); err != nil {
		return err
	}
	for {
		if err := r.drain(ctx, c, &cp); err != nil {
			return err
		}
		if err := r.waitForMail(ctx, c, wake); err != nil {
			return err
		}
	}
}

func (r *reader) idle(c *imapclient.Client) bool {
	return r.mb.IMAP.UseIDLE() && c.Caps().Has(imap.CapIdle)
}

// waitForMail returns when new mail may be there: the server said so
// during IDLE, or the poll interval passed.
func (r *reader) waitForMail(ctx context.Context, c *imapclient.Client, wake chan struct{}) error {
	every := r.mb.IMAP.PollEvery.D()
	if !r.idle(c) {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-wake:
		case <-time.After(every):
		}
		// NOOP lets the server tell us about new mail; the search that
		// follows finds it either way.
		if err := r.watch.run(func() error { return c.Noop().Wait() }); err != nil {
			return fmt.Errorf("imap noop: %w", err)
		}
		return nil
	}
	select {
	case <-wake: // news arrived with the last command
		return nil
	default:
	}
	var cmd *imapclient.IdleCommand
	if err := r.watch.run(func() (err error) { cmd, err = c.Idle(); return err }); err != nil {
		return fmt.Errorf("imap idle: %w", err)
	}
	t := time.NewTimer(min(every*25, idleRenew))
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-wake:
	case <-t.C:
	case <-c.Closed():
	}
	err := r.watch.run(func() error {
		if err := cmd.Close(); err != nil {
			return err
		}
		return cmd.Wait()
	})
	if err != nil {
		return fmt.Errorf("imap idle: %w", err)
	}
	return ctx.Err()
}

// search runs UID SEARCH under the watchdog.
func (r *reader) search(c *imapclient.Client, crit *imap.SearchCriteria) ([]imap.UID, error) {
	var data *imap.SearchData
	err := r.watch.run(func() (err error) { data, err = c.UIDSearch(crit, nil).Wait(); return err })
	if err != nil {
		return nil, err
	}
	uids := data.AllUIDs()
	slices.Sort(uids)
	return uids, nil
}

// drain reads every mail above the checkpoint, oldest first.
func (r *reader) drain(ctx context.Context, c *imapclient.Client, cp *checkpoint) error {
	uids, err := r.search(c, &imap.SearchCriteria{UID: []imap.UIDSet{{imap.UIDRange{Start: imap.UID(cp.LastUID + 1), Stop: 0}}}})
	if err != nil {
		return fmt.Errorf("imap search after uid %d: %w", cp.LastUID, err)
	}
	for _, uid := range uids {
		// "n:*" also names the highest UID when it is below n.
		if uint32(uid) <= cp.LastUID {
			continue
		}
		if err := r.one(ctx, c, uid, cp); err != nil {
			return err
		}
	}
	return nil
}

// one reads, hands on, checkpoints and marks one mail, in that order.
func (r *reader) one(ctx context.Context, c *imapclient.Client, uid imap.UID, cp *checkpoint) error {
	raw, date, oversize, err := r.fetch(c, uid)
	if err != nil {
		return err
	}
	if raw == nil {
		// Gone between the search and the fetch (expunged): nothing to read.
		r.log.Debug("mail vanished before it was read", zap.Uint32("uid", uint32(uid)))
	} else if err := r.c.ingest(ctx, r.mb, r.q, source{uidValidity: cp.UIDValidity, uid: uint32(uid), raw: raw, size: oversize}, r.log); err != nil {
		return err
	}
	if h := r.c.crash; h != nil && h("publish", uint32(uid)) {
		return errCrash
	}
	next := *cp
	next.LastUID = uint32(uid)
	if !date.IsZero() {
		next.LastAt = date
	}
	if err := r.cps.put(ctx, r.mb.Name, next); err != nil {
		return err
	}
	*cp = next
	if raw == nil {
		return nil
	}
	if h := r.c.crash; h != nil && h("checkpoint", uint32(uid)) {
		return errCrash
	}
	return r.mark(c, imap.UIDSetNum(uid))
}

// fetch reads one mail with BODY.PEEK (so \Seen stays ours to set). A
// mail above MaxSize is read as headers only and its size returned. A
// mail that is gone (expunged) is nil.
func (r *reader) fetch(c *imapclient.Client, uid imap.UID) (raw []byte, date time.Time, oversize int64, err error) {
	set := imap.UIDSetNum(uid)
	var meta []*imapclient.FetchMessageBuffer
	err = r.watch.run(func() (err error) {
		meta, err = c.Fetch(set, &imap.FetchOptions{UID: true, RFC822Size: true, InternalDate: true}).Collect()
		return err
	})
	if err != nil {
		return nil, time.Time{}, 0, fmt.Errorf("imap fetch size of uid %d: %w", uid, err)
	}
	if len(meta) == 0 {
		return nil, time.Time{}, 0, nil
	}
	date = meta[0].InternalDate
	section := &imap.FetchItemBodySection{Peek: true}
	if meta[0].RFC822Size > r.c.opt.MaxSize {
		oversize = meta[0].RFC822Size
		section = &imap.FetchItemBodySection{Specifier: imap.PartSpecifierHeader, Peek: true}
	}
	var bufs []*imapclient.FetchMessageBuffer
	err = r.watch.run(func() (err error) {
		bufs, err = c.Fetch(set, &imap.FetchOptions{UID: true, BodySection: []*imap.FetchItemBodySection{section}}).Collect()
		return err
	})
	if err != nil {
		return nil, time.Time{}, 0, fmt.Errorf("imap fetch uid %d: %w", uid, err)
	}
	if len(bufs) == 0 {
		return nil, date, 0, nil
	}
	raw = bufs[0].FindBodySection(section)
	if raw == nil {
		// The server answered without the body: a hiccup, not bad mail.
		// Quarantining would mark it read with nothing kept.
		return nil, time.Time{}, 0, fmt.Errorf("imap fetch uid %d: the server sent no body", uid)
	}
	return raw, date, oversize, nil
}

// ensureMoveTo makes sure the folder mail is moved to exists: a move to a
// missing folder would fail after every checkpoint and hold the mailbox.
func (r *reader) ensureMoveTo(c *imapclient.Client) error {
	to := r.mb.IMAP.MoveTo
	if to == "" {
		return nil
	}
	var found []*imap.ListData
	if err := r.watch.run(func() (err error) { found, err = c.List("", to, nil).Collect(); return err }); err != nil {
		return fmt.Errorf("imap list %s: %w", to, err)
	}
	if len(found) > 0 {
		return nil
	}
	if err := r.watch.run(func() error { return c.Create(to, nil).Wait() }); err != nil {
		return fmt.Errorf("imap.move_to folder %q does not exist and cannot be created: %w", to, err)
	}
	r.log.Info("created the move_to folder", zap.String("folder", to))
	return nil
}

// mark sets \Seen on, or moves, mail that is durable on the bus.
func (r *reader) mark(c *imapclient.Client, set imap.UIDSet) error {
	to := r.mb.IMAP.MoveTo
	seen := &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagSeen}}
	switch {
	case to == "":
		if err := r.watch.run(func() error { return c.Store(set, seen, nil).Close() }); err != nil {
			return fmt.Errorf("imap mark %s seen: %w", set, err)
		}
	case c.Caps().Has(imap.CapMove):
		if err := r.watch.run(func() error { _, err := c.Move(set, to).Wait(); return err }); err != nil {
			return fmt.Errorf("imap move %s to %s: %w", set, to, err)
		}
	default:
		// No MOVE: copy, and only once the copy is certain delete the
		// original. go-imap's own fallback sends all three at once, and
		// a plain EXPUNGE (no UIDPLUS) would remove every \Deleted mail
		// in the folder, not only ours: then the original stays, read
		// and marked \Deleted, for the server's own cleanup.
		if err := r.watch.run(func() error { _, err := c.Copy(set, to).Wait(); return err }); err != nil {
			return fmt.Errorf("imap copy %s to %s: %w", set, to, err)
		}
		del := &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagSeen, imap.FlagDeleted}}
		if err := r.watch.run(func() error { return c.Store(set, del, nil).Close() }); err != nil {
			return fmt.Errorf("imap mark %s deleted: %w", set, err)
		}
		if c.Caps().Has(imap.CapUIDPlus) {
			if err := r.watch.run(func() error { return c.UIDExpunge(set).Close() }); err != nil {
				return fmt.Errorf("imap expunge %s: %w", set, err)
			}
		}
	}
	return nil
}

// finishMarking marks mail at or below the checkpoint that is not marked
// yet: the connector stopped between the checkpoint and the mark.
func (r *reader) finishMarking(c *imapclient.Client, cp checkpoint) error {
	if cp.LastUID == 0 {
		return nil
	}
	crit := &imap.SearchCriteria{UID: []imap.UIDSet{{imap.UIDRange{Start: 1, Stop: imap.UID(cp.LastUID)}}}}
	if r.mb.IMAP.MoveTo == "" {
		crit.NotFlag = []imap.Flag{imap.FlagSeen}
	} else {
		crit.NotFlag = []imap.Flag{imap.FlagDeleted}
	}
	uids, err := r.search(c, crit)
	if err != nil {
		return fmt.Errorf("imap search unmarked: %w", err)
	}
	if len(uids) == 0 {
		return nil
	}
	r.log.Info("marking mail read before a stop", zap.Int("count", len(uids)))
	return r.mark(c, imap.UIDSetNum(uids...))
}

// resync reads a folder whose UIDs the checkpoint does not know: on the
// first start, or under a new UIDVALIDITY (the old UIDs mean nothing
// now). With move_to everything in the folder is still to be read. With
// \Seen marking it reads the unread mail and, after a UIDVALIDITY change,
// also the mail from the day before the last mail read onwards; what was
// read before is dropped by its Message-ID (the bus's duplicate window,
// then the store). On a first start, mail already read stays as it is:
// pointing inroute at a mailbox people work in must not turn years of
// answered mail into new conversations and acknowledgements.
func (r *reader) resync(ctx context.Context, c *imapclient.Client, sel *imap.SelectData, old checkpoint) error {
	var crit *imap.SearchCriteria
	switch {
	case r.mb.IMAP.MoveTo != "":
		crit = &imap.SearchCriteria{NotFlag: []imap.Flag{imap.FlagDeleted}}
	case old.UIDValidity == 0 || old.LastAt.IsZero():
		crit = &imap.SearchCriteria{NotFlag: []imap.Flag{imap.FlagSeen}}
	default:
		crit = &imap.SearchCriteria{Or: [][2]imap.SearchCriteria{{
			{NotFlag: []imap.Flag{imap.FlagSeen}},
			{Since: old.LastAt.Add(-24 * time.Hour)},
		}}}
	}
	uids, err := r.search(c, crit)
	if err != nil {
		return fmt.Errorf("imap resync search: %w", err)
	}
	r.log.Info("reading the folder", zap.Int("mails", len(uids)))
	cp := checkpoint{UIDValidity: sel.UIDValidity, LastAt: old.LastAt}
	for _, uid := range uids {
		if err := r.one(ctx, c, uid, &cp); err != nil {
			return err
		}
	}
	// Every UID below UIDNEXT was in the folder at SELECT and either read
	// now or left on purpose; mail that came since is above it.
	if sel.UIDNext > 1 && uint32(sel.UIDNext)-1 > cp.LastUID {
		cp.LastUID = uint32(sel.UIDNext) - 1
	}
	return r.cps.put(ctx, r.mb.Name, cp)
}

// cmdTimeout bounds one IMAP command (a 25 MiB fetch on a slow link
// included).
const cmdTimeout = 5 * time.Minute

// watchdog closes a connection whose command outlives cmdTimeout: go-imap
// has no per-command deadline, and a server that stops answering would
// hold the mailbox until the next stop.
type watchdog struct {
	t     *time.Timer
	fired atomic.Bool
}

func newWatchdog(c *imapclient.Client) *watchdog {
	w := &watchdog{}
	w.t = time.AfterFunc(time.Hour, func() {
		w.fired.Store(true)
		c.Close()
	})
	w.t.Stop()
	return w
}

func (w *watchdog) run(fn func() error) error {
	w.t.Reset(cmdTimeout)
	err := fn()
	w.t.Stop()
	if err != nil && w.fired.Load() {
		return fmt.Errorf("no answer within %s: %w", cmdTimeout, err)
	}
	return err
}

func (w *watchdog) stop() { w.t.Stop() }
