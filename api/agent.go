package api

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/inroute/inroute/bus"
	"github.com/inroute/inroute/desk"
	"github.com/inroute/inroute/message"
	"github.com/inroute/inroute/store"
	"go.uber.org/zap"
)

// More stable error codes, for the agent endpoints.
const (
	CodeInvalidRequest = "invalid_request"
	CodeAtCapacity     = "at_capacity"
	CodeConflict       = "conflict"
)

// Agents serves the agent endpoints (docs/agent-api.md).
type Agents struct {
	Desk   *desk.Desk
	Tokens *Tokens
	// Seen records that an agent used the API (for "online").
	Seen func(ctx context.Context, agent string) error
	// MaxWait caps ?wait= on next.
	MaxWait time.Duration
	// MaxBody bounds request bodies (replies carry attachments).
	MaxBody int64
	// Blobs serves attachment bytes; nil leaves GET /v1/attachments out.
	Blobs interface {
		Open(ref string) (io.ReadCloser, error)
	}
	Log *zap.Logger

	mu       sync.Mutex
	lastSeen map[string]time.Time
}

// Register adds the agent endpoints to mux.
func (a *Agents) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/me", a.auth(a.me))
	mux.HandleFunc("POST /v1/agent/next", a.auth(a.next))
	mux.HandleFunc("GET /v1/queues", a.auth(a.queues))
	mux.HandleFunc("GET /v1/conversations", a.auth(a.search))
	mux.HandleFunc("GET /v1/conversations/{id}", a.auth(a.show))
	mux.HandleFunc("POST /v1/conversations/{id}/{action}", a.auth(a.act))
	if a.Blobs != nil {
		mux.HandleFunc("GET /v1/attachments/{ref}", a.auth(a.attachment))
	}
}

// attachment serves a stored attachment's bytes by its content reference
// ("sha256:<hex>", from a message's attachments). The bytes are always a
// download, never rendered: an HTML attachment must not run as the console.
func (a *Agents) attachment(w http.ResponseWriter, r *http.Request) {
	ref := r.PathValue("ref")
	f, err := a.Blobs.Open(ref)
	if err != nil {
		WriteError(w, http.StatusNotFound, CodeNotFound, fmt.Sprintf("no attachment %q", ref))
		return
	}
	defer f.Close()
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Disposition", "attachment")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Cache-Control", "private, max-age=31536000, immutable")
	_, _ = io.Copy(w, f)
}

type agentKey struct{}

// AgentName is the authenticated agent of a request.
func AgentName(ctx context.Context) string {
	ag, _ := ctx.Value(agentKey{}).(*desk.Agent)
	if ag == nil {
		return ""
	}
	return ag.Name
}

func agentOf(r *http.Request) *desk.Agent {
	ag, _ := r.Context().Value(agentKey{}).(*desk.Agent)
	return ag
}

func (a *Agents) auth(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		tok, _ := BearerToken(r)
		name, ok := a.Tokens.Lookup(tok)
		var ag *desk.Agent
		if ok {
			ag, ok = a.Desk.Agent(name)
		}
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="inroute agent"`)
			WriteError(w, http.StatusUnauthorized, CodeUnauthorized, "missing or wrong agent token")
			return
		}
		a.seen(r.Context(), name)
		h(w, r.WithContext(context.WithValue(r.Context(), agentKey{}, ag)))
	}
}

// seen records the visit at most every 15s per agent: presence needs no
// more, and a write per request would cost the store for nothing.
func (a *Agents) seen(ctx context.Context, name string) {
	if a.Seen == nil {
		return
	}
	a.mu.Lock()
	if a.lastSeen == nil {
		a.lastSeen = map[string]time.Time{}
	}
	due := time.Since(a.lastSeen[name]) > 15*time.Second
	if due {
		a.lastSeen[name] = time.Now()
	}
	a.mu.Unlock()
	if due {
		if err := a.Seen(ctx, name); err != nil {
			a.Log.Debug("record agent presence", zap.String("agent", name), zap.Error(err))
		}
	}
}

// Me is the answer of GET /v1/me.
type Me struct {
	Name         string   `json:"name"`
	Role         string   `json:"role"`
	Queues       []string `json:"queues"`
	Capacity     int      `json:"capacity"`
	Open         int      `json:"open"`
	LeaseSeconds int64    `json:"lease_seconds"`
}

func (a *Agents) me(w http.ResponseWriter, r *http.Request) {
	ag := agentOf(r)
	me := Me{Name: ag.Name, Role: "agent", Queues: ag.Queues, Capacity: ag.Capacity, LeaseSeconds: int64(a.Desk.Lease() / time.Second)}
	if ag.Admin {
		me.Role = "admin"
	}
	if me.Queues == nil || ag.Admin {
		me.Queues = a.Desk.QueueNames()
	}
	board, err := a.Desk.Board(r.Context())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	for _, av := range board.Agents {
		if av.Name == ag.Name {
			me.Open = av.Open
		}
	}
	WriteJSON(w, http.StatusOK, me)
}

func (a *Agents) next(w http.ResponseWriter, r *http.Request) {
	var wait time.Duration
	if s := r.URL.Query().Get("wait"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d < 0 {
			WriteError(w, http.StatusBadRequest, CodeInvalidRequest, fmt.Sprintf("wait=%q is not a duration such as 30s", s))
			return
		}
		wait = min(d, a.MaxWait)
	}
	v, err := a.Desk.Next(r.Context(), agentOf(r), wait)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if v == nil {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	WriteJSON(w, http.StatusOK, v)
}

func (a *Agents) queues(w http.ResponseWriter, r *http.Request) {
	b, err := a.Desk.Board(r.Context())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	WriteJSON(w, http.StatusOK, b)
}

func (a *Agents) search(w http.ResponseWriter, r *http.Request) {
	q := strings.TrimSpace(r.URL.Query().Get("contact"))
	if q == "" {
		WriteError(w, http.StatusBadRequest, CodeInvalidRequest, "contact= is required: an e-mail address, a phone number, a user id or a contact id")
		return
	}
	contacts, convs, err := a.Desk.Search(r.Context(), q)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	ag := agentOf(r)
	visible := make([]store.Conversation, 0, len(convs))
	seen := map[int64]bool{}
	for _, c := range convs {
		if ag.Admin || c.Assignee == ag.Name || ag.Takes(c.Queue) {
			visible = append(visible, c)
			seen[c.ContactID], seen[c.CustomerID] = true, true
		}
	}
	// A customer is shown only with a conversation the agent may see:
	// identities are personal data, not a directory.
	shown := make([]store.Contact, 0, len(contacts))
	for _, c := range contacts {
		if ag.Admin || seen[c.ID] || (c.MergedInto != 0 && seen[c.MergedInto]) {
			shown = append(shown, c)
		}
	}
	WriteJSON(w, http.StatusOK, map[string]any{"contacts": shown, "conversations": visible})
}

func (a *Agents) show(w http.ResponseWriter, r *http.Request) {
	id, ok := convID(w, r)
	if !ok {
		return
	}
	v, err := a.Desk.Show(r.Context(), agentOf(r), id)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	WriteJSON(w, http.StatusOK, v)
}

func convID(w http.ResponseWriter, r *http.Request) (int64, bool) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		WriteError(w, http.StatusNotFound, CodeNotFound, fmt.Sprintf("no conversation %q", r.PathValue("id")))
		return 0, false
	}
	return id, true
}

func (a *Agents) act(w http.ResponseWriter, r *http.Request) {
	id, ok := convID(w, r)
	if !ok {
		return
	}
	ag, ctx := agentOf(r), r.Context()
	var body struct {
		desk.ReplyRequest
		desk.TransferRequest
		Urgency message.Urgency `json:"urgency,omitempty"`
	}
	if !a.decode(w, r, &body) {
		return
	}
	var v *desk.View
	var err error
	switch r.PathValue("action") {
	case "reply":
		a.reply(w, r, id, body.ReplyRequest)
		return
	case "renew":
		until, err := a.Desk.Renew(ctx, ag, id)
		if err != nil {
			a.fail(w, r, err)
			return
		}
		WriteJSON(w, http.StatusOK, map[string]any{"lease_until": until})
		return
	case "note":
		v, err = a.Desk.Note(ctx, ag, id, body.Text)
	case "transfer":
		v, err = a.Desk.Transfer(ctx, ag, id, body.TransferRequest)
	case "urgency":
		v, err = a.Desk.SetUrgency(ctx, ag, id, body.Urgency)
	case "release":
		v, err = a.Desk.Release(ctx, ag, id)
	case "resolve":
		v, err = a.Desk.Resolve(ctx, ag, id)
	case "reopen":
		v, err = a.Desk.Reopen(ctx, ag, id)
	default:
		WriteError(w, http.StatusNotFound, CodeNotFound,
			fmt.Sprintf("no action %q (reply, note, transfer, urgency, release, resolve, reopen, renew)", r.PathValue("action")))
		return
	}
	if err != nil {
		a.fail(w, r, err)
		return
	}
	WriteJSON(w, http.StatusOK, v)
}

func (a *Agents) reply(w http.ResponseWriter, r *http.Request, id int64, req desk.ReplyRequest) {
	if k := r.Header.Get("Idempotency-Key"); k != "" && req.Key == "" {
		req.Key = k
	}
	if req.Key == "" {
		req.Key = derivedKey(id, &req, a.Desk.LatestInboundID(r.Context(), id))
	}
	m, created, err := a.Desk.Reply(r.Context(), agentOf(r), id, req)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	WriteJSON(w, status, map[string]any{"message": m, "created": created})
}

// derivedKey makes an idempotency key from the request when the client
// sent none: the same reply to the same customer message is one reply,
// while the same words after the customer wrote again are a new one.
func derivedKey(id int64, req *desk.ReplyRequest, latest string) string {
	h := sha256.New()
	enc := json.NewEncoder(h)
	_ = enc.Encode([]any{id, latest, req.Text, req.HTML, req.Channel, req.To, req.Attachments})
	return "auto-" + hex.EncodeToString(h.Sum(nil))[:32]
}

func (a *Agents) decode(w http.ResponseWriter, r *http.Request, v any) bool {
	max := a.MaxBody
	if max <= 0 {
		max = 1 << 20
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, max))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	var tooBig *http.MaxBytesError
	switch {
	case err == nil, errors.Is(err, io.EOF): // an empty body is {}
		return true
	case errors.As(err, &tooBig):
		WriteError(w, http.StatusRequestEntityTooLarge, CodeBodyTooLarge, fmt.Sprintf("body is larger than %d bytes", max))
	default:
		WriteError(w, http.StatusBadRequest, CodeInvalidJSON, "body is not valid JSON for this endpoint: "+err.Error())
	}
	return false
}

// fail answers with the status and code err calls for.
func (a *Agents) fail(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, store.ErrNotFound):
		WriteError(w, http.StatusNotFound, CodeNotFound, says(err, store.ErrNotFound))
	case errors.Is(err, desk.ErrForbidden):
		WriteError(w, http.StatusForbidden, CodeForbidden, says(err, desk.ErrForbidden))
	case errors.Is(err, store.ErrAtCapacity):
		WriteError(w, http.StatusConflict, CodeAtCapacity, says(err, store.ErrAtCapacity))
	case errors.Is(err, store.ErrConflict):
		WriteError(w, http.StatusConflict, CodeConflict, says(err, store.ErrConflict))
	case errors.Is(err, desk.ErrInvalid):
		WriteError(w, http.StatusUnprocessableEntity, CodeInvalidRequest, says(err, desk.ErrInvalid))
	case errors.Is(err, bus.ErrUnavailable), errors.Is(err, context.DeadlineExceeded):
		a.Log.Warn("agent request", zap.String("agent", AgentName(r.Context())), zap.String("path", r.URL.Path), zap.Error(err))
		w.Header().Set("Retry-After", "2")
		WriteError(w, http.StatusServiceUnavailable, CodeUnavailable, "inroute is unavailable for a moment; try again (a reply with the same key is never sent twice)")
	case r.Context().Err() != nil:
		// The caller hung up; nobody reads the answer.
	default:
		a.Log.Error("agent request", zap.String("agent", AgentName(r.Context())), zap.String("path", r.URL.Path), zap.Error(err))
		WriteError(w, http.StatusInternalServerError, CodeInternal, "internal error; it is in the log")
	}
}

// says is err's message without the sentinel's own words at its end: the
// code already says "forbidden"; the message says why.
func says(err, sentinel error) string {
	msg := err.Error()
	for _, suffix := range []string{": " + sentinel.Error(), sentinel.Error() + ": "} {
		msg = strings.Replace(msg, suffix, "", 1)
	}
	return msg
}
