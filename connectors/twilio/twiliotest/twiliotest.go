// Package twiliotest is a local double of the part of Twilio's REST API the
// connector uses, at the protocol level: an httptest.Server answering
//
//	POST /2010-04-01/Accounts/{AccountSid}/Messages.json
//	POST /2010-04-01/Accounts/{AccountSid}/Calls.json
//
// with form-encoded bodies, HTTP basic auth (account SID and auth token)
// and JSON answers shaped like Twilio's (sid, status, error_code; errors as
// {"code","message","more_info","status"}). It records every request, and
// can be told to fail the next ones (429, 500, 400 with a Twilio code).
//
// Tests point the connector at it with twilio.Options.APIURL = s.URL: the
// connector's twilio-go client rewrites https://api.twilio.com to that
// base, so the real twilio-go request and error decoding are exercised.
package twiliotest

import (
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"time"
)

// Default credentials of a double.
const (
	AccountSID = "AC00000000000000000000000000000001"
	AuthToken  = "testtoken0123456789"
)

// Request is one request the double received.
type Request struct {
	Method string
	Path   string
	// Kind is "Messages" or "Calls" ("" for an unknown path).
	Kind string
	Form url.Values
	At   time.Time
	// Status is what the double answered.
	Status int
}

// Failure is a programmed error answer.
type Failure struct {
	Status  int
	Code    int
	Message string
	// RetryAfter, when set, is sent as the Retry-After header (seconds).
	RetryAfter string
}

// Server is the double. Its zero value is not usable: call New.
type Server struct {
	*httptest.Server
	SID   string
	Token string

	mu       sync.Mutex
	requests []Request
	failures []Failure
	seq      int
}

// New starts a double with the default credentials; it is closed by
// Close (tests: t.Cleanup(s.Close)).
func New() *Server {
	s := &Server{SID: AccountSID, Token: AuthToken}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	return s
}

// FailNext makes the next n create requests fail with status and Twilio's
// error code and message.
func (s *Server) FailNext(n, status, code int, message string) {
	s.FailNextWith(n, Failure{Status: status, Code: code, Message: message})
}

// FailNextWith is FailNext with a full Failure (Retry-After).
func (s *Server) FailNextWith(n int, f Failure) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.failures = append(s.failures, f)
	}
}

// Requests returns a copy of every request received so far.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Request, len(s.requests))
	copy(out, s.requests)
	return out
}

// Created returns the requests of a kind ("Messages", "Calls") that were
// answered 201, that is the resources Twilio would have created.
func (s *Server) Created(kind string) []Request {
	var out []Request
	for _, r := range s.Requests() {
		if r.Kind == kind && r.Status == http.StatusCreated {
			out = append(out, r)
		}
	}
	return out
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	now := time.Now()
	_ = r.ParseForm()
	req := Request{Method: r.Method, Path: r.URL.Path, Form: r.PostForm, At: now}
	status, body, retryAfter := s.answer(r, &req)
	req.Status = status
	s.mu.Lock()
	s.requests = append(s.requests, req)
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	if retryAfter != "" {
		w.Header().Set("Retry-After", retryAfter)
	}
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}

// answer decides the status and JSON body of one request.
func (s *Server) answer(r *http.Request, req *Request) (int, any, string) {
	prefix := "/2010-04-01/Accounts/" + s.SID + "/"
	if r.Method != http.MethodPost || !strings.HasPrefix(r.URL.Path, prefix) {
		return http.StatusNotFound, restError(http.StatusNotFound, 20404, "The requested resource "+r.URL.Path+" was not found"), ""
	}
	switch strings.TrimPrefix(r.URL.Path, prefix) {
	case "Messages.json":
		req.Kind = "Messages"
	case "Calls.json":
		req.Kind = "Calls"
	default:
		return http.StatusNotFound, restError(http.StatusNotFound, 20404, "The requested resource "+r.URL.Path+" was not found"), ""
	}
	user, pass, ok := r.BasicAuth()
	if !ok || subtle.ConstantTimeCompare([]byte(user), []byte(s.SID)) != 1 || subtle.ConstantTimeCompare([]byte(pass), []byte(s.Token)) != 1 {
		return http.StatusUnauthorized, restError(http.StatusUnauthorized, 20003, "Authenticate"), ""
	}
	s.mu.Lock()
	var fail *Failure
	if len(s.failures) > 0 {
		f := s.failures[0]
		s.failures = s.failures[1:]
		fail = &f
	}
	s.seq++
	seq := s.seq
	s.mu.Unlock()
	if fail != nil {
		return fail.Status, restError(fail.Status, fail.Code, fail.Message), fail.RetryAfter
	}
	f := r.PostForm
	if f.Get("To") == "" || f.Get("From") == "" {
		return http.StatusBadRequest, restError(http.StatusBadRequest, 21604, "A 'To' and a 'From' phone number are required."), ""
	}
	if req.Kind == "Messages" {
		if f.Get("Body") == "" && len(f["MediaUrl"]) == 0 {
			return http.StatusBadRequest, restError(http.StatusBadRequest, 21602, "Message body is required."), ""
		}
		return http.StatusCreated, map[string]any{
			"sid": fmt.Sprintf("SM%032x", seq), "account_sid": s.SID, "status": "queued",
			"to": f.Get("To"), "from": f.Get("From"), "body": f.Get("Body"),
			"num_media": fmt.Sprint(len(f["MediaUrl"])), "error_code": nil, "error_message": nil,
			"api_version": "2010-04-01",
		}, ""
	}
	if f.Get("Twiml") == "" && f.Get("Url") == "" && f.Get("ApplicationSid") == "" {
		return http.StatusBadRequest, restError(http.StatusBadRequest, 21205, "Url parameter is required."), ""
	}
	return http.StatusCreated, map[string]any{
		"sid": fmt.Sprintf("CA%032x", seq), "account_sid": s.SID, "status": "queued",
		"to": f.Get("To"), "from": f.Get("From"), "api_version": "2010-04-01",
	}, ""
}

func restError(status, code int, message string) map[string]any {
	return map[string]any{"code": code, "message": message,
		"more_info": fmt.Sprintf("https://www.twilio.com/docs/errors/%d", code), "status": status}
}
