// Package api is inroute's HTTP surface: the JSON error format every
// endpoint shares, health and readiness, and the agent endpoints.
package api

import (
	"encoding/json"
	"net/http"
	"strings"
)

// Stable error codes. Clients act on these; never rename one.
const (
	CodeUnauthorized    = "unauthorized"
	CodeForbidden       = "forbidden"
	CodeInvalidJSON     = "invalid_json"
	CodeInvalidMessage  = "invalid_message"
	CodeBodyTooLarge    = "body_too_large"
	CodeUnsupportedType = "unsupported_media_type"
	CodeUnavailable     = "unavailable"
	CodeNotFound        = "not_found"
	CodeInternal        = "internal"
)

// ErrorBody is the JSON of every error answer.
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail is the code and a human-readable message.
type ErrorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// WriteError answers with status and {"error":{"code":...,"message":...}}.
func WriteError(w http.ResponseWriter, status int, code, msg string) {
	WriteJSON(w, status, ErrorBody{Error: ErrorDetail{Code: code, Message: msg}})
}

// WriteJSON answers with status and v as JSON.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// BearerToken returns the token of an "Authorization: Bearer ..." header.
func BearerToken(r *http.Request) (string, bool) {
	const prefix = "Bearer "
	h := r.Header.Get("Authorization")
	if len(h) <= len(prefix) || !strings.EqualFold(h[:len(prefix)], prefix) {
		return "", false
	}
	return h[len(prefix):], true
}
