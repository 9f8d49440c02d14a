package email

import (
	"context"
	"errors"
	"fmt"
	"slices"
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

	folder := r.mb.IMAP.Folder
	sel, err := c.Select(folder, nil).Wait()
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
			if err := r.resync(ctx, c, sel, cp); err != nil {
				return err
			}
			if cp, err = r.cps.get(ctx, r.mb.Name); err != nil {
				return err
			}
		} else {
			cp = checkpoint{UIDValidity: sel.UIDValidity}
		}
	}
	r.log.Info("mailbox open", zap.String("folder", folder), zap.Uint32("uid_validity", cp.UIDValidity),
		zap.Uint32("last_uid", cp.LastUID), zap.Bool("idle", r.idle(c)))
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
		// NOOP lets the server tell us about new mail; the fetch that
		// follows finds it either way.
		return c.Noop().Wait()
	}
	select {
	case <-wake: // news arrived with the last command
		return nil
	default:
	}
	cmd, err := c.Idle()
	if err != nil {
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
	if err := cmd.Close(); err != nil {
		return fmt.Errorf("imap idle done: %w", err)
	}
	if err := cmd.Wait(); err != nil {
		return fmt.Errorf("imap idle: %w", err)
	}
	return ctx.Err()
}

// drain reads every mail above the checkpoint, oldest first.
func (r *reader) drain(ctx context.Context, c *imapclient.Client, cp *checkpoint) error {
	data, err := c.UIDSearch(&imap.SearchCriteria{UID: []imap.UIDSet{{imap.UIDRange{Start: imap.UID(cp.LastUID + 1), Stop: 0}}}}, nil).Wait()
	if err != nil {
		return fmt.Errorf("imap search after uid %d: %w", cp.LastUID, err)
	}
	uids := data.AllUIDs()
	slices.Sort(uids)
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
// mail above MaxSize is read as headers only and its size returned.
func (r *reader) fetch(c *imapclient.Client, uid imap.UID) (raw []byte, date time.Time, oversize int64, err error) {
	set := imap.UIDSetNum(uid)
	meta, err := c.Fetch(set, &imap.FetchOptions{UID: true, RFC822Size: true, InternalDate: true}).Collect()
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
	bufs, err := c.Fetch(set, &imap.FetchOptions{UID: true, BodySection: []*imap.FetchItemBodySection{section}}).Collect()
	if err != nil {
		return nil, time.Time{}, 0, fmt.Errorf("imap fetch uid %d: %w", uid, err)
	}
	if len(bufs) == 0 {
		return nil, date, 0, nil
	}
	raw = bufs[0].FindBodySection(section)
	if raw == nil {
		raw = []byte{} // an empty mail is still a mail: quarantined as such
	}
	return raw, date, oversize, nil
}

// mark sets \Seen on, or moves, mail that is durable on the bus.
func (r *reader) mark(c *imapclient.Client, set imap.UIDSet) error {
	if to := r.mb.IMAP.MoveTo; to != "" {
		if _, err := c.Move(set, to).Wait(); err != nil {
			return fmt.Errorf("imap move %s to %s: %w", set, to, err)
		}
		return nil
	}
	if err := c.Store(set, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagSeen}}, nil).Close(); err != nil {
		return fmt.Errorf("imap mark %s seen: %w", set, err)
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
	}
	data, err := c.UIDSearch(crit, nil).Wait()
	if err != nil {
		return fmt.Errorf("imap search unmarked: %w", err)
	}
	uids := data.AllUIDs()
	if len(uids) == 0 {
		return nil
	}
	r.log.Info("marking mail read before a stop", zap.Int("count", len(uids)))
	return r.mark(c, imap.UIDSetNum(uids...))
}

// resync starts over under a new UIDVALIDITY: the UIDs of the old
// checkpoint mean nothing now. It reads the mail that is unread or from
// the day before the last mail read onwards; what was read before is
// dropped by its Message-ID (the bus's duplicate window, then the store).
func (r *reader) resync(ctx context.Context, c *imapclient.Client, sel *imap.SelectData, old checkpoint) error {
	crit := &imap.SearchCriteria{NotFlag: []imap.Flag{imap.FlagSeen}}
	if !old.LastAt.IsZero() {
		crit = &imap.SearchCriteria{Or: [][2]imap.SearchCriteria{{
			{NotFlag: []imap.Flag{imap.FlagSeen}},
			{Since: old.LastAt.Add(-24 * time.Hour)},
		}}}
	}
	data, err := c.UIDSearch(crit, nil).Wait()
	if err != nil {
		return fmt.Errorf("imap resync search: %w", err)
	}
	uids := data.AllUIDs()
	slices.Sort(uids)
	r.log.Info("resync", zap.Int("mails", len(uids)))
	cp := checkpoint{UIDValidity: sel.UIDValidity, LastAt: old.LastAt}
	for _, uid := range uids {
		if err := r.one(ctx, c, uid, &cp); err != nil {
			return err
		}
	}
	if len(uids) == 0 && sel.UIDNext > 1 {
		// Nothing to read again: start after the newest mail there is.
		cp.LastUID = uint32(sel.UIDNext) - 1
	}
	// Mail between the ones read keeps its place: the checkpoint is the
	// highest UID read, and every lower UID in the new numbering was in
	// the search (unread) or was read before the change.
	return r.cps.put(ctx, r.mb.Name, cp)
}
