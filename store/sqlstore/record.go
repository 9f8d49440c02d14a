package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/inroute/inroute/message"
	"github.com/inroute/inroute/store"
)

// Record implements store.Store. The whole batch is one transaction: the
// router calls it with the messages of one fetch, so a batch costs one
// commit (one fsync) however many messages it holds.
func (s *Store) Record(ctx context.Context, in []store.Inbound) ([]store.Result, error) {
	if len(in) == 0 {
		return nil, nil
	}
	for i := range in {
		if in[i].Msg == nil {
			return nil, fmt.Errorf("record: inbound %d has no message", i)
		}
	}
	var out []store.Result
	err := retryTx(ctx, s.db, s.d, func(tx *sql.Tx) error {
		b := &batch{s: s, tx: tx, ctx: ctx, now: s.o.Now().UTC()}
		res, err := b.run(in)
		out = res
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("record %d messages: %w", len(in), err)
	}
	return out, nil
}

type identKey struct{ kind, value string }

type threadRef struct{ conv, customer int64 }

// batch is the state of one Record transaction. Rows for messages,
// attachments and events are collected and written with multi-row inserts
// at the end: that is most of the statements, and round trips are what a
// batch costs on PostgreSQL.
type batch struct {
	s   *Store
	tx  *sql.Tx
	ctx context.Context
	now time.Time

	verifiedOwner map[identKey]int64          // verified identity -> contact
	claimedBy     map[identKey]map[int64]bool // unverified identity -> contacts
	customer      map[int64]int64             // contact -> root of its merge group
	locked        map[int64]bool              // customers locked in this tx
	threadConv    map[string]threadRef        // e-mail Message-ID of this batch -> conversation

	msgs   []any
	nMsgs  int
	atts   []any
	events []any
}

func (b *batch) q(query string) string { return b.s.q(query) }

func (b *batch) run(in []store.Inbound) ([]store.Result, error) {
	b.verifiedOwner = map[identKey]int64{}
	b.claimedBy = map[identKey]map[int64]bool{}
	b.customer = map[int64]int64{}
	b.locked = map[int64]bool{}
	b.threadConv = map[string]threadRef{}

	existing, err := b.findExisting(in)
	if err != nil {
		return nil, err
	}
	idents := make([][]store.Identity, len(in))
	for i := range in {
		idents[i] = store.Identities(in[i].Msg, b.s.o.PhoneRegion)
	}
	if err := b.loadIdentities(idents); err != nil {
		return nil, err
	}
	out := make([]store.Result, len(in))
	inBatch := map[identKey]int{} // channel message key -> index of first occurrence
	for i := range in {
		m := in[i].Msg
		key := identKey{string(m.Channel), m.ChannelMessageID}
		if conv, ok := existing[key]; ok {
			c, err := b.s.conversation(b.ctx, b.tx, conv.conv)
			if err != nil {
				return nil, err
			}
			out[i] = store.Result{MessageID: conv.id, Conversation: *c, Duplicate: true, Threading: "already recorded"}
			continue
		}
		if first, ok := inBatch[key]; ok {
			out[i] = out[first]
			out[i].Duplicate = true
			out[i].Threading = "already recorded"
			continue
		}
		inBatch[key] = i
		res, err := b.recordOne(&in[i], idents[i])
		if err != nil {
			return nil, fmt.Errorf("message %s: %w", m.ID, err)
		}
		out[i] = res
	}
	if err := b.flush(); err != nil {
		return nil, err
	}
	return out, nil
}

type existingMsg struct {
	id   string
	conv int64
}

// findExisting finds which messages of the batch are already stored.
func (b *batch) findExisting(in []store.Inbound) (map[identKey]existingMsg, error) {
	found := map[identKey]existingMsg{}
	for start := 0; start < len(in); start += 200 {
		chunk := in[start:min(start+200, len(in))]
		args := make([]any, 0, 2*len(chunk))
		conds := make([]string, 0, len(chunk))
		for _, x := range chunk {
			conds = append(conds, "(channel = ? AND channel_message_id = ?)")
			args = append(args, string(x.Msg.Channel), x.Msg.ChannelMessageID)
		}
		rows, err := b.tx.QueryContext(b.ctx, b.q(`SELECT channel, channel_message_id, id, conversation_id FROM messages WHERE `+strings.Join(conds, " OR ")), args...)
		if err != nil {
			return nil, fmt.Errorf("find stored messages: %w", err)
		}
		for rows.Next() {
			var k identKey
			var e existingMsg
			if err := rows.Scan(&k.kind, &k.value, &e.id, &e.conv); err != nil {
				rows.Close()
				return nil, err
			}
			found[k] = e
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	return found, nil
}

// loadIdentities looks up every identity of the batch at once.
func (b *batch) loadIdentities(idents [][]store.Identity) error {
	var keys []identKey
	seen := map[identKey]bool{}
	for _, ids := range idents {
		for _, id := range ids {
			k := identKey{id.Kind, id.Value}
			if !seen[k] {
				seen[k] = true
				keys = append(keys, k)
			}
		}
	}
	for start := 0; start < len(keys); start += 200 {
		chunk := keys[start:min(start+200, len(keys))]
		args := make([]any, 0, 2*len(chunk))
		conds := make([]string, 0, len(chunk))
		for _, k := range chunk {
			conds = append(conds, "(i.kind = ? AND i.value = ?)")
			args = append(args, k.kind, k.value)
		}
		rows, err := b.tx.QueryContext(b.ctx, b.q(`SELECT i.kind, i.value, i.contact_id, i.verified, COALESCE(c.merged_into, c.id)
			FROM identities i JOIN contacts c ON c.id = i.contact_id WHERE `+strings.Join(conds, " OR ")), args...)
		if err != nil {
			return fmt.Errorf("look up identities: %w", err)
		}
		for rows.Next() {
			var k identKey
			var contact, root int64
			var verified int
			if err := rows.Scan(&k.kind, &k.value, &contact, &verified, &root); err != nil {
				rows.Close()
				return err
			}
			b.customer[contact] = root
			if verified == 1 {
				b.verifiedOwner[k] = contact
			} else {
				b.claim(k, contact)
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
	}
	return nil
}

func (b *batch) claim(k identKey, contact int64) {
	if b.claimedBy[k] == nil {
		b.claimedBy[k] = map[int64]bool{}
	}
	b.claimedBy[k][contact] = true
}

// customerOf returns the root of contact's merge group.
func (b *batch) customerOf(contact int64) (int64, error) {
	if root, ok := b.customer[contact]; ok {
		return root, nil
	}
	var root int64
	err := b.tx.QueryRowContext(b.ctx, b.q(`SELECT COALESCE(merged_into, id) FROM contacts WHERE id = ?`), contact).Scan(&root)
	if err != nil {
		return 0, fmt.Errorf("contact %d: %w", contact, err)
	}
	b.customer[contact] = root
	return root, nil
}

// resolveContact finds or creates the contact that wrote m, merges the
// customers its verified identities prove to be one, and stores the
// identities it did not know. It returns the writer and its customer.
func (b *batch) resolveContact(m *message.Message, ids []store.Identity) (writer, customer int64, err error) {
	var roots []int64
	for i, id := range ids {
		if !id.Verified {
			continue
		}
		owner, ok := b.verifiedOwner[identKey{id.Kind, id.Value}]
		if !ok {
			continue
		}
		root, err := b.customerOf(owner)
		if err != nil {
			return 0, 0, err
		}
		if !slices.Contains(roots, root) {
			roots = append(roots, root)
		}
		if i == 0 || writer == 0 {
			writer = owner
		}
	}
	if writer == 0 {
		err := b.tx.QueryRowContext(b.ctx, b.q(`INSERT INTO contacts (name, created_at) VALUES (?, ?) RETURNING id`),
			m.From.Name, us(b.now)).Scan(&writer)
		if err != nil {
			return 0, 0, fmt.Errorf("create contact: %w", err)
		}
		b.customer[writer] = writer
		roots = append(roots, writer)
	}
	// Verified identities of two customers in one message: they are one
	// customer. The oldest absorbs the others; an admin can undo it.
	slices.Sort(roots)
	for _, other := range roots[1:] {
		if _, err := b.merge(roots[0], other, "inroute", true); err != nil {
			return 0, 0, err
		}
	}
	for _, id := range ids {
		k := identKey{id.Kind, id.Value}
		if id.Verified {
			if _, ok := b.verifiedOwner[k]; ok {
				continue
			}
			if b.claimedBy[k][writer] {
				// The writer claimed it before without proof; now it has.
				_, err = b.tx.ExecContext(b.ctx, b.q(`UPDATE identities SET verified = 1 WHERE contact_id = ? AND kind = ? AND value = ?`), writer, k.kind, k.value)
			} else {
				var res sql.Result
				res, err = b.tx.ExecContext(b.ctx, b.q(`INSERT INTO identities (contact_id, kind, value, verified, created_at) VALUES (?, ?, ?, 1, ?)
					ON CONFLICT (kind, value) WHERE verified = 1 DO NOTHING`), writer, k.kind, k.value, us(b.now))
				if err == nil {
					if n, _ := res.RowsAffected(); n == 0 {
						return 0, 0, errRaced // another transaction took it just now
					}
				}
			}
			if err != nil {
				return 0, 0, fmt.Errorf("store identity %s: %w", k.kind, err)
			}
			b.verifiedOwner[k] = writer
			continue
		}
		if b.verifiedOwner[k] == writer || b.claimedBy[k][writer] {
			continue
		}
		if _, err := b.tx.ExecContext(b.ctx, b.q(`INSERT INTO identities (contact_id, kind, value, verified, created_at) VALUES (?, ?, ?, 0, ?)
			ON CONFLICT (contact_id, kind, value) DO NOTHING`), writer, k.kind, k.value, us(b.now)); err != nil {
			return 0, 0, fmt.Errorf("store identity %s: %w", k.kind, err)
		}
		b.claim(k, writer)
	}
	customer, err = b.customerOf(writer)
	return writer, customer, err
}

func (b *batch) recordOne(in *store.Inbound, ids []store.Identity) (store.Result, error) {
	m, d := in.Msg, in.Decision
	if !d.Urgency.Valid() {
		return store.Result{}, fmt.Errorf("decision urgency %q is not valid", d.Urgency)
	}
	if d.Queue == "" {
		return store.Result{}, errors.New("decision has no queue")
	}
	writer, customer, err := b.resolveContact(m, ids)
	if err != nil {
		return store.Result{}, err
	}
	if b.s.d.LockCustomer != "" && !b.locked[customer] {
		// Two routers threading one customer's messages take turns, so
		// they cannot both open a conversation for the same problem.
		if _, err := b.tx.ExecContext(b.ctx, b.q(b.s.d.LockCustomer), customer); err != nil {
			return store.Result{}, fmt.Errorf("lock customer %d: %w", customer, err)
		}
		b.locked[customer] = true
	}
	conv, how, err := b.thread(m, customer, d)
	if err != nil {
		return store.Result{}, err
	}
	res := store.Result{MessageID: m.ID, Threading: how}
	kind := store.EventRouted
	if conv == nil {
		c, err := b.newConversation(m, writer, customer, d)
		if err != nil {
			return store.Result{}, err
		}
		res.Conversation = *c
	} else {
		res.Joined = true
		res.PrevQueue, res.PrevUrgency, res.PrevStatus = conv.Queue, conv.Urgency, conv.Status
		res.Reopened = conv.Status == store.StatusResolved
		kind = store.EventJoined
		if res.Reopened {
			kind = store.EventReopened
		}
		if err := b.join(conv, m, d); err != nil {
			return store.Result{}, err
		}
		res.Conversation = *conv
	}
	if m.Thread.MessageID != "" {
		b.threadConv[m.Thread.MessageID] = threadRef{conv: res.Conversation.ID, customer: customer}
	}
	if err := b.addMessage(in, ids[0], writer, res.Conversation.ID, how); err != nil {
		return store.Result{}, err
	}
	data, _ := json.Marshal(map[string]string{
		"message_id": m.ID, "channel": string(m.Channel), "threading": how,
		"queue": res.Conversation.Queue, "urgency": string(res.Conversation.Urgency),
	})
	b.events = append(b.events, res.Conversation.ID, writer, kind, "router", us(b.now), string(data))
	return res, nil
}

var tokenRE = regexp.MustCompile(`\[#(\d{1,18})\]`)

// thread finds the conversation m continues, or nil for a new one, and
// says how in words. The rules, in order: e-mail references, the
// conversation token in the subject, the same chat channel within the
// chat window, an open conversation on the same topic on any channel.
// Only the customer's own conversations are ever considered.
func (b *batch) thread(m *message.Message, customer int64, d store.Decision) (*store.Conversation, string, error) {
	o := b.s.o
	usable := func(c *store.Conversation) bool {
		if c.Status.Open() {
			return true
		}
		return c.ResolvedAt != nil && !c.ResolvedAt.Before(b.now.Add(-o.ReopenWindow))
	}
	verb := func(c *store.Conversation) string {
		if c.Status.Open() {
			return "joined"
		}
		return "reopened"
	}
	if refs := threadRefs(m.Thread); len(refs) > 0 {
		var convID int64
		for _, r := range refs {
			if t, ok := b.threadConv[r]; ok && t.customer == customer {
				convID = t.conv
				break
			}
		}
		if convID == 0 {
			err := b.tx.QueryRowContext(b.ctx, b.q(`SELECT m.conversation_id FROM messages m JOIN conversations c ON c.id = m.conversation_id
				WHERE m.thread_message_id IN (`+placeholders(len(refs))+`) AND c.customer_id = ?
				ORDER BY m.received_at DESC LIMIT 1`), append(toAny(refs), customer)...).Scan(&convID)
			if err != nil && !errors.Is(err, sql.ErrNoRows) {
				return nil, "", fmt.Errorf("thread by references: %w", err)
			}
		}
		if convID != 0 {
			c, err := b.s.conversation(b.ctx, b.tx, convID)
			if err != nil {
				return nil, "", err
			}
			if usable(c) {
				return c, fmt.Sprintf("%s conversation %d: e-mail reply to a message in it (In-Reply-To/References)", verb(c), c.ID), nil
			}
		}
	}
	if match := tokenRE.FindStringSubmatch(m.Subject); match != nil {
		id, _ := strconv.ParseInt(match[1], 10, 64)
		c, err := b.s.conversation(b.ctx, b.tx, id)
		switch {
		case errors.Is(err, store.ErrNotFound):
		case err != nil:
			return nil, "", err
		case c.CustomerID == customer && usable(c):
			return c, fmt.Sprintf("%s conversation %d: its token %s is in the subject", verb(c), c.ID, c.Token()), nil
		}
	}
	cands, err := b.candidates(customer)
	if err != nil {
		return nil, "", err
	}
	if m.Channel != message.Email {
		var best *store.Conversation
		for _, c := range cands {
			if c.LastChan == m.Channel && !c.LastInboundAt.Before(b.now.Add(-o.ChatWindow)) &&
				(best == nil || c.LastInboundAt.After(best.LastInboundAt)) {
				best = c
			}
		}
		if best != nil && usable(best) {
			return best, fmt.Sprintf("%s conversation %d: the customer wrote on %s within %s", verb(best), best.ID, m.Channel, o.ChatWindow), nil
		}
	}
	for _, c := range cands {
		if c.Status.Open() && c.Topic == d.Topic {
			return c, fmt.Sprintf("joined conversation %d: the customer's open conversation about %q (started on %s)", c.ID, d.Topic, c.Channel), nil
		}
	}
	return nil, "new conversation", nil
}

func threadRefs(t message.Thread) []string {
	var refs []string
	add := func(r string) {
		r = strings.TrimSpace(r)
		if r != "" && !slices.Contains(refs, r) {
			refs = append(refs, r)
		}
	}
	add(t.InReplyTo)
	for i := len(t.References) - 1; i >= 0; i-- { // nearest first
		add(t.References[i])
	}
	return refs
}

func toAny(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

// candidates are the customer's conversations threading may join: open
// ones, ones resolved recently enough to reopen, ones active in the chat
// window.
func (b *batch) candidates(customer int64) ([]*store.Conversation, error) {
	o := b.s.o
	rows, err := b.tx.QueryContext(b.ctx, b.q(`SELECT `+convCols+` FROM conversations
		WHERE customer_id = ? AND (status <> 'resolved' OR resolved_at >= ? OR last_inbound_at >= ?)
		ORDER BY updated_at DESC, id DESC LIMIT 50`),
		customer, us(b.now.Add(-o.ReopenWindow)), us(b.now.Add(-o.ChatWindow)))
	if err != nil {
		return nil, fmt.Errorf("candidate conversations: %w", err)
	}
	defer rows.Close()
	var out []*store.Conversation
	for rows.Next() {
		c, err := scanConv(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

func (b *batch) newConversation(m *message.Message, writer, customer int64, d store.Decision) (*store.Conversation, error) {
	topic := d.Topic
	if topic == "" {
		topic = "general"
	}
	c := &store.Conversation{
		ContactID: writer, Channel: m.Channel, LastChan: m.Channel, Status: store.StatusQueued,
		Queue: d.Queue, Urgency: d.Urgency, Topic: topic, Subject: m.Subject, RulesVersion: d.RulesVersion,
		CreatedAt: b.now, UpdatedAt: b.now, QueuedAt: b.now, LastInboundAt: b.now,
	}
	c.CustomerID = customer
	err := b.tx.QueryRowContext(b.ctx, b.q(`INSERT INTO conversations (contact_id, customer_id, channel, last_channel, status, queue,
		urgency, urgency_rank, topic, subject, rules_version, created_at, updated_at, queued_at, last_inbound_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`),
		writer, customer, string(m.Channel), string(m.Channel), string(c.Status), c.Queue,
		string(c.Urgency), c.Urgency.Rank(), c.Topic, c.Subject, c.RulesVersion, us(b.now), us(b.now), us(b.now), us(b.now)).Scan(&c.ID)
	if err != nil {
		return nil, fmt.Errorf("create conversation: %w", err)
	}
	return c, nil
}

// join updates c for a new customer message: the higher urgency wins, a
// resolved conversation reopens, one waiting on the customer goes back to
// its agent (or to the queue if it has none).
func (b *batch) join(c *store.Conversation, m *message.Message, d store.Decision) error {
	c.Urgency = c.Urgency.Max(d.Urgency)
	switch c.Status {
	case store.StatusResolved:
		c.Status, c.QueuedAt, c.ResolvedAt = store.StatusQueued, b.now, nil
	case store.StatusWaiting:
		if c.Assignee != "" {
			c.Status = store.StatusAssigned
		} else {
			c.Status, c.QueuedAt = store.StatusQueued, b.now
		}
	}
	c.LastChan, c.LastInboundAt, c.UpdatedAt = m.Channel, b.now, b.now
	if d.RulesVersion != "" {
		c.RulesVersion = d.RulesVersion
	}
	_, err := b.tx.ExecContext(b.ctx, b.q(`UPDATE conversations SET urgency = ?, urgency_rank = ?, status = ?, queued_at = ?,
		resolved_at = NULL, last_channel = ?, last_inbound_at = ?, updated_at = ?, rules_version = ? WHERE id = ?`),
		string(c.Urgency), c.Urgency.Rank(), string(c.Status), us(c.QueuedAt), string(c.LastChan), us(b.now), us(b.now), c.RulesVersion, c.ID)
	if err != nil {
		return fmt.Errorf("update conversation %d: %w", c.ID, err)
	}
	return nil
}

const msgColumns = 21

func (b *batch) addMessage(in *store.Inbound, from store.Identity, writer, conv int64, how string) error {
	m := in.Msg
	thread, _ := json.Marshal(m.Thread)
	extra := "{}"
	if len(m.Extra) > 0 {
		e, _ := json.Marshal(m.Extra)
		extra = string(e)
	}
	dec, _ := json.Marshal(in.Decision)
	b.msgs = append(b.msgs, m.ID, conv, writer, string(store.In), string(m.Channel), m.ChannelMessageID,
		from.Kind, from.Value, m.From.Name, m.To.Address, m.Subject, m.Text, m.HTML, m.Thread.MessageID,
		string(thread), m.Language, extra, string(dec), how, us(m.ReceivedAt), us(b.now))
	b.nMsgs++
	atts := in.Attachments
	if atts == nil {
		for _, a := range m.Attachments {
			atts = append(atts, store.Attachment{Name: a.Name, ContentType: a.ContentType, Size: a.Size, Ref: a.URL})
		}
	}
	for _, a := range atts {
		b.atts = append(b.atts, m.ID, a.Name, a.ContentType, a.Size, a.Ref)
	}
	return nil
}

// flush writes the collected rows with multi-row inserts.
func (b *batch) flush() error {
	n, err := b.insertRows(`INSERT INTO messages (id, conversation_id, contact_id, direction, channel, channel_message_id,
		from_kind, from_value, from_name, to_address, subject, text, html, thread_message_id, thread_json, language,
		extra_json, decision_json, threading, received_at, created_at) VALUES `, msgColumns, b.msgs,
		` ON CONFLICT (channel, channel_message_id) DO NOTHING`)
	if err != nil {
		return fmt.Errorf("insert messages: %w", err)
	}
	if n != int64(b.nMsgs) {
		// A concurrent router stored one of these messages after we looked:
		// run again, and it is a duplicate.
		return errRaced
	}
	if _, err := b.insertRows(`INSERT INTO attachments (message_id, name, content_type, size, ref) VALUES `, 5, b.atts, ""); err != nil {
		return fmt.Errorf("insert attachments: %w", err)
	}
	if _, err := b.insertRows(`INSERT INTO events (conversation_id, contact_id, kind, actor, at, data_json) VALUES `, 6, b.events, ""); err != nil {
		return fmt.Errorf("insert events: %w", err)
	}
	return nil
}

// insertRows inserts flat rows of cols values each, 100 rows a statement.
func (b *batch) insertRows(head string, cols int, vals []any, tail string) (int64, error) {
	const perStmt = 100
	row := "(" + placeholders(cols) + ")"
	var total int64
	for start := 0; start < len(vals); start += perStmt * cols {
		chunk := vals[start:min(start+perStmt*cols, len(vals))]
		rows := len(chunk) / cols
		q := head + strings.TrimSuffix(strings.Repeat(row+", ", rows), ", ") + tail
		res, err := b.tx.ExecContext(b.ctx, b.q(q), chunk...)
		if err != nil {
			return total, err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return total, err
		}
		total += n
	}
	return total, nil
}
