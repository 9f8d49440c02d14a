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

// Admin serves the admin endpoints: agents whose role is admin only.
type Admin struct {
	Rules  RulesStatus
	Agents *Agents
	Log    *zap.Logger
	// Quarantine is the e-mail connector's; nil when it is off.
	Quarantine Quarantine
}

// Register adds the admin endpoints to mux.
func (a *Admin) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/admin/routing", a.Agents.auth(func(w http.ResponseWriter, r *http.Request) {
		if ag := agentOf(r); !ag.Admin {
			WriteError(w, http.StatusForbidden, CodeForbidden, "admins only: "+ag.Name+" is an agent")
			return
		}
		WriteJSON(w, http.StatusOK, a.Rules.Status())
	}))
	a.registerQuarantine(mux)
}
