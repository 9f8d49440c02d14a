package api

import (
	"net/http"

	"github.com/inroute/inroute/router/rules"
	"go.uber.org/zap"
)

// RulesStatus reports the routing rules in force.
type RulesStatus interface {
	Status() rules.Status
}

// Admin serves the admin endpoints.
type Admin struct {
	Rules  RulesStatus
	Tokens *Tokens
	Log    *zap.Logger
}

// Register adds the admin endpoints to mux.
func (a *Admin) Register(mux *http.ServeMux) {
	agents := &Agents{Tokens: a.Tokens, Log: a.Log}
	// Until roles arrive with the agent workspace, any agent may read it.
	mux.HandleFunc("GET /v1/admin/routing", agents.auth(func(w http.ResponseWriter, _ *http.Request) {
		WriteJSON(w, http.StatusOK, a.Rules.Status())
	}))
}
