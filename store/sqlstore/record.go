package sqlstore

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
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
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		res, err := newBatch(s, tx, ctx).run(in)
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

// batch is the state of one Record transaction. It works set-wise: a
// fixed number of statements per batch, not per message, because a round
// trip is what a message costs on PostgreSQL. It reads what the batch
// needs in a few queries, decides contacts and threading in memory, and
// writes everything with multi-row statements.
type batch struct {
	s   *Store
	tx  *sql.Tx
	ctx context.Context
	now time.Time

	verifiedOwner map[identKey]int64          // verified identity -> contact
	claimedBy     map[identKey]map[int64]bool // unverified identity -> contacts
	root          map[int64]int64             // contact -> root of its merge group
	threadConv    map[string]threadRef        // e-mail Message-ID of this batch -> conversation
	refConv       map[string]int64            // stored e-mail Message-ID -> conversation
	refOut        map[string]bool             // stored Message-IDs that are our own replies'

	ids      map[string][]int64 // allocated, unused ids per table
	merges   [][2]int64         // (root, from) to apply in SQL
	verify   []identKey         // unverified identities the writer now proved, with contact in verifyBy
	verifyBy []int64

	contacts   []any // new contact rows
	identities []any // new identity rows
	convs      map[int64]*store.Conversation
	cands      map[int64][]*store.Conversation // customer -> conversations threading may join
	dirty      map[int64]bool
	dirtyOrder []int64

	msgs   []any
	nMsgs  int
	atts   []any
	events []any
}

// exec, query and queryRow run a statement of the transaction through the
// store's prepared-statement cache.
func (b *batch) exec(query string, args ...any) (sql.Result, error) {
	st, err := b.s.stmt(b.ctx, b.tx, query)
	if err != nil {
		return nil, err
	}
	if st == nil {
		return b.tx.ExecContext(b.ctx, b.s.q(query), args...)
	}
	return st.ExecContext(b.ctx, args...)
}

func (b *batch) query(query string, args ...any) (*sql.Rows, error) {
	st, err := b.s.stmt(b.ctx, b.tx, query)
	if err != nil {
		return nil, err
	}
	if st == nil {
		return b.tx.QueryContext(b.ctx, b.s.q(query), args...)
	}
	return st.QueryContext(b.ctx, args...)
}

func (b *batch) queryRow(query string, args ...any) rowScanner {
	st, err := b.s.stmt(b.ctx, b.tx, query)
	if err != nil {
		return errRow{err}
	}
	if st == nil {
		return b.tx.QueryRowContext(b.ctx, b.s.q(query), args...)
	}
	return st.QueryRowContext(b.ctx, args...)
}

type rowScanner interface{ Scan(dest ...any) error }

type errRow struct{ err error }

func (r errRow) Scan(...any) error { return r.err }

func newBatch(s *Store, tx *sql.Tx, ctx context.Context) *batch {
	return &batch{
		s: s, tx: tx, ctx: ctx, now: s.o.Now().UTC(),
		verifiedOwner: map[identKey]int64{}, claimedBy: map[identKey]map[int64]bool{},
		root: map[int64]int64{}, threadConv: map[string]threadRef{}, refConv: map[string]int64{}, refOut: map[string]bool{}, ids: map[string][]int64{},
		convs: map[int64]*store.Conversation{}, cands: map[int64][]*store.Conversation{}, dirty: map[int64]bool{},
	}
}

// work is one message of the batch on its way through.
type work struct {
	in     *store.Inbound
	ids    []store.Identity
	dup    bool
	writer int64
}

func (b *batch) run(in []store.Inbound) ([]store.Result, error) {
	existing, err := b.findExisting(in)
	if err != nil {
		return nil, err
	}
	ws := make([]work, len(in))
	idents := make([][]store.Identity, len(in))
	for i := range in {
		ws[i] = work{in: &in[i], ids: store.Identities(in[i].Msg, b.s.o.PhoneRegion)}
		idents[i] = ws[i].ids
		if !in[i].Decision.Urgency.Valid() {
			return nil, fmt.Errorf("message %s: decision urgency %q is not valid", in[i].Msg.ID, in[i].Decision.Urgency)
		}
		if in[i].Decision.Queue == "" {
			return nil, fmt.Errorf("message %s: decision has no queue", in[i].Msg.ID)
		}
	}
	if err := b.loadIdentities(idents); err != nil {
		return nil, err
	}
	// Contacts, in memory: who wrote each message.
	first := map[identKey]int{} // channel message key -> first index in the batch
	for i := range ws {
		m := ws[i].in.Msg
		key := identKey{string(m.Channel), m.ChannelMessageID}
		if _, ok := existing[key]; ok {
			ws[i].dup = true
			continue
		}
		if _, ok := first[key]; ok {
			ws[i].dup = true
			continue
		}
		first[key] = i
		if ws[i].writer, err = b.resolve(m, ws[i].ids, len(in)); err != nil {
			return nil, err
		}
	}
	if err := b.writeContacts(); err != nil {
		return nil, err
	}
	// Conversations, in memory: which one each message continues.
	roots := map[int64]bool{}
	for _, w := range ws {
		if !w.dup {
			roots[b.rootOf(w.writer)] = true
		}
	}
	if err := b.loadConversations(roots, ws); err != nil {
		return nil, err
	}
	out := make([]store.Result, len(in))
	for i := range ws {
		if ws[i].dup {
			continue
		}
		if out[i], err = b.place(&ws[i], len(in)); err != nil {
			return nil, fmt.Errorf("message %s: %w", ws[i].in.Msg.ID, err)
		}
	}
	if err := b.flush(); err != nil {
		return nil, err
	}
	// Repeats report their conversation as it is now.
	for i := range ws {
		if !ws[i].dup {
			continue
		}
		m := ws[i].in.Msg
		key := identKey{string(m.Channel), m.ChannelMessageID}
		if j, ok := first[key]; ok {
			out[i] = out[j]
		} else {
			e := existing[key]
			c, ok := b.convs[e.conv]
			if !ok {
				if c, err = b.s.conversation(b.ctx, b.tx, e.conv); err != nil {
					return nil, err
				}
			}
			out[i] = store.Result{MessageID: e.id, Conversation: *c, Automatic: e.automatic != "",
				Started: e.threading == threadNew || strings.HasSuffix(e.threading, threadAutomaticNew)}
		}
		out[i].Duplicate, out[i].Joined, out[i].Reopened, out[i].Threading = true, false, false, "already recorded"
	}
	return out, nil
}

type existingMsg struct {
	id        string
	conv      int64
	threading string
	automatic string
}

// findExisting finds which messages of the batch are already stored. It
// asks by channel message id alone (one index scan for a list, where an OR
// of pairs is slow to plan) and checks the channel here.
func (b *batch) findExisting(in []store.Inbound) (map[identKey]existingMsg, error) {
	want := map[identKey]bool{}
	var ids []string
	for _, x := range in {
		k := identKey{string(x.Msg.Channel), x.Msg.ChannelMessageID}
		if !want[k] {
			want[k] = true
			ids = append(ids, k.value)
		}
	}
	found := map[identKey]existingMsg{}
	err := b.eachChunk(ids, `SELECT channel, channel_message_id, id, conversation_id, threading, automatic FROM messages WHERE channel_message_id IN `, func(rows *sql.Rows) error {
		var k identKey
		var e existingMsg
		if err := rows.Scan(&k.kind, &k.value, &e.id, &e.conv, &e.threading, &e.automatic); err != nil {
			return err
		}
		if want[k] {
			found[k] = e
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("find stored messages: %w", err)
	}
	return found, nil
}

// loadIdentities looks up every identity of the batch at once, by value.
func (b *batch) loadIdentities(idents [][]store.Identity) error {
	want := map[identKey]bool{}
	var values []string
	seenValue := map[string]bool{}
	for _, ids := range idents {
		for _, id := range ids {
			want[identKey{id.Kind, id.Value}] = true
			if !seenValue[id.Value] {
				seenValue[id.Value] = true
				values = append(values, id.Value)
			}
		}
	}
	err := b.eachChunk(values, `SELECT i.kind, i.value, i.contact_id, i.verified, COALESCE(c.merged_into, c.id)
		FROM identities i JOIN contacts c ON c.id = i.contact_id WHERE i.value IN `, func(rows *sql.Rows) error {
		var k identKey
		var contact, root int64
		var verified int
		if err := rows.Scan(&k.kind, &k.value, &contact, &verified, &root); err != nil {
			return err
		}
		if !want[k] {
			return nil
		}
		b.root[contact] = root
		if verified == 1 {
			b.verifiedOwner[k] = contact
		} else {
			b.claim(k, contact)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("look up identities: %w", err)
	}
	return nil
}

// eachChunk runs query + "(?, ?, ...)" for vals, 500 at a time, and calls
// fn for every row.
func (b *batch) eachChunk(vals []string, query string, fn func(*sql.Rows) error) error {
	for start := 0; start < len(vals); start += 500 {
		chunk := vals[start:min(start+500, len(vals))]
		rows, err := b.query(query+`(`+placeholders(len(chunk))+`)`, toAny(chunk)...)
		if err != nil {
			return err
		}
		for rows.Next() {
			if err := fn(rows); err != nil {
				rows.Close()
				return err
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
func (b *batch) rootOf(contact int64) int64 {
	if r, ok := b.root[contact]; ok {
		return r
	}
	return contact
}

// alloc returns a new id for table. Ids are taken from the database a
// batch's worth at a time (n at most), so rows can be written together.
func (b *batch) alloc(table string, n int) (int64, error) {
	if len(b.ids[table]) == 0 {
		ids, err := b.s.d.AllocIDs(b.ctx, b.tx, table, n)
		if err != nil {
			return 0, fmt.Errorf("allocate %s ids: %w", table, err)
		}
		b.ids[table] = ids
	}
	id := b.ids[table][0]
	b.ids[table] = b.ids[table][1:]
	return id, nil
}

// resolve decides, in memory, which contact wrote m: the owner of its
// channel address if known, else the owner of another verified identity it
// carries, else a new contact. Verified identities of several customers in
// one message mean they are one customer: the oldest absorbs the others.
func (b *batch) resolve(m *message.Message, ids []store.Identity, n int) (int64, error) {
	var writer int64
	var roots []int64
	for i, id := range ids {
		if !id.Verified {
			continue
		}
		owner, ok := b.verifiedOwner[identKey{id.Kind, id.Value}]
		if !ok {
			continue
		}
		if r := b.rootOf(owner); !slices.Contains(roots, r) {
			roots = append(roots, r)
		}
		if i == 0 || writer == 0 {
			writer = owner
		}
	}
	if writer == 0 {
		id, err := b.alloc("contacts", n)
		if err != nil {
			return 0, err
		}
		writer = id
		b.root[writer] = writer
		roots = append(roots, writer)
		b.contacts = append(b.contacts, writer, m.From.Name, us(b.now))
	}
	slices.Sort(roots)
	for _, other := range roots[1:] {
		b.merges = append(b.merges, [2]int64{roots[0], other})
		for c, r := range b.root {
			if r == other {
				b.root[c] = roots[0]
			}
		}
		b.root[other] = roots[0]
	}
	for _, id := range ids {
		k := identKey{id.Kind, id.Value}
		if id.Verified {
			if _, ok := b.verifiedOwner[k]; ok {
				continue
			}
			if b.claimedBy[k][writer] {
				b.verify = append(b.verify, k) // it was claimed before; now it is proved
				b.verifyBy = append(b.verifyBy, writer)
			} else {
				b.identities = append(b.identities, writer, k.kind, k.value, 1, us(b.now))
			}
			b.verifiedOwner[k] = writer
			continue
		}
		if b.verifiedOwner[k] == writer || b.claimedBy[k][writer] {
			continue
		}
		b.identities = append(b.identities, writer, k.kind, k.value, 0, us(b.now))
		b.claim(k, writer)
	}
	return writer, nil
}

// writeContacts stores the new contacts and identities and applies the
// merges, so that the conversations read next reflect them.
func (b *batch) writeContacts() error {
	if _, err := b.insertRows(`INSERT INTO contacts (id, name, created_at) VALUES `, 3, b.contacts, ""); err != nil {
		return fmt.Errorf("insert contacts: %w", err)
	}
	// A verified identity another transaction stored meanwhile is a unique
	// violation here, and the dialect runs the batch again.
	if _, err := b.insertRows(`INSERT INTO identities (contact_id, kind, value, verified, created_at) VALUES `, 5, b.identities, ""); err != nil {
		return fmt.Errorf("insert identities: %w", err)
	}
	for i, k := range b.verify {
		if _, err := b.exec(`UPDATE identities SET verified = 1 WHERE contact_id = ? AND kind = ? AND value = ?`, b.verifyBy[i], k.kind, k.value); err != nil {
			return fmt.Errorf("verify identity %s: %w", k.kind, err)
		}
	}
	for _, m := range b.merges {
		if _, err := b.merge(m[0], m[1], "inroute", true); err != nil {
			return err
		}
	}
	return nil
}

// loadConversations reads, in a few queries, every conversation the batch
// may continue: the customers' recent ones, and those its e-mail references
// and subject tokens point to. On PostgreSQL the customers and those rows
// are locked, so concurrent routers take turns per customer and an agent's
// claim waits for this transaction instead of being overwritten.
func (b *batch) loadConversations(roots map[int64]bool, ws []work) error {
	if len(roots) == 0 {
		return nil
	}
	ids := make([]any, 0, len(roots))
	for r := range roots {
		ids = append(ids, r)
	}
	slices.SortFunc(ids, func(x, y any) int { return cmp.Compare(x.(int64), y.(int64)) })
	in := placeholders(len(ids))
	if b.s.d.ForUpdate != "" {
		// Lock the customers, and only while they are still roots: a merge
		// that committed since we read them moved their conversations, and
		// threading against the old root would file the message apart.
		rows, err := b.query(`SELECT id FROM contacts WHERE id IN (`+in+`) AND merged_into IS NULL ORDER BY id`+b.s.d.ForUpdate, ids...)
		if err != nil {
			return fmt.Errorf("lock customers: %w", err)
		}
		n := 0
		for rows.Next() {
			n++
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("lock customers: %w", err)
		}
		if n != len(ids) {
			return errRaced
		}
	}
	o := b.s.o
	args := append(append([]any{}, ids...), us(b.now.Add(-o.ReopenWindow)), us(b.now.Add(-o.ChatWindow)))
	if err := b.readConvs(`SELECT `+convCols+` FROM conversations WHERE customer_id IN (`+in+`)
		AND (status <> 'resolved' OR resolved_at >= ? OR last_inbound_at >= ?) ORDER BY id`+b.s.d.ForUpdate, true, args...); err != nil {
		return fmt.Errorf("candidate conversations: %w", err)
	}
	// Conversations named by e-mail references and subject tokens.
	var refs []string
	var tokens []any
	for _, w := range ws {
		if w.dup {
			continue
		}
		refs = append(refs, threadRefs(w.in.Msg.Thread)...)
		if match := tokenRE.FindStringSubmatch(w.in.Msg.Subject); match != nil {
			id, _ := strconv.ParseInt(match[1], 10, 64)
			tokens = append(tokens, id)
		}
	}
	if len(refs) > 0 {
		rows, err := b.query(`SELECT thread_message_id, conversation_id, direction FROM messages WHERE thread_message_id IN (`+placeholders(len(refs))+`)`, toAny(refs)...)
		if err != nil {
			return fmt.Errorf("thread by references: %w", err)
		}
		for rows.Next() {
			var ref, dir string
			var conv int64
			if err := rows.Scan(&ref, &conv, &dir); err != nil {
				rows.Close()
				return err
			}
			if dir == string(store.Out) {
				b.refOut[ref] = true
			}
			if _, ok := b.refConv[ref]; !ok {
				b.refConv[ref] = conv
				tokens = append(tokens, conv)
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
	}
	var missing []any
	for _, t := range tokens {
		if _, ok := b.convs[t.(int64)]; !ok {
			missing = append(missing, t)
		}
	}
	if len(missing) > 0 {
		if err := b.readConvs(`SELECT `+convCols+` FROM conversations WHERE id IN (`+placeholders(len(missing))+`) ORDER BY id`+b.s.d.ForUpdate, false, missing...); err != nil {
			return fmt.Errorf("conversations by reference: %w", err)
		}
	}
	return nil
}

func (b *batch) readConvs(query string, candidates bool, args ...any) error {
	rows, err := b.query(query, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		c, err := scanConv(rows)
		if err != nil {
			return err
		}
		if _, ok := b.convs[c.ID]; ok {
			continue
		}
		b.convs[c.ID] = c
		if candidates {
			b.cands[c.CustomerID] = append(b.cands[c.CustomerID], c)
		}
	}
	return rows.Err()
}

// place threads one message, in memory, and queues its rows.
func (b *batch) place(w *work, n int) (store.Result, error) {
	m, d := w.in.Msg, w.in.Decision
	customer := b.rootOf(w.writer)
	conv, how := b.thread(m, customer, d)
	if m.Automatic != "" {
		return b.placeAutomatic(w, n, customer, conv, how)
	}
	res := store.Result{MessageID: m.ID, Threading: how}
	kind := store.EventRouted
	if conv == nil {
		res.Started = true
		var err error
		if conv, err = b.newConversation(w, n, customer, store.StatusQueued); err != nil {
			return res, err
		}
		conv.FirstResponseDue = b.deadline(store.FirstResponse, conv)
	} else {
		res.Joined = true
		res.PrevQueue, res.PrevUrgency, res.PrevStatus = conv.Queue, conv.Urgency, conv.Status
		res.Reopened = conv.Status == store.StatusResolved
		kind = store.EventJoined
		if res.Reopened {
			kind = store.EventReopened
		}
		b.join(conv, m, d)
	}
	if !b.dirty[conv.ID] {
		b.dirty[conv.ID] = true
		b.dirtyOrder = append(b.dirtyOrder, conv.ID)
	}
	res.Conversation = *conv
	if m.Thread.MessageID != "" {
		b.threadConv[m.Thread.MessageID] = threadRef{conv: conv.ID, customer: customer}
	}
	b.addMessage(w.in, w.ids[0], w.writer, conv.ID, how)
	data, _ := json.Marshal(map[string]string{
		"message_id": m.ID, "channel": string(m.Channel), "threading": how,
		"queue": conv.Queue, "urgency": string(conv.Urgency),
	})
	b.events = append(b.events, conv.ID, w.writer, kind, "router", us(b.now), string(data))
	return res, nil
}

// newConversation starts a conversation for w's message with its
// decision, in status.
func (b *batch) newConversation(w *work, n int, customer int64, status store.Status) (*store.Conversation, error) {
	m, d := w.in.Msg, w.in.Decision
	id, err := b.alloc("conversations", n)
	if err != nil {
		return nil, err
	}
	topic := d.Topic
	if topic == "" {
		topic = "general"
	}
	conv := &store.Conversation{
		ID: id, ContactID: w.writer, CustomerID: customer, Channel: m.Channel, LastChan: m.Channel, Status: status,
		Queue: d.Queue, Urgency: d.Urgency, Topic: topic, Subject: m.Subject, RulesVersion: d.RulesVersion,
		CreatedAt: b.now, UpdatedAt: b.now, QueuedAt: b.now, LastInboundAt: b.now,
	}
	b.convs[id] = conv
	b.cands[customer] = append(b.cands[customer], conv)
	return conv, nil
}

// placeAutomatic records a machine-written message. It is history, not
// work: on the conversation it refers to it changes nothing (no status,
// urgency, queue or response target moves, a resolved one stays
// resolved), and with nothing to refer to it gets a conversation that is
// resolved from the start, so no agent is ever handed it.
func (b *batch) placeAutomatic(w *work, n int, customer int64, conv *store.Conversation, how string) (store.Result, error) {
	m := w.in.Msg
	res := store.Result{MessageID: m.ID, Threading: how, Automatic: true}
	if conv == nil {
		res.Started = true
		var err error
		if conv, err = b.newConversation(w, n, customer, store.StatusResolved); err != nil {
			return res, err
		}
		resolved := b.now
		conv.ResolvedAt = &resolved
		b.dirty[conv.ID] = true
		b.dirtyOrder = append(b.dirtyOrder, conv.ID)
	} else {
		res.Joined = true
		res.PrevQueue, res.PrevUrgency, res.PrevStatus = conv.Queue, conv.Urgency, conv.Status
	}
	res.Conversation = *conv
	// Its own Message-ID is not registered for threading: a loop carries
	// the Message-ID of our own reply, and a later answer to that reply
	// must find the reply's conversation, not this copy's.
	b.addMessage(w.in, w.ids[0], w.writer, conv.ID, how)
	data, _ := json.Marshal(map[string]string{
		"message_id": m.ID, "channel": string(m.Channel), "automatic": string(m.Automatic), "threading": how,
	})
	b.events = append(b.events, conv.ID, w.writer, store.EventAutomatic, "router", us(b.now), string(data))
	return res, nil
}

// thread finds the conversation m continues, or nil for a new one, and
// says how in words. The rules, in order: e-mail references, the
// conversation token in the subject, the same chat channel within the
// chat window, an open conversation on the same topic on any channel.
// Only the customer's own conversations are considered, with one
// exception below.
//
// A machine-written message (m.Automatic) follows only what it names:
// its references and the token, into a conversation in any state. It may
// reach another customer's conversation only by naming one of our own
// replies' Message-IDs (unguessable: a ULID): a bounce comes from the
// mail server and an out-of-office reply often from another address than
// the one we wrote to. A customer's own Message-ID or a token, which
// others may know or guess, leads only into the sender's conversations.
func (b *batch) thread(m *message.Message, customer int64, d store.Decision) (*store.Conversation, string) {
	o := b.s.o
	auto := m.Automatic != ""
	usable := func(c *store.Conversation) bool {
		if auto {
			return true
		}
		if c.CustomerID != customer {
			return false
		}
		if c.Status.Open() {
			return true
		}
		return c.ResolvedAt != nil && !c.ResolvedAt.Before(b.now.Add(-o.ReopenWindow))
	}
	verb := func(c *store.Conversation) string {
		switch {
		case auto:
			return fmt.Sprintf("automatic message (%s) recorded on", m.Automatic)
		case c.Status.Open():
			return "joined"
		}
		return "reopened"
	}
	for _, r := range threadRefs(m.Thread) {
		var c *store.Conversation
		if t, ok := b.threadConv[r]; ok && t.customer == customer {
			c = b.convs[t.conv]
		} else if id, ok := b.refConv[r]; ok {
			c = b.convs[id]
			if auto && c != nil && c.CustomerID != customer && !b.refOut[r] {
				c = nil
			}
		}
		if c != nil && usable(c) {
			return c, fmt.Sprintf("%s conversation %d: e-mail reply to a message in it (In-Reply-To/References)", verb(c), c.ID)
		}
	}
	if match := tokenRE.FindStringSubmatch(m.Subject); match != nil {
		id, _ := strconv.ParseInt(match[1], 10, 64)
		// A token is easy to guess, unlike a Message-ID: a machine's
		// message follows it only into the sender's own conversations.
		if c, ok := b.convs[id]; ok && usable(c) && (!auto || c.CustomerID == customer) {
			return c, fmt.Sprintf("%s conversation %d: its token %s is in the subject", verb(c), c.ID, c.Token())
		}
	}
	if auto {
		return nil, fmt.Sprintf("automatic message (%s) %s", m.Automatic, threadAutomaticNew)
	}
	cands := b.cands[customer]
	if m.Channel != message.Email {
		var best *store.Conversation
		for _, c := range cands {
			if c.LastChan == m.Channel && !c.LastInboundAt.Before(b.now.Add(-o.ChatWindow)) &&
				(best == nil || c.LastInboundAt.After(best.LastInboundAt) || (c.LastInboundAt.Equal(best.LastInboundAt) && c.ID > best.ID)) {
				best = c
			}
		}
		if best != nil && usable(best) {
			return best, fmt.Sprintf("%s conversation %d: the customer wrote on %s within %s", verb(best), best.ID, m.Channel, o.ChatWindow)
		}
	}
	var best *store.Conversation
	for _, c := range cands {
		if c.Status.Open() && c.Topic == d.Topic && (best == nil || c.UpdatedAt.After(best.UpdatedAt) || (c.UpdatedAt.Equal(best.UpdatedAt) && c.ID > best.ID)) {
			best = c
		}
	}
	if best != nil {
		return best, fmt.Sprintf("joined conversation %d: the customer's open conversation about %q (started on %s)", best.ID, d.Topic, best.Channel)
	}
	return nil, threadNew
}

// threadNew is the threading of a message that starts a conversation.
const threadNew = "new conversation"

// threadAutomaticNew ends the threading of a machine-written message that
// started its (resolved) conversation; a duplicate recognises it by this.
const threadAutomaticNew = "with no conversation to join: recorded as resolved"

// join updates c for a new customer message: the higher urgency wins, a
// resolved conversation reopens, one waiting on the customer goes back to
// its agent (or to the queue if it has none).
func (b *batch) join(c *store.Conversation, m *message.Message, d store.Decision) {
	c.Urgency = c.Urgency.Max(d.Urgency)
	switch c.Status {
	case store.StatusResolved:
		c.Status, c.QueuedAt, c.ResolvedAt, c.LeaseUntil = store.StatusQueued, b.now, nil, nil
	case store.StatusWaiting:
		if c.Assignee != "" {
			c.Status = store.StatusAssigned
		} else {
			c.Status, c.QueuedAt = store.StatusQueued, b.now
		}
	}
	c.LastChan, c.LastInboundAt, c.UpdatedAt = m.Channel, b.now, b.now
	// The customer waits for an answer again: after an agent reply, the
	// next-response target starts (the first-response one, if it still
	// runs, already covers this message).
	if c.FirstResponseDue == nil && c.NextResponseDue == nil {
		c.NextResponseDue = b.deadline(store.NextResponse, c)
	}
	if d.RulesVersion != "" {
		c.RulesVersion = d.RulesVersion
	}
}

const msgColumns = 22

func (b *batch) addMessage(in *store.Inbound, from store.Identity, writer, conv int64, how string) {
	m := in.Msg
	thread, _ := json.Marshal(m.Thread)
	extra := "{}"
	if len(m.Extra) > 0 {
		e, _ := json.Marshal(m.Extra)
		extra = string(e)
	}
	dec, _ := json.Marshal(in.Decision)
	threadID := m.Thread.MessageID
	if m.Automatic != "" {
		threadID = "" // see placeAutomatic: never a threading target
	}
	b.msgs = append(b.msgs, m.ID, conv, writer, string(store.In), string(m.Channel), m.ChannelMessageID,
		from.Kind, from.Value, m.From.Name, m.To.Address, m.Subject, m.Text, m.HTML, threadID,
		string(thread), m.Language, extra, string(dec), how, string(m.Automatic), us(m.ReceivedAt), us(b.now))
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
}

// deadline is c's response target of kind, counted from now.
func (b *batch) deadline(kind store.SLAKind, c *store.Conversation) *time.Time {
	if b.s.o.Deadline == nil {
		return nil
	}
	return b.s.o.Deadline(kind, c.Queue, c.Urgency, b.now)
}

func nullUS(t *time.Time) any {
	if t == nil {
		return nil
	}
	return us(*t)
}

// flush writes the batch's conversations, messages, attachments and events.
func (b *batch) flush() error {
	convRows := make([]any, 0, 21*len(b.dirtyOrder))
	for _, id := range b.dirtyOrder {
		c := b.convs[id]
		convRows = append(convRows, c.ID, c.ContactID, c.CustomerID, string(c.Channel), string(c.LastChan), string(c.Status),
			c.Queue, string(c.Urgency), c.Urgency.Rank(), c.Topic, c.Assignee, c.Subject, c.RulesVersion,
			us(c.CreatedAt), us(c.UpdatedAt), us(c.QueuedAt), us(c.LastInboundAt), nullUS(c.ResolvedAt),
			nullUS(c.FirstResponseDue), nullUS(c.NextResponseDue), nullUS(c.LeaseUntil))
	}
	// New and changed conversations in one statement: an upsert on the id.
	if _, err := b.insertRows(`INSERT INTO conversations (id, contact_id, customer_id, channel, last_channel, status, queue,
		urgency, urgency_rank, topic, assignee, subject, rules_version, created_at, updated_at, queued_at, last_inbound_at,
		resolved_at, first_response_due, next_response_due, lease_until) VALUES `, 21, convRows,
		` ON CONFLICT (id) DO UPDATE SET customer_id = excluded.customer_id, last_channel = excluded.last_channel,
		status = excluded.status, queue = excluded.queue, urgency = excluded.urgency, urgency_rank = excluded.urgency_rank,
		assignee = excluded.assignee, rules_version = excluded.rules_version, updated_at = excluded.updated_at,
		queued_at = excluded.queued_at, last_inbound_at = excluded.last_inbound_at, resolved_at = excluded.resolved_at,
		first_response_due = excluded.first_response_due, next_response_due = excluded.next_response_due,
		lease_until = excluded.lease_until`); err != nil {
		return fmt.Errorf("write conversations: %w", err)
	}
	n, err := b.insertRows(`INSERT INTO messages (id, conversation_id, contact_id, direction, channel, channel_message_id,
		from_kind, from_value, from_name, to_address, subject, text, html, thread_message_id, thread_json, language,
		extra_json, decision_json, threading, automatic, received_at, created_at) VALUES `, msgColumns, b.msgs,
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

var tokenRE = regexp.MustCompile(`\[#(\d{1,18})\]`)

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

// insertRows inserts flat rows of cols values each, 100 rows a statement.
func (b *batch) insertRows(head string, cols int, vals []any, tail string) (int64, error) {
	const perStmt = 100
	row := "(" + placeholders(cols) + ")"
	var total int64
	for start := 0; start < len(vals); start += perStmt * cols {
		chunk := vals[start:min(start+perStmt*cols, len(vals))]
		rows := len(chunk) / cols
		q := head + strings.TrimSuffix(strings.Repeat(row+", ", rows), ", ") + tail
		res, err := b.exec((q), chunk...)
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
