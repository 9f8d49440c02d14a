package api

import (
	"context"
	"errors"
	"net/http"

	"github.com/inroute/inroute/bus"

	"go.uber.org/zap"
)

// ErrNotQuarantined is what a Quarantine returns (wrapped) for a name it
// does not hold.
var ErrNotQuarantined = errors.New("not in quarantine")

// Quarantine is the e-mail connector's quarantine as admins see it.
type Quarantine interface {
	// List returns the quarantined mail (a JSON-able list).
	List(ctx context.Context) (any, error)
	// Raw returns one quarantined mail as it was read.
	Raw(ctx context.Context, name string) ([]byte, error)
	// Retry reads it again and, if it now reads, publishes it; it returns
	// the new message's id.
	Retry(ctx context.Context, name string) (string, error)
	// Drop deletes it.
	Drop(ctx context.Context, name string) error
}

// registerQuarantine adds /v1/admin/email/quarantine endpoints.
func (a *Admin) registerQuarantine(mux *http.ServeMux) {
	q := a.Quarantine
	admin := func(h func(w http.ResponseWriter, r *http.Request)) http.HandlerFunc {
		return a.Agents.auth(func(w http.ResponseWriter, r *http.Request) {
			if ag := agentOf(r); !ag.Admin {
				WriteError(w, http.StatusForbidden, CodeForbidden, "admins only: "+ag.Name+" is an agent")
				return
			}
			if q == nil {
				WriteError(w, http.StatusNotFound, CodeNotFound, "the e-mail connector is not on")
				return
			}
			h(w, r)
		})
	}
	fail := func(w http.ResponseWriter, err error) {
		switch {
		case errors.Is(err, ErrNotQuarantined):
			WriteError(w, http.StatusNotFound, CodeNotFound, err.Error())
			return
		case errors.Is(err, bus.ErrUnavailable), errors.Is(err, context.DeadlineExceeded):
			// The bus is away: the mail still reads, try again later.
			WriteError(w, http.StatusServiceUnavailable, CodeUnavailable, err.Error())
			return
		}
		a.Log.Warn("quarantine", zap.Error(err))
		WriteError(w, http.StatusUnprocessableEntity, CodeInvalidRequest, err.Error())
	}
	mux.HandleFunc("GET /v1/admin/email/quarantine", admin(func(w http.ResponseWriter, r *http.Request) {
		items, err := q.List(r.Context())
		if err != nil {
			fail(w, err)
			return
		}
		WriteJSON(w, http.StatusOK, map[string]any{"quarantine": items})
	}))
	mux.HandleFunc("GET /v1/admin/email/quarantine/{name}", admin(func(w http.ResponseWriter, r *http.Request) {
		raw, err := q.Raw(r.Context(), r.PathValue("name"))
		if err != nil {
			fail(w, err)
			return
		}
		// Served as a download, never rendered: it is untrusted mail.
		w.Header().Set("Content-Type", "message/rfc822")
		w.Header().Set("Content-Disposition", `attachment; filename="`+r.PathValue("name")+`.eml"`)
		w.Header().Set("X-Content-Type-Options", "nosniff")
		_, _ = w.Write(raw)
	}))
	mux.HandleFunc("POST /v1/admin/email/quarantine/{name}/retry", admin(func(w http.ResponseWriter, r *http.Request) {
		id, err := q.Retry(r.Context(), r.PathValue("name"))
		if err != nil {
			fail(w, err)
			return
		}
		WriteJSON(w, http.StatusOK, map[string]string{"message_id": id})
	}))
	mux.HandleFunc("DELETE /v1/admin/email/quarantine/{name}", admin(func(w http.ResponseWriter, r *http.Request) {
		if err := q.Drop(r.Context(), r.PathValue("name")); err != nil {
			fail(w, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
}
