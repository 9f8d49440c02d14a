package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/inroute/inroute/message"
	"github.com/inroute/inroute/store"
)

// seeAgent records the agent's visit. Inside a claim it also locks the
// agent's row (PostgreSQL), so one agent's concurrent claims take turns
// on the capacity check instead of both passing it.
func (s *Store) seeAgent(ctx context.Context, tx *sql.Tx, agent string, now time.Time) error {
	_, err := tx.ExecContext(ctx, s.q(`INSERT INTO agents (name, last_seen) VALUES (?, ?)
		ON CONFLICT (name) DO UPDATE SET last_seen = excluded.last_seen`), agent, us(now))
	return err
}

func event(ctx context.Context, s *Store, tx *sql.Tx, conv int64, kind, actor string, at time.Time, data map[string]any) error {
	d, _ := json.Marshal(data)
	_, err := tx.ExecContext(ctx, s.q(`INSERT INTO events (conversation_id, kind, actor, at, data_json) VALUES (?, ?, ?, ?, ?)`),
		conv, kind, actor, us(at), string(d))
	return err
}

// ClaimNext implements store.Store.
func (s *Store) ClaimNext(ctx context.Context, r store.ClaimRequest) (*store.Conversation, error) {
	if r.Agent == "" {
		return nil, errors.New("claim: no agent")
	}
	if r.Queues != nil && len(r.Queues) == 0 {
		return nil, nil // an agent with no queues takes nothing
	}
	var id int64
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		id = 0
		now := s.o.Now()
		if err := s.seeAgent(ctx, tx, r.Agent, now); err != nil {
			return fmt.Errorf("agent %s: %w", r.Agent, err)
		}
		var open int
		if err := tx.QueryRowContext(ctx, s.q(`SELECT COUNT(*) FROM conversations WHERE assignee = ? AND status IN ('assigned', 'waiting')`),
			r.Agent).Scan(&open); err != nil {
			return fmt.Errorf("count open conversations: %w", err)
		}
		if r.Capacity > 0 && open >= r.Capacity {
			return fmt.Errorf("%s holds %d open conversations: %w", r.Agent, open, store.ErrAtCapacity)
		}
		query := `SELECT id FROM conversations WHERE status = 'queued'`
		args := []any{}
		if r.Queues != nil {
			query += ` AND queue IN (` + placeholders(len(r.Queues)) + `)`
			for _, q := range r.Queues {
				args = append(args, q)
			}
		}
		query += ` ORDER BY urgency_rank DESC, queued_at, id LIMIT 1` + s.d.SkipLocked
		err := tx.QueryRowContext(ctx, s.q(query), args...).Scan(&id)
		if errors.Is(err, sql.ErrNoRows) {
			id = 0
			return nil
		}
		if err != nil {
			return fmt.Errorf("find waiting conversation: %w", err)
		}
		lease := now.Add(r.Lease)
		res, err := tx.ExecContext(ctx, s.q(`UPDATE conversations SET status = 'assigned', assignee = ?, lease_until = ?, updated_at = ?
			WHERE id = ? AND status = 'queued'`), r.Agent, us(lease), us(now), id)
		if err != nil {
			return fmt.Errorf("claim conversation %d: %w", id, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return errRaced
		}
		return event(ctx, s, tx, id, store.EventClaimed, r.Agent, now, map[string]any{"agent": r.Agent, "lease_until": lease.UTC()})
	})
	if err != nil || id == 0 {
		return nil, err
	}
	return s.Conversation(ctx, id)
}

// Renew implements store.Store.
func (s *Store) Renew(ctx context.Context, id int64, agent string, lease time.Duration) (time.Time, error) {
	now := s.o.Now()
	until := now.Add(lease)
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		// A lease that already ran out is not renewed, even before the
		// monitor has put the conversation back: it was lost at its end.
		res, err := tx.ExecContext(ctx, s.q(`UPDATE conversations SET lease_until = ? WHERE id = ? AND assignee = ?
			AND status = 'assigned' AND lease_until IS NOT NULL AND lease_until >= ?`), us(until), id, agent, us(now))
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			if _, err := s.conversation(ctx, tx, id); err != nil {
				return err
			}
			return fmt.Errorf("conversation %d: %s holds no lease on it: %w", id, agent, store.ErrConflict)
		}
		return nil
	})
	if err != nil {
		return time.Time{}, fmt.Errorf("renew lease: %w", err)
	}
	return until.UTC(), nil
}

// ExpireLeases implements store.Store.
func (s *Store) ExpireLeases(ctx context.Context, now time.Time) ([]store.Conversation, error) {
	var ids []int64
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		ids = ids[:0]
		rows, err := tx.QueryContext(ctx, s.q(`SELECT id, assignee FROM conversations WHERE lease_until IS NOT NULL AND lease_until < ?
			AND status = 'assigned' ORDER BY lease_until LIMIT 500`+s.d.SkipLocked), us(now))
		if err != nil {
			return err
		}
		type lapsed struct {
			id    int64
			agent string
		}
		var found []lapsed
		for rows.Next() {
			var l lapsed
			if err := rows.Scan(&l.id, &l.agent); err != nil {
				rows.Close()
				return err
			}
			found = append(found, l)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for _, l := range found {
			// The conversation keeps its place (queued_at): the customer has
			// waited all along.
			res, err := tx.ExecContext(ctx, s.q(`UPDATE conversations SET status = 'queued', assignee = '', lease_until = NULL, updated_at = ?
				WHERE id = ? AND status = 'assigned' AND lease_until < ?`), us(s.o.Now()), l.id, us(now))
			if err != nil {
				return fmt.Errorf("expire lease of conversation %d: %w", l.id, err)
			}
			if n, _ := res.RowsAffected(); n == 0 {
				continue
			}
			if err := event(ctx, s, tx, l.id, store.EventLeaseExpired, "inroute", s.o.Now(), map[string]any{"agent": l.agent}); err != nil {
				return err
			}
			ids = append(ids, l.id)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("expire leases: %w", err)
	}
	out := make([]store.Conversation, 0, len(ids))
	for _, id := range ids {
		c, err := s.Conversation(ctx, id)
		if err != nil {
			return out, err
		}
		out = append(out, *c)
	}
	return out, nil
}

// MoveConversation implements store.Store.
func (s *Store) MoveConversation(ctx context.Context, id int64, m store.Move) (*store.Conversation, error) {
	if m.Urgency != "" && !m.Urgency.Valid() {
		return nil, fmt.Errorf("urgency %q is not valid", m.Urgency)
	}
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		c, err := scanConv(tx.QueryRowContext(ctx, s.q(`SELECT `+convCols+` FROM conversations WHERE id = ?`+s.d.ForUpdate), id))
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("conversation %d: %w", id, store.ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("conversation %d: %w", id, err)
		}
		held := c.Status == store.StatusAssigned || c.Status == store.StatusWaiting
		if m.IfHolder != "" && (!held || c.Assignee != m.IfHolder) {
			return fmt.Errorf("conversation %d is not held by %s: %w", id, m.IfHolder, store.ErrConflict)
		}
		if m.IfStatus != nil && !slices.Contains(m.IfStatus, c.Status) {
			return fmt.Errorf("conversation %d is %s now: %w", id, c.Status, store.ErrConflict)
		}
		now := s.o.Now()
		if m.Queue != "" {
			c.Queue = m.Queue
		}
		if m.Urgency != "" {
			c.Urgency = m.Urgency
		}
		clearSLA := false
		switch {
		case m.Resolve:
			if c.Status != store.StatusResolved {
				c.Status, c.ResolvedAt, c.LeaseUntil = store.StatusResolved, &now, nil
				clearSLA = true
			}
		case m.Requeue:
			if c.Status == store.StatusResolved {
				c.ResolvedAt, c.QueuedAt = nil, now
			}
			c.Status, c.Assignee, c.LeaseUntil = store.StatusQueued, "", nil
		case m.Agent != "":
			if c.Status == store.StatusResolved {
				return fmt.Errorf("conversation %d is resolved; reopen it first: %w", id, store.ErrConflict)
			}
			c.Status, c.Assignee, c.LeaseUntil = store.StatusAssigned, m.Agent, nil
		}
		if _, err := tx.ExecContext(ctx, s.q(`UPDATE conversations SET status = ?, queue = ?, urgency = ?, urgency_rank = ?, assignee = ?,
			lease_until = ?, resolved_at = ?, queued_at = ?, updated_at = ? WHERE id = ?`),
			string(c.Status), c.Queue, string(c.Urgency), c.Urgency.Rank(), c.Assignee, nullUS(c.LeaseUntil), nullUS(c.ResolvedAt),
			us(c.QueuedAt), us(now), id); err != nil {
			return fmt.Errorf("move conversation %d: %w", id, err)
		}
		if clearSLA {
			// A resolved conversation waits for nobody: no target runs.
			if _, err := tx.ExecContext(ctx, s.q(`UPDATE conversations SET first_response_due = NULL, next_response_due = NULL,
				sla_step = 0, sla_breached_at = NULL WHERE id = ?`), id); err != nil {
				return fmt.Errorf("resolve conversation %d: %w", id, err)
			}
		}
		kind := m.Event
		if kind == "" {
			kind = store.EventTransferred
		}
		return event(ctx, s, tx, id, kind, m.Actor, now, m.Data)
	})
	if err != nil {
		return nil, err
	}
	return s.Conversation(ctx, id)
}

// SeeAgent implements store.Store.
func (s *Store) SeeAgent(ctx context.Context, agent string) error {
	return s.writeTx(ctx, func(tx *sql.Tx) error { return s.seeAgent(ctx, tx, agent, s.o.Now()) })
}

// AgentLoads implements store.Store.
func (s *Store) AgentLoads(ctx context.Context) ([]store.AgentLoad, error) {
	loads := map[string]*store.AgentLoad{}
	var order []string
	get := func(name string) *store.AgentLoad {
		if l, ok := loads[name]; ok {
			return l
		}
		l := &store.AgentLoad{Name: name}
		loads[name] = l
		order = append(order, name)
		return l
	}
	rows, err := s.db.QueryContext(ctx, `SELECT name, last_seen FROM agents ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("agents: %w", err)
	}
	for rows.Next() {
		var name string
		var seen int64
		if err := rows.Scan(&name, &seen); err != nil {
			rows.Close()
			return nil, err
		}
		get(name).LastSeen = fromUS(seen)
	}
	rows.Close()
	rows, err = s.db.QueryContext(ctx, `SELECT assignee, COUNT(*) FROM conversations
		WHERE status IN ('assigned', 'waiting') AND assignee <> '' GROUP BY assignee`)
	if err != nil {
		return nil, fmt.Errorf("agent loads: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var name string
		var n int
		if err := rows.Scan(&name, &n); err != nil {
			return nil, err
		}
		get(name).Open = n
	}
	out := make([]store.AgentLoad, 0, len(order))
	for _, name := range order {
		out = append(out, *loads[name])
	}
	return out, rows.Err()
}

// QueueStats implements store.Store.
func (s *Store) QueueStats(ctx context.Context) ([]store.QueueStat, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT queue, urgency, COUNT(*), MIN(queued_at) FROM conversations
		WHERE status = 'queued' GROUP BY queue, urgency ORDER BY queue, urgency`)
	if err != nil {
		return nil, fmt.Errorf("queue stats: %w", err)
	}
	defer rows.Close()
	var out []store.QueueStat
	for rows.Next() {
		var st store.QueueStat
		var u string
		var oldest int64
		if err := rows.Scan(&st.Queue, &u, &st.Waiting, &oldest); err != nil {
			return nil, err
		}
		st.Urgency, st.Oldest = message.Urgency(u), fromUS(oldest)
		out = append(out, st)
	}
	return out, rows.Err()
}

// Due implements store.Store.
func (s *Store) Due(ctx context.Context, t time.Time, limit, steps int) ([]store.Conversation, error) {
	if limit <= 0 {
		limit = 100
	}
	done := ``
	args := []any{us(t), us(t)}
	if steps >= 0 {
		done = ` AND (sla_breached_at IS NULL OR sla_step < ?)`
		args = append(args, steps)
	}
	out, err := s.conversations(ctx, `SELECT `+convCols+` FROM conversations WHERE status <> 'resolved'
		AND (first_response_due <= ? OR (first_response_due IS NULL AND next_response_due <= ?))`+done+`
		ORDER BY COALESCE(first_response_due, next_response_due), id LIMIT ?`, append(args, limit)...)
	if err != nil {
		return nil, fmt.Errorf("due conversations: %w", err)
	}
	return out, nil
}

// Escalate implements store.Store.
func (s *Store) Escalate(ctx context.Context, e store.Escalation) (bool, error) {
	applied := false
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		applied = false
		c, err := scanConv(tx.QueryRowContext(ctx, s.q(`SELECT `+convCols+` FROM conversations WHERE id = ?`+s.d.ForUpdate), e.ConversationID))
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("conversation %d: %w", e.ConversationID, store.ErrNotFound)
		}
		if err != nil {
			return err
		}
		now := s.o.Now()
		if !c.Status.Open() || c.Due() == nil {
			return nil // answered or resolved meanwhile
		}
		if e.FromStep < 0 {
			if c.SLABreachedAt != nil {
				return nil
			}
			if _, err := tx.ExecContext(ctx, s.q(`UPDATE conversations SET sla_breached_at = ?, sla_step = 0 WHERE id = ?`), us(now), c.ID); err != nil {
				return err
			}
			applied = true
			return event(ctx, s, tx, c.ID, store.EventSLABreached, "inroute", now, e.Data)
		}
		if c.SLABreachedAt == nil || c.SLAStep != e.FromStep {
			return nil
		}
		u := c.Urgency
		if e.Urgency != "" {
			u = u.Max(e.Urgency)
		}
		q := c.Queue
		if e.Queue != "" && c.Status == store.StatusQueued {
			q = e.Queue
		}
		if _, err := tx.ExecContext(ctx, s.q(`UPDATE conversations SET sla_step = ?, urgency = ?, urgency_rank = ?, queue = ?, updated_at = ?
			WHERE id = ?`), e.FromStep+1, string(u), u.Rank(), q, us(now), c.ID); err != nil {
			return err
		}
		applied = true
		data := map[string]any{"step": e.FromStep + 1}
		for k, v := range e.Data {
			data[k] = v
		}
		if u != c.Urgency {
			data["urgency"] = u
		}
		if q != c.Queue {
			data["queue"] = q
		}
		return event(ctx, s, tx, c.ID, store.EventEscalated, "inroute", now, data)
	})
	if err != nil {
		return false, fmt.Errorf("escalate conversation %d: %w", e.ConversationID, err)
	}
	return applied, nil
}

// LatestInbound implements store.Store.
func (s *Store) LatestInbound(ctx context.Context, conversationID int64) (*store.Message, error) {
	var id string
	// A person's message first: replies go to its channel and sender, and
	// a bounce's sender is the mail server.
	err := s.db.QueryRowContext(ctx, s.q(`SELECT id FROM messages WHERE conversation_id = ? AND direction = 'in'
		ORDER BY CASE WHEN automatic = '' THEN 0 ELSE 1 END, received_at DESC, created_at DESC, id DESC LIMIT 1`), conversationID).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("conversation %d has no customer message: %w", conversationID, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("latest message of conversation %d: %w", conversationID, err)
	}
	return s.message(ctx, id)
}
