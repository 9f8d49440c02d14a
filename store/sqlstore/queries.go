package sqlstore

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/inroute/inroute/message"
	"github.com/inroute/inroute/store"
)

const convCols = `id, contact_id, customer_id, channel, last_channel, status, queue, urgency, topic, assignee, subject,
	rules_version, created_at, updated_at, queued_at, last_inbound_at, resolved_at, first_response_due, next_response_due,
	lease_until, replied_at, sla_step, sla_breached_at`

type scanner interface{ Scan(dest ...any) error }

func scanConv(r scanner) (*store.Conversation, error) {
	var c store.Conversation
	var ch, last, status, urgency string
	var created, updated, queued, inbound int64
	var resolved, frd, nrd, lease, replied, breached sql.NullInt64
	if err := r.Scan(&c.ID, &c.ContactID, &c.CustomerID, &ch, &last, &status, &c.Queue, &urgency, &c.Topic, &c.Assignee,
		&c.Subject, &c.RulesVersion, &created, &updated, &queued, &inbound, &resolved, &frd, &nrd,
		&lease, &replied, &c.SLAStep, &breached); err != nil {
		return nil, err
	}
	c.LeaseUntil, c.RepliedAt, c.SLABreachedAt = nullTime(lease), nullTime(replied), nullTime(breached)
	c.Channel, c.LastChan, c.Status, c.Urgency = message.Channel(ch), message.Channel(last), store.Status(status), message.Urgency(urgency)
	c.CreatedAt, c.UpdatedAt, c.QueuedAt, c.LastInboundAt = fromUS(created), fromUS(updated), fromUS(queued), fromUS(inbound)
	c.ResolvedAt, c.FirstResponseDue, c.NextResponseDue = nullTime(resolved), nullTime(frd), nullTime(nrd)
	return &c, nil
}

type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

func (s *Store) conversation(ctx context.Context, q querier, id int64) (*store.Conversation, error) {
	c, err := scanConv(q.QueryRowContext(ctx, s.q(`SELECT `+convCols+` FROM conversations WHERE id = ?`), id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("conversation %d: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("conversation %d: %w", id, err)
	}
	return c, nil
}

// Conversation implements store.Store.
func (s *Store) Conversation(ctx context.Context, id int64) (*store.Conversation, error) {
	return s.conversation(ctx, s.db, id)
}

func (s *Store) conversations(ctx context.Context, query string, args ...any) ([]store.Conversation, error) {
	rows, err := s.db.QueryContext(ctx, s.q(query), args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.Conversation
	for rows.Next() {
		c, err := scanConv(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, *c)
	}
	return out, rows.Err()
}

// ContactConversations implements store.Store.
func (s *Store) ContactConversations(ctx context.Context, contactID int64) ([]store.Conversation, error) {
	root, err := s.rootOf(ctx, s.db, contactID)
	if err != nil {
		return nil, err
	}
	out, err := s.conversations(ctx, `SELECT `+convCols+` FROM conversations WHERE customer_id = ? ORDER BY created_at DESC, id DESC`, root)
	if err != nil {
		return nil, fmt.Errorf("conversations of contact %d: %w", contactID, err)
	}
	return out, nil
}

// Waiting implements store.Store.
func (s *Store) Waiting(ctx context.Context, f store.QueueFilter) ([]store.Conversation, error) {
	query := `SELECT ` + convCols + ` FROM conversations WHERE status = 'queued'`
	var args []any
	if f.Queue != "" {
		query += ` AND queue = ?`
		args = append(args, f.Queue)
	}
	if f.Urgency != "" {
		query += ` AND urgency = ?`
		args = append(args, string(f.Urgency))
	}
	limit := f.Limit
	if limit <= 0 {
		limit = 100
	}
	query += ` ORDER BY urgency_rank DESC, queued_at ASC, id ASC LIMIT ?`
	out, err := s.conversations(ctx, query, append(args, limit)...)
	if err != nil {
		return nil, fmt.Errorf("waiting conversations: %w", err)
	}
	return out, nil
}

// Messages implements store.Store.
func (s *Store) Messages(ctx context.Context, conversationID int64) ([]store.Message, error) {
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT id, conversation_id, contact_id, direction, channel, channel_message_id,
		from_kind, from_value, from_name, to_address, subject, text, html, thread_json, language, extra_json,
		decision_json, threading, delivery_status, delivery_error, received_at, author, auto, published_at, automatic
		FROM messages WHERE conversation_id = ? ORDER BY received_at, created_at, id`), conversationID)
	if err != nil {
		return nil, fmt.Errorf("messages of conversation %d: %w", conversationID, err)
	}
	var out []store.Message
	index := map[string]int{}
	for rows.Next() {
		var m store.Message
		var dir, ch, thread, extra, dec, automatic string
		var received, auto int64
		var published sql.NullInt64
		if err := rows.Scan(&m.ID, &m.ConversationID, &m.ContactID, &dir, &ch, &m.ChannelMessageID, &m.FromKind, &m.FromValue,
			&m.FromName, &m.To, &m.Subject, &m.Text, &m.HTML, &thread, &m.Language, &extra, &dec, &m.Threading,
			&m.DeliveryStatus, &m.DeliveryError, &received, &m.Author, &auto, &published, &automatic); err != nil {
			rows.Close()
			return nil, err
		}
		m.Direction, m.Channel, m.ReceivedAt, m.Auto = store.Direction(dir), message.Channel(ch), fromUS(received), auto != 0
		m.PublishedAt, m.Automatic = nullTime(published), message.Automatic(automatic)
		_ = json.Unmarshal([]byte(thread), &m.Thread)
		if extra != "" && extra != "{}" {
			_ = json.Unmarshal([]byte(extra), &m.Extra)
		}
		if dec != "" {
			var d store.Decision
			if json.Unmarshal([]byte(dec), &d) == nil {
				m.Decision = &d
			}
		}
		index[m.ID] = len(out)
		out = append(out, m)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	arows, err := s.db.QueryContext(ctx, s.q(`SELECT a.message_id, a.name, a.content_type, a.size, a.ref FROM attachments a
		JOIN messages m ON m.id = a.message_id WHERE m.conversation_id = ? ORDER BY a.id`), conversationID)
	if err != nil {
		return nil, fmt.Errorf("attachments of conversation %d: %w", conversationID, err)
	}
	defer arows.Close()
	for arows.Next() {
		var id string
		var a store.Attachment
		if err := arows.Scan(&id, &a.Name, &a.ContentType, &a.Size, &a.Ref); err != nil {
			return nil, err
		}
		if i, ok := index[id]; ok {
			out[i].Attachments = append(out[i].Attachments, a)
		}
	}
	return out, arows.Err()
}

func (s *Store) rootOf(ctx context.Context, q querier, contact int64) (int64, error) {
	var root int64
	err := q.QueryRowContext(ctx, s.q(`SELECT COALESCE(merged_into, id) FROM contacts WHERE id = ?`), contact).Scan(&root)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("contact %d: %w", contact, store.ErrNotFound)
	}
	if err != nil {
		return 0, fmt.Errorf("contact %d: %w", contact, err)
	}
	return root, nil
}

// Contact implements store.Store. A customer's root contact lists the
// identities of every contact merged into it.
func (s *Store) Contact(ctx context.Context, id int64) (*store.Contact, error) {
	var c store.Contact
	var merged sql.NullInt64
	var created int64
	err := s.db.QueryRowContext(ctx, s.q(`SELECT id, name, merged_into, created_at FROM contacts WHERE id = ?`), id).
		Scan(&c.ID, &c.Name, &merged, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("contact %d: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("contact %d: %w", id, err)
	}
	c.MergedInto, c.CreatedAt = merged.Int64, fromUS(created)
	query := `SELECT contact_id, kind, value, verified FROM identities WHERE contact_id = ? ORDER BY id`
	if !merged.Valid {
		query = `SELECT i.contact_id, i.kind, i.value, i.verified FROM identities i JOIN contacts c ON c.id = i.contact_id
			WHERE c.id = ? OR c.merged_into = ? ORDER BY i.id`
	}
	args := []any{id}
	if !merged.Valid {
		args = append(args, id)
	}
	rows, err := s.db.QueryContext(ctx, s.q(query), args...)
	if err != nil {
		return nil, fmt.Errorf("identities of contact %d: %w", id, err)
	}
	defer rows.Close()
	for rows.Next() {
		var idn store.Identity
		var v int
		if err := rows.Scan(&idn.ContactID, &idn.Kind, &idn.Value, &v); err != nil {
			return nil, err
		}
		idn.Verified = v == 1
		c.Identities = append(c.Identities, idn)
	}
	return &c, rows.Err()
}

// FindContacts implements store.Store.
func (s *Store) FindContacts(ctx context.Context, v string) ([]store.Contact, error) {
	vals := store.SearchValues(v, s.o.PhoneRegion)
	ids, err := column[int64](s.db.QueryContext(ctx, s.q(`SELECT DISTINCT COALESCE(c.merged_into, c.id) FROM identities i
		JOIN contacts c ON c.id = i.contact_id WHERE i.value IN (`+placeholders(len(vals))+`)`), toAny(vals)...))
	if err != nil {
		return nil, fmt.Errorf("find contacts: %w", err)
	}
	slices.Sort(ids)
	out := make([]store.Contact, 0, len(ids))
	for _, id := range ids {
		c, err := s.Contact(ctx, id)
		if err != nil {
			return nil, err
		}
		out = append(out, *c)
	}
	return out, nil
}

// MergeContacts implements store.Store.
func (s *Store) MergeContacts(ctx context.Context, into, from int64, actor string) (int64, error) {
	var id int64
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		b := newBatch(s, tx, ctx)
		root, err := s.rootOf(ctx, tx, into)
		if err != nil {
			return err
		}
		other, err := s.rootOf(ctx, tx, from)
		if err != nil {
			return err
		}
		if root == other {
			return fmt.Errorf("contacts %d and %d are already one customer: %w", into, from, store.ErrConflict)
		}
		if s.d.ForUpdate != "" {
			// Both must still be roots when we hold them, or a concurrent
			// merge would leave a chain instead of one flat group.
			lo, hi := min(root, other), max(root, other)
			rows, err := tx.QueryContext(ctx, s.q(`SELECT id FROM contacts WHERE id IN (?, ?) AND merged_into IS NULL ORDER BY id`+s.d.ForUpdate), lo, hi)
			if err != nil {
				return err
			}
			n := 0
			for rows.Next() {
				n++
			}
			rows.Close()
			if n != 2 {
				return errRaced
			}
		}
		id, err = b.merge(root, other, actor, false)
		if err != nil {
			return err
		}
		return b.flushEvents()
	})
	return id, err
}

// merge makes the customer rooted at from part of the one rooted at root
// and records how to undo it.
func (b *batch) merge(root, from int64, actor string, auto bool) (int64, error) {
	rows, err := b.query((`SELECT id, COALESCE(merged_into, 0) FROM contacts WHERE id = ? OR merged_into = ?`), from, from)
	if err != nil {
		return 0, fmt.Errorf("merge: %w", err)
	}
	moved := map[string]int64{}
	for rows.Next() {
		var id, prev int64
		if err := rows.Scan(&id, &prev); err != nil {
			rows.Close()
			return 0, err
		}
		moved[strconv.FormatInt(id, 10)] = prev
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, err
	}
	if _, err := b.exec((`UPDATE contacts SET merged_into = ? WHERE id = ? OR merged_into = ?`), root, from, from); err != nil {
		return 0, fmt.Errorf("merge contacts: %w", err)
	}
	if _, err := b.exec((`UPDATE conversations SET customer_id = ? WHERE customer_id = ?`), root, from); err != nil {
		return 0, fmt.Errorf("merge conversations: %w", err)
	}
	movedJSON, _ := json.Marshal(moved)
	var id int64
	if err := b.queryRow((`INSERT INTO merges (into_id, from_id, moved_json, actor, auto, at) VALUES (?, ?, ?, ?, ?, ?) RETURNING id`),
		root, from, string(movedJSON), actor, b2i(auto), us(b.now)).Scan(&id); err != nil {
		return 0, fmt.Errorf("record merge: %w", err)
	}
	data, _ := json.Marshal(map[string]any{"merge_id": id, "into": root, "from": from, "auto": auto})
	b.events = append(b.events, nil, root, store.EventMerged, actor, us(b.now), string(data))
	return id, nil
}

func (b *batch) flushEvents() error {
	_, err := b.insertRows(`INSERT INTO events (conversation_id, contact_id, kind, actor, at, data_json) VALUES `, 6, b.events, "")
	return err
}

// UndoMerge implements store.Store.
func (s *Store) UndoMerge(ctx context.Context, mergeID int64, actor string) error {
	return s.writeTx(ctx, func(tx *sql.Tx) error {
		var into int64
		var movedJSON string
		var undone sql.NullInt64
		err := tx.QueryRowContext(ctx, s.q(`SELECT into_id, moved_json, undone_at FROM merges WHERE id = ?`), mergeID).Scan(&into, &movedJSON, &undone)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("merge %d: %w", mergeID, store.ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("merge %d: %w", mergeID, err)
		}
		if undone.Valid {
			return fmt.Errorf("merge %d was undone already: %w", mergeID, store.ErrConflict)
		}
		var moved map[string]int64
		if err := json.Unmarshal([]byte(movedJSON), &moved); err != nil {
			return fmt.Errorf("merge %d: %w", mergeID, err)
		}
		now := us(s.o.Now())
		// Undo only what this merge did: if a later merge moved these
		// contacts on, undoing this one first would put back a state that
		// no longer exists.
		for idStr := range moved {
			id, _ := strconv.ParseInt(idStr, 10, 64)
			var cur sql.NullInt64
			if err := tx.QueryRowContext(ctx, s.q(`SELECT merged_into FROM contacts WHERE id = ?`), id).Scan(&cur); err != nil {
				return fmt.Errorf("undo merge %d: %w", mergeID, err)
			}
			if cur.Int64 != into {
				return fmt.Errorf("merge %d: contact %d was merged again since; undo the later merge first: %w", mergeID, id, store.ErrConflict)
			}
		}
		for idStr, prev := range moved {
			id, _ := strconv.ParseInt(idStr, 10, 64)
			var p any
			if prev != 0 {
				p = prev
			}
			if _, err := tx.ExecContext(ctx, s.q(`UPDATE contacts SET merged_into = ? WHERE id = ?`), p, id); err != nil {
				return fmt.Errorf("undo merge %d: %w", mergeID, err)
			}
			// Conversations follow the contact that wrote them.
			if _, err := tx.ExecContext(ctx, s.q(`UPDATE conversations SET customer_id = ? WHERE contact_id = ?`), cmp.Or(prev, id), id); err != nil {
				return fmt.Errorf("undo merge %d: %w", mergeID, err)
			}
		}
		if _, err := tx.ExecContext(ctx, s.q(`UPDATE merges SET undone_at = ? WHERE id = ?`), now, mergeID); err != nil {
			return err
		}
		data, _ := json.Marshal(map[string]any{"merge_id": mergeID})
		_, err = tx.ExecContext(ctx, s.q(`INSERT INTO events (contact_id, kind, actor, at, data_json) VALUES (?, ?, ?, ?, ?)`),
			into, store.EventUnmerged, actor, now, string(data))
		return err
	})
}

// Assign implements store.Store.
func (s *Store) Assign(ctx context.Context, conversationID int64, agent string) error {
	return s.update(ctx, conversationID, store.EventClaimed, agent, map[string]any{"agent": agent},
		`UPDATE conversations SET status = 'assigned', assignee = ?, updated_at = ? WHERE id = ?`, agent, us(s.o.Now()), conversationID)
}

// Claim implements store.Store. Claiming again what the same agent holds
// succeeds, so a claim whose answer was lost can be repeated.
func (s *Store) Claim(ctx context.Context, conversationID int64, agent string) error {
	err := s.update(ctx, conversationID, store.EventClaimed, agent, map[string]any{"agent": agent},
		`UPDATE conversations SET status = 'assigned', assignee = ?, updated_at = ? WHERE id = ?
		AND (status = 'queued' OR (status = 'assigned' AND assignee = ?))`,
		agent, us(s.o.Now()), conversationID, agent)
	if errors.Is(err, store.ErrNotFound) {
		if _, cerr := s.Conversation(ctx, conversationID); cerr == nil {
			return fmt.Errorf("conversation %d is not waiting: %w", conversationID, store.ErrConflict)
		}
	}
	return err
}

// SetStatus implements store.Store.
func (s *Store) SetStatus(ctx context.Context, conversationID int64, st store.Status, actor string) error {
	now := us(s.o.Now())
	data := map[string]any{"status": st}
	switch st {
	case store.StatusResolved:
		return s.update(ctx, conversationID, store.EventResolved, actor, data,
			`UPDATE conversations SET status = 'resolved', resolved_at = ?, updated_at = ?, lease_until = NULL,
			first_response_due = NULL, next_response_due = NULL, sla_step = 0, sla_breached_at = NULL WHERE id = ?`, now, now, conversationID)
	case store.StatusQueued:
		return s.update(ctx, conversationID, store.EventReleased, actor, data,
			`UPDATE conversations SET status = 'queued', assignee = '', queued_at = ?, resolved_at = NULL, updated_at = ?,
			lease_until = NULL WHERE id = ?`, now, now, conversationID)
	case store.StatusWaiting:
		return s.update(ctx, conversationID, "waiting", actor, data,
			`UPDATE conversations SET status = 'waiting', updated_at = ? WHERE id = ?`, now, conversationID)
	case store.StatusAssigned:
		return s.Assign(ctx, conversationID, actor)
	default:
		return fmt.Errorf("unknown status %q", st)
	}
}

// update runs one conversation update and logs its event.
func (s *Store) update(ctx context.Context, id int64, kind, actor string, data map[string]any, query string, args ...any) error {
	return s.writeTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, s.q(query), args...)
		if err != nil {
			return fmt.Errorf("conversation %d: %w", id, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("conversation %d: %w", id, store.ErrNotFound)
		}
		d, _ := json.Marshal(data)
		_, err = tx.ExecContext(ctx, s.q(`INSERT INTO events (conversation_id, kind, actor, at, data_json) VALUES (?, ?, ?, ?, ?)`),
			id, kind, actor, us(s.o.Now()), string(d))
		return err
	})
}

// AppendEvent implements store.Store.
func (s *Store) AppendEvent(ctx context.Context, e store.Event) error {
	if e.Kind == "" {
		return errors.New("event has no kind")
	}
	at := e.At
	if at.IsZero() {
		at = s.o.Now()
	}
	data := string(e.Data)
	if data == "" {
		data = "{}"
	}
	var conv, contact any
	if e.ConversationID != 0 {
		conv = e.ConversationID
	}
	if e.ContactID != 0 {
		contact = e.ContactID
	}
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, s.q(`INSERT INTO events (conversation_id, contact_id, kind, actor, at, data_json) VALUES (?, ?, ?, ?, ?, ?)`),
			conv, contact, e.Kind, e.Actor, us(at), data)
		return err
	})
	if err != nil {
		return fmt.Errorf("append event: %w", err)
	}
	return nil
}

// Events implements store.Store.
func (s *Store) Events(ctx context.Context, conversationID int64) ([]store.Event, error) {
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT id, COALESCE(conversation_id, 0), COALESCE(contact_id, 0), kind, actor, at, data_json
		FROM events WHERE conversation_id = ? ORDER BY id`), conversationID)
	if err != nil {
		return nil, fmt.Errorf("events of conversation %d: %w", conversationID, err)
	}
	defer rows.Close()
	var out []store.Event
	for rows.Next() {
		var e store.Event
		var at int64
		var data string
		if err := rows.Scan(&e.ID, &e.ConversationID, &e.ContactID, &e.Kind, &e.Actor, &at, &data); err != nil {
			return nil, err
		}
		e.At, e.Data = fromUS(at), json.RawMessage(data)
		out = append(out, e)
	}
	return out, rows.Err()
}

// CountResolvedBefore counts the conversations Purge(cutoff) would remove.
func (s *Store) CountResolvedBefore(ctx context.Context, cutoff time.Time) (int64, error) {
	var n int64
	err := s.db.QueryRowContext(ctx, s.q(`SELECT COUNT(*) FROM conversations WHERE status = 'resolved' AND resolved_at < ?`), us(cutoff)).Scan(&n)
	return n, err
}

// Purge implements store.Store. It works through old conversations a
// chunk per transaction so a large purge never holds the write lock long.
func (s *Store) Purge(ctx context.Context, cutoff time.Time) (store.PurgeStats, error) {
	var st store.PurgeStats
	for {
		var ids []int64
		var refs []string
		var chunk store.PurgeStats // counted anew on each attempt
		err := s.writeTx(ctx, func(tx *sql.Tx) error {
			ids, refs, chunk = nil, nil, store.PurgeStats{}
			rows, err := tx.QueryContext(ctx, s.q(`SELECT id FROM conversations WHERE status = 'resolved' AND resolved_at < ? ORDER BY id LIMIT 500`), us(cutoff))
			if err != nil {
				return err
			}
			for rows.Next() {
				var id int64
				if err := rows.Scan(&id); err != nil {
					rows.Close()
					return err
				}
				ids = append(ids, id)
			}
			rows.Close()
			if err := rows.Err(); err != nil || len(ids) == 0 {
				return err
			}
			in := `(` + placeholders(len(ids)) + `)`
			args := make([]any, len(ids))
			for i, id := range ids {
				args[i] = id
			}
			rrows, err := tx.QueryContext(ctx, s.q(`SELECT DISTINCT a.ref FROM attachments a JOIN messages m ON m.id = a.message_id
				WHERE m.conversation_id IN `+in+` AND a.ref LIKE 'sha256:%'`), args...)
			if err != nil {
				return err
			}
			for rrows.Next() {
				var r string
				if err := rrows.Scan(&r); err != nil {
					rrows.Close()
					return err
				}
				refs = append(refs, r)
			}
			rrows.Close()
			if err := rrows.Err(); err != nil {
				return err
			}
			steps := []struct {
				n     *int64
				query string
			}{
				{&chunk.Attachments, `DELETE FROM attachments WHERE message_id IN (SELECT id FROM messages WHERE conversation_id IN ` + in + `)`},
				{&chunk.Messages, `DELETE FROM messages WHERE conversation_id IN ` + in},
				{&chunk.Events, `DELETE FROM events WHERE conversation_id IN ` + in},
				{&chunk.Conversations, `DELETE FROM conversations WHERE id IN ` + in},
			}
			for _, step := range steps {
				res, err := tx.ExecContext(ctx, s.q(step.query), args...)
				if err != nil {
					return err
				}
				n, _ := res.RowsAffected()
				*step.n += n
			}
			return nil
		})
		if err != nil {
			return st, fmt.Errorf("purge: %w", err)
		}
		if len(ids) == 0 {
			return st, nil
		}
		st.Conversations += chunk.Conversations
		st.Messages += chunk.Messages
		st.Attachments += chunk.Attachments
		st.Events += chunk.Events
		// Blobs go after the rows are gone, and only those nothing else
		// refers to (content addressing shares them between messages).
		if s.o.Blobs != nil {
			for _, r := range refs {
				var n int
				if err := s.db.QueryRowContext(ctx, s.q(`SELECT COUNT(*) FROM attachments WHERE ref = ?`), r).Scan(&n); err != nil {
					return st, fmt.Errorf("purge: %w", err)
				}
				if n == 0 {
					if err := s.o.Blobs.Delete(r); err != nil {
						return st, fmt.Errorf("purge blob %s: %w", r, err)
					}
					st.Blobs++
				}
			}
		}
	}
}
