package api

import (
	"context"
	"net/http"

	"github.com/inroute/inroute/queue"
	"go.uber.org/zap"
)

// Queue hands out the next item of work.
type Queue interface {
	Next(ctx context.Context) (*queue.Item, error)
}

var _ Queue = (*queue.Puller)(nil)

// Agents serves the agent endpoints.
type Agents struct {
	Queue  Queue
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
	it, err := a.Queue.Next(r.Context())
	if err != nil {
		a.Log.Warn("agent next", zap.String("agent", AgentName(r.Context())), zap.Error(err))
		WriteError(w, http.StatusServiceUnavailable, CodeUnavailable, "the queue is unavailable; try again")
		return
	}
	if it == nil {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	a.Log.Info("agent took item", zap.String("agent", AgentName(r.Context())), zap.String("item_id", it.ID),
		zap.String("queue", it.Queue), zap.String("urgency", string(it.Urgency)))
	WriteJSON(w, http.StatusOK, it)
}
