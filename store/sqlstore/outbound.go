package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/inroute/inroute/message"
	"github.com/inroute/inroute/store"
	"github.com/oklog/ulid/v2"
)

// RecordReply implements store.Store.
func (s *Store) RecordReply(ctx context.Context, r store.Reply) (*store.Message, bool, error) {
	if strings.TrimSpace(r.Key) == "" {
		return nil, false, errors.New("record reply: no idempotency key")
	}
	if !r.Channel.Valid() {
		return nil, false, fmt.Errorf("record reply: unknown channel %q", r.Channel)
	}
	if r.ID != "" {
		// Ids sort by time and name one message everywhere; a caller's id
		// must be the same kind of id as ours.
		if _, err := ulid.ParseStrict(r.ID); err != nil {
			return nil, false, fmt.Errorf("record reply: id %q is not a ULID: %w", r.ID, err)
		}
	}
	var id string
	var created bool
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		created = false
		c, err := scanConv(tx.QueryRowContext(ctx, s.q(`SELECT `+convCols+` FROM conversations WHERE id = ?`+s.d.ForUpdate), r.ConversationID))
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("conversation %d: %w", r.ConversationID, store.ErrNotFound)
		}
		if err != nil {
			return err
		}
		// The key names the reply whatever channel it went on: a retry
		// after the customer wrote on another channel is still a repeat.
		key := "reply:" + r.Key
		var other int64
		err = tx.QueryRowContext(ctx, s.q(`SELECT id, conversation_id FROM messages WHERE channel_message_id = ? AND direction = 'out'`), key).Scan(&id, &other)
		if err == nil {
			if other != c.ID {
				return fmt.Errorf("idempotency key %q was used for conversation %d: %w", r.Key, other, store.ErrConflict)
			}
			return nil // recorded before
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		if r.IfHolder != "" && (c.Assignee != r.IfHolder || (c.Status != store.StatusAssigned && c.Status != store.StatusWaiting)) {
			return fmt.Errorf("conversation %d is no longer held by %s: %w", c.ID, r.IfHolder, store.ErrConflict)
		}
		id = r.ID
		if id == "" {
			id = message.NewID()
		} else {
			// Checked here, not left to the primary key: a unique violation
			// counts as a race and would be retried in vain.
			var one int
			err := tx.QueryRowContext(ctx, s.q(`SELECT 1 FROM messages WHERE id = ?`), id).Scan(&one)
			if err == nil {
				return fmt.Errorf("message id %s is taken: %w", id, store.ErrConflict)
			}
			if !errors.Is(err, sql.ErrNoRows) {
				return fmt.Errorf("check reply id %s: %w", id, err)
			}
		}
		now := us(s.o.Now())
		thread, _ := json.Marshal(r.Thread)
		auto := 0
		if r.Auto {
			auto = 1
		}
		res, err := tx.ExecContext(ctx, s.q(`INSERT INTO messages (id, conversation_id, contact_id, direction, channel, channel_message_id,
			from_kind, from_value, subject, text, html, thread_message_id, thread_json, delivery_status, received_at, created_at,
			author, auto)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (channel, channel_message_id) DO NOTHING`),
			id, c.ID, c.ContactID, string(store.Out), string(r.Channel), key, r.ToKind, r.ToValue, r.Subject, r.Text, r.HTML,
			r.Thread.MessageID, string(thread), store.DeliveryQueued, now, now, r.Agent, auto)
		if err != nil {
			return fmt.Errorf("insert reply: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return errRaced
		}
		for _, a := range r.Attachments {
			if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO attachments (message_id, name, content_type, size, ref) VALUES (?, ?, ?, ?, ?)`),
				id, a.Name, a.ContentType, a.Size, a.Ref); err != nil {
				return fmt.Errorf("insert reply attachment: %w", err)
			}
		}
		data, _ := json.Marshal(map[string]string{"message_id": id, "channel": string(r.Channel), "to": r.ToValue})
		if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO events (conversation_id, contact_id, kind, actor, at, data_json) VALUES (?, ?, ?, ?, ?, ?)`),
			c.ID, c.ContactID, store.EventReplied, r.Agent, now, string(data)); err != nil {
			return err
		}
		if !r.Auto {
			// An agent answered: the response target is met, the claim is
			// no longer on lease, and the conversation stays with the agent.
			if _, err := tx.ExecContext(ctx, s.q(`UPDATE conversations SET replied_at = ?, lease_until = NULL,
				first_response_due = NULL, next_response_due = NULL, sla_step = 0, sla_breached_at = NULL, updated_at = ?
				WHERE id = ?`), now, now, c.ID); err != nil {
				return fmt.Errorf("mark conversation answered: %w", err)
			}
		}
		created = true
		return nil
	})
	if err != nil {
		return nil, false, fmt.Errorf("record reply: %w", err)
	}
	m, err := s.message(ctx, id)
	return m, created, err
}

func (s *Store) message(ctx context.Context, id string) (*store.Message, error) {
	var conv int64
	if err := s.db.QueryRowContext(ctx, s.q(`SELECT conversation_id FROM messages WHERE id = ?`), id).Scan(&conv); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return nil, fmt.Errorf("message %s: %w", id, store.ErrNotFound)
		}
		return nil, err
	}
	msgs, err := s.Messages(ctx, conv)
	if err != nil {
		return nil, err
	}
	for i := range msgs {
		if msgs[i].ID == id {
			return &msgs[i], nil
		}
	}
	return nil, fmt.Errorf("message %s: %w", id, store.ErrNotFound)
}

// SetDelivery implements store.Store.
func (s *Store) SetDelivery(ctx context.Context, messageID, status, detail string) error {
	if store.DeliveryRank(status) == 0 {
		return fmt.Errorf("unknown delivery status %q", status)
	}
	return s.writeTx(ctx, func(tx *sql.Tx) error {
		// One conditional statement, so two reports arriving together
		// cannot move the status backwards or overwrite a failure.
		res, err := tx.ExecContext(ctx, s.q(`UPDATE messages SET delivery_status = ?, delivery_error = ?
			WHERE id = ? AND direction = 'out' AND delivery_status <> 'failed'
			AND (CASE delivery_status WHEN 'queued' THEN 1 WHEN 'sent' THEN 2 WHEN 'delivered' THEN 3 ELSE 0 END) < ?`),
			status, detail, messageID, store.DeliveryRank(status))
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n > 0 {
			return nil
		}
		var one int
		err = tx.QueryRowContext(ctx, s.q(`SELECT 1 FROM messages WHERE id = ? AND direction = 'out'`), messageID).Scan(&one)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("outbound message %s: %w", messageID, store.ErrNotFound)
		}
		return err // nil: a late or repeated report, ignored
	})
}

// MarkPublished implements store.Store.
func (s *Store) MarkPublished(ctx context.Context, messageID string) error {
	return s.writeTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, s.q(`UPDATE messages SET published_at = ? WHERE id = ? AND direction = 'out' AND published_at IS NULL`),
			us(s.o.Now()), messageID)
		return err
	})
}

// Unpublished implements store.Store.
func (s *Store) Unpublished(ctx context.Context, t time.Time, limit int) ([]store.Message, error) {
	if limit <= 0 {
		limit = 100
	}
	ids, err := column[string](s.db.QueryContext(ctx, s.q(`SELECT id FROM messages WHERE direction = 'out' AND published_at IS NULL
		AND created_at < ? ORDER BY created_at LIMIT ?`), us(t), limit))
	if err != nil {
		return nil, fmt.Errorf("unpublished replies: %w", err)
	}
	out := make([]store.Message, 0, len(ids))
	for _, id := range ids {
		m, err := s.message(ctx, id)
		if err != nil {
			return out, err
		}
		out = append(out, *m)
	}
	return out, nil
}

// ReplyByKey implements store.Store.
func (s *Store) ReplyByKey(ctx context.Context, key string) (*store.Message, error) {
	var id string
	err := s.db.QueryRowContext(ctx, s.q(`SELECT id FROM messages WHERE channel_message_id = ? AND direction = 'out'`), "reply:"+key).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("reply with key %q: %w", key, store.ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	return s.message(ctx, id)
}
