package api

import (
	"context"
	"errors"
	"net/http"

	"github.com/inroute/inroute/queue"
	"github.com/inroute/inroute/store"
	"go.uber.org/zap"
)

// Queue hands out the next item of work.
type Queue interface {
	Next(ctx context.Context, claim queue.Claim) (*queue.Item, error)
}

var _ Queue = (*queue.Puller)(nil)

// Claimer records that an agent took a conversation.
type Claimer interface {
	Claim(ctx context.Context, conversationID int64, agent string) error
}

// Agents serves the agent endpoints.
type Agents struct {
	Queue  Queue
	Store  Claimer
	Tokens *Tokens
	Log    *zap.Logger
}

// Register adds the agent endpoints to mux.
func (a *Agents) Register(mux *http.ServeMux) {
	mux.HandleFunc("POST /v1/agent/next", a.auth(a.next))
}

type agentKey struct{}

// AgentName is the authenticated agent of a request.
func AgentName(ctx context.Context) string {
	s, _ := ctx.Value(agentKey{}).(string)
	return s
}

func (a *Agents) auth(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		tok, _ := BearerToken(r)
		name, ok := a.Tokens.Lookup(tok)
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="inroute agent"`)
			WriteError(w, http.StatusUnauthorized, CodeUnauthorized, "missing or wrong agent token")
			return
		}
		h(w, r.WithContext(context.WithValue(r.Context(), agentKey{}, name)))
	}
}

// next answers with the most urgent, then oldest, waiting item, or 204.
func (a *Agents) next(w http.ResponseWriter, r *http.Request) {
	agent := AgentName(r.Context())
	it, err := a.Queue.Next(r.Context(), func(ctx context.Context, it *queue.Item) (bool, error) {
		err := a.Store.Claim(ctx, it.ConversationID, agent)
		switch {
		case err == nil:
			return true, nil
		case errors.Is(err, store.ErrConflict), errors.Is(err, store.ErrNotFound):
			return false, nil // stale item: taken, resolved or purged meanwhile
		default:
			return false, err
		}
	})
	if err != nil {
		a.Log.Warn("agent next", zap.String("agent", agent), zap.Error(err))
		WriteError(w, http.StatusServiceUnavailable, CodeUnavailable, "the queue is unavailable; try again")
		return
	}
	if it == nil {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	a.Log.Info("agent took conversation", zap.String("agent", agent), zap.Int64("conversation", it.ConversationID),
		zap.String("queue", it.Queue), zap.String("urgency", string(it.Urgency)))
	WriteJSON(w, http.StatusOK, it)
}
