package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"github.com/inroute/inroute/api"
	"io"
	"mime"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode"

	"golang.org/x/text/width"
)

const agentUsage = `Usage: inroute agent SUBCOMMAND [flags] [ARGS]

Work conversations from the command line, through the agent API of a running
inroute (serve or api):

  next [--wait 30s]          take the most urgent waiting conversation and show it
  show ID                    show a conversation: contact, messages, why it was routed
  reply ID [flags] TEXT...   reply to the customer (TEXT - reads standard input)
  note ID TEXT...            add an internal note (TEXT - reads standard input)
  resolve ID                 mark it resolved (a new customer message reopens it)
  release ID                 give it back to its queue, unassigned
  transfer ID (--queue Q | --agent A)
                             move it to another queue, or assign it to another agent
  renew ID                   extend your lease on it while you work
  urgency ID LEVEL           set its urgency: low, normal, high or urgent
  reopen ID                  put a resolved conversation back in its queue
  queues                     the queue board: waiting work, SLA risks, agents
  me                         who you are: role, queues, capacity, open work
  quarantine [list | show NAME | retry NAME | drop NAME]
                             (admins) mail the e-mail connector could not read

Every subcommand takes:
  --url URL          the inroute HTTP API (default $INROUTE_URL, else http://127.0.0.1:8080)
  --token-file PATH  read the agent token from this file instead of $INROUTE_AGENT_TOKEN
  --json             print the API's JSON answer as it is

Environment:
  INROUTE_URL          the inroute HTTP API
  INROUTE_AGENT_TOKEN  your agent token (agents[].token in config.yaml)

Run 'inroute agent help SUBCOMMAND' (or SUBCOMMAND --help) for its flags.
`

const defaultAgentURL = "http://127.0.0.1:8080"

// agentStdin is where `reply ID -` and `note ID -` read their text.
var agentStdin io.Reader = os.Stdin

// agentOpts holds the flags of every agent subcommand.
type agentOpts struct {
	url, tokenFile string
	json           bool
	wait           time.Duration
	channel, to    string
	key            string
	attach         stringList
	queue, agent   string
}

// stringList is a flag that may be given many times.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

type agentSub struct {
	name, args, short string
	// min and max positional arguments; max -1 means any number.
	min, max int
	flags    func(fs *flag.FlagSet, o *agentOpts)
	run      func(ctx context.Context, c *agentClient, o *agentOpts, pos []string) int
}

func agentSubs() []agentSub {
	return []agentSub{
		{"next", "[--wait DURATION]", "Takes, for you, the most urgent (then oldest) waiting conversation in your queues and shows it.", 0, 0,
			func(fs *flag.FlagSet, o *agentOpts) {
				fs.DurationVar(&o.wait, "wait", 0, "wait this long for work to arrive (e.g. 30s; capped by desk.max_wait)")
			}, agentNext},
		{"show", "ID", "Shows a conversation: its state, the contact, every message and why it was routed so.", 1, 1, nil, agentShow},
		{"reply", "ID [--channel C] [--to KIND:VALUE] [--key K] [--attach FILE]... TEXT...|-",
			"Replies to the customer, by default on the channel of their latest message. TEXT - reads\nthe text from standard input. Without --key a key is made up and printed: pass\nit as --key to retry without sending twice.", 1, -1,
			func(fs *flag.FlagSet, o *agentOpts) {
				fs.StringVar(&o.channel, "channel", "", "reply on this channel (sms, voice, email, ...) instead")
				fs.StringVar(&o.to, "to", "", "reply to this identity of the customer, as kind:value (phone:+8613800138000)")
				fs.StringVar(&o.key, "key", "", "idempotency key: the same key never sends twice")
				fs.Var(&o.attach, "attach", "attach this file (repeat for more)")
			}, agentReply},
		{"note", "ID TEXT...|-", "Adds an internal note (the customer does not see it). TEXT - reads standard input.", 2, -1, nil, agentNote},
		{"resolve", "ID", "Marks the conversation resolved; a new customer message reopens it.", 1, 1, nil, agentAction("resolve", "resolved #ID")},
		{"release", "ID", "Gives the conversation back to its queue, unassigned.", 1, 1, nil, agentAction("release", "released #ID to its queue")},
		{"transfer", "ID (--queue Q | --agent A)", "Moves the conversation to another queue (waiting there) or assigns it to another agent.", 1, 1,
			func(fs *flag.FlagSet, o *agentOpts) {
				fs.StringVar(&o.queue, "queue", "", "transfer to this queue")
				fs.StringVar(&o.agent, "agent", "", "transfer to this agent")
			}, agentTransfer},
		{"renew", "ID", "Extends your lease on a conversation you claimed and have not answered yet.", 1, 1, nil, agentRenew},
		{"urgency", "ID LEVEL", "Sets the urgency: low, normal, high or urgent.", 2, 2, nil, agentUrgency},
		{"reopen", "ID", "Puts a resolved conversation back in its queue.", 1, 1, nil, agentAction("reopen", "reopened #ID")},
		{"queues", "", "Shows the queue board: waiting work per queue and urgency, SLA risks, agents.", 0, 0, nil, agentQueues},
		{"me", "", "Shows who the token belongs to: role, queues, capacity and open conversations.", 0, 0, nil, agentMe},
		{"quarantine", "[list | show NAME | retry NAME | drop NAME]",
			"Admins: lists the mail the e-mail connector could not read (kept raw with the reason),\nprints one as it was received (show), reads one again and routes it if it now\nreads (retry), or deletes one (drop).", 0, 2, nil, agentQuarantine},
	}
}

func runAgent(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "-help" || args[0] == "help" {
		if len(args) > 1 {
			for _, s := range agentSubs() {
				if s.name == args[1] {
					fs, _ := agentFlags(s, io.Discard)
					agentSubUsage(stdout, s, fs)
					return exitOK
				}
			}
			fmt.Fprintf(stderr, "inroute agent help: unknown subcommand %q\n\n%s", args[1], agentUsage)
			return exitConfig
		}
		fmt.Fprint(stdout, agentUsage)
		if len(args) == 0 {
			return exitConfig
		}
		return exitOK
	}
	name, rest := args[0], args[1:]
	i := slices.IndexFunc(agentSubs(), func(s agentSub) bool { return s.name == name })
	if i < 0 {
		fmt.Fprintf(stderr, "inroute agent: unknown subcommand %q\n\n%s", name, agentUsage)
		return exitConfig
	}
	sub := agentSubs()[i]
	fs, o := agentFlags(sub, stderr)
	// Everything after "--" is text, even words that look like flags.
	var verbatim []string
	if j := slices.Index(rest, "--"); j >= 0 {
		rest, verbatim = rest[:j], rest[j+1:]
	}
	for _, a := range rest {
		switch {
		case a == "-h" || a == "-help" || a == "--help":
			agentSubUsage(stdout, sub, fs)
			return exitOK
		case a == "-token" || a == "--token" || strings.HasPrefix(a, "-token=") || strings.HasPrefix(a, "--token="):
			fmt.Fprintln(stderr, "inroute agent: there is no --token flag (a token on the command line shows in ps and the shell history): set INROUTE_AGENT_TOKEN or use --token-file PATH")
			return exitConfig
		}
	}
	pos, err := parseInterspersed(fs, rest)
	if err != nil {
		return exitConfig // the flag package said why, with the usage
	}
	pos = append(pos, verbatim...)
	if len(pos) < sub.min || (sub.max >= 0 && len(pos) > sub.max) {
		what := "too many arguments"
		if len(pos) < sub.min {
			what = "missing arguments"
		}
		fmt.Fprintf(stderr, "inroute agent %s: %s\n\n", sub.name, what)
		agentSubUsage(stderr, sub, fs)
		return exitConfig
	}
	c, err := newAgentClient(o, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "inroute agent: %v\n", err)
		return exitConfig
	}
	c.stdout, c.sub, c.fs = stdout, sub, fs
	return sub.run(ctx, c, o, pos)
}

func agentFlags(sub agentSub, out io.Writer) (*flag.FlagSet, *agentOpts) {
	o := &agentOpts{}
	fs := flag.NewFlagSet("inroute agent "+sub.name, flag.ContinueOnError)
	fs.SetOutput(out)
	fs.StringVar(&o.url, "url", "", "the inroute HTTP API (default $INROUTE_URL, else "+defaultAgentURL+")")
	fs.StringVar(&o.tokenFile, "token-file", "", "read the agent token from this file (default $INROUTE_AGENT_TOKEN)")
	fs.BoolVar(&o.json, "json", false, "print the API's JSON answer as it is")
	if sub.flags != nil {
		sub.flags(fs, o)
	}
	fs.Usage = func() { agentSubUsage(fs.Output(), sub, fs) }
	return fs, o
}

func agentSubUsage(w io.Writer, sub agentSub, fs *flag.FlagSet) {
	fmt.Fprintf(w, "Usage: inroute agent %s %s\n\n%s\n\nFlags:\n", sub.name, sub.args, sub.short)
	old := fs.Output()
	fs.SetOutput(w)
	fs.PrintDefaults()
	fs.SetOutput(old)
	fmt.Fprintln(w, "\nEnvironment: INROUTE_URL, INROUTE_AGENT_TOKEN (see 'inroute agent help').")
}

// usageError reports a wrong argument with the subcommand's usage.
func (c *agentClient) usageError(format string, args ...any) int {
	fmt.Fprintf(c.stderr, "inroute agent %s: %s\n\n", c.sub.name, fmt.Sprintf(format, args...))
	agentSubUsage(c.stderr, c.sub, c.fs)
	return exitConfig
}

// agentClient talks to the agent API.
type agentClient struct {
	base, token    string
	json           bool
	http           *http.Client
	stdout, stderr io.Writer
	sub            agentSub
	fs             *flag.FlagSet
}

func newAgentClient(o *agentOpts, stderr io.Writer) (*agentClient, error) {
	base := o.url
	if base == "" {
		base = os.Getenv("INROUTE_URL")
	}
	if base == "" {
		base = defaultAgentURL
	}
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("%q is not an http or https URL (--url or INROUTE_URL)", base)
	}
	var tok string
	if o.tokenFile != "" {
		data, err := os.ReadFile(o.tokenFile)
		if err != nil {
			return nil, fmt.Errorf("--token-file: %w", err)
		}
		if tok = strings.TrimSpace(string(data)); tok == "" {
			return nil, fmt.Errorf("--token-file: %s is empty", o.tokenFile)
		}
	} else if tok = strings.TrimSpace(os.Getenv("INROUTE_AGENT_TOKEN")); tok == "" {
		return nil, errors.New("no agent token: set INROUTE_AGENT_TOKEN to your token (agents[].token in config.yaml) or pass --token-file PATH")
	}
	timeout := time.Minute
	if o.wait > 0 {
		timeout += o.wait
	}
	return &agentClient{base: strings.TrimRight(base, "/"), token: tok, json: o.json,
		http: &http.Client{Timeout: timeout}, stderr: stderr}, nil
}

// apiError is an error answer of the API.
type apiError struct {
	Status  int
	Code    string
	Message string
}

func (e *apiError) Error() string { return e.Code + ": " + e.Message }

// connError is a request that did not get an answer.
type connError struct {
	URL string
	Err error
}

func (e *connError) Error() string { return e.Err.Error() }

// call sends a request and returns the status and body of a 2xx answer, or
// an *apiError or *connError.
func (c *agentClient) call(ctx context.Context, method, path string, body any) (int, []byte, error) {
	var r io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			return 0, nil, err
		}
		r = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, r)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "inroute-agent/"+buildVersion())
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, nil, &connError{URL: c.base, Err: err}
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return 0, nil, &connError{URL: c.base, Err: err}
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return resp.StatusCode, data, nil
	}
	var eb struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	e := &apiError{Status: resp.StatusCode}
	if json.Unmarshal(data, &eb) == nil && eb.Error.Code != "" {
		e.Code, e.Message = eb.Error.Code, eb.Error.Message
	} else {
		e.Code = fmt.Sprintf("HTTP %d", resp.StatusCode)
		e.Message = strings.TrimSpace(string(data))
		if len(e.Message) > 200 || e.Message == "" {
			e.Message = http.StatusText(resp.StatusCode)
		}
	}
	return resp.StatusCode, nil, e
}

// fail reports err and returns the exit code.
func (c *agentClient) fail(err error) int {
	var ae *apiError
	var ce *connError
	switch {
	case errors.As(err, &ae):
		fmt.Fprintf(c.stderr, "inroute agent: %s: %s\n", ae.Code, ae.Message)
		switch ae.Code {
		case "unauthorized":
			fmt.Fprintln(c.stderr, "inroute agent: check INROUTE_AGENT_TOKEN (or --token-file) against agents[].token in config.yaml")
		case "at_capacity":
			fmt.Fprintln(c.stderr, "inroute agent: resolve, release or transfer a conversation you hold first")
		}
	case errors.As(err, &ce):
		if errors.Is(ce.Err, syscall.ECONNREFUSED) {
			fmt.Fprintf(c.stderr, "inroute agent: cannot reach inroute at %s: connection refused\n", ce.URL)
			fmt.Fprintln(c.stderr, "inroute agent: is it running? Start it with `inroute serve`, or point --url / INROUTE_URL at it")
		} else {
			fmt.Fprintf(c.stderr, "inroute agent: no answer from %s: %v\n", ce.URL, ce.Err)
		}
	default:
		fmt.Fprintf(c.stderr, "inroute agent: %v\n", err)
	}
	return exitFail
}

// decode reads the API's answer into v; it says so when it cannot.
func (c *agentClient) decode(data []byte, v any) bool {
	if err := json.Unmarshal(data, v); err != nil {
		fmt.Fprintf(c.stderr, "inroute agent: cannot read the answer: %v\n", err)
		return false
	}
	return true
}

// printRaw prints the API's JSON answer indented.
func (c *agentClient) printRaw(data []byte) int {
	var buf bytes.Buffer
	if err := json.Indent(&buf, bytes.TrimSpace(data), "", "  "); err != nil {
		fmt.Fprintf(c.stderr, "inroute agent: the answer is not JSON: %v\n", err)
		return exitFail
	}
	buf.WriteByte('\n')
	_, _ = c.stdout.Write(buf.Bytes())
	return exitOK
}

// view calls an endpoint that answers with a conversation view and prints
// it whole (show, next) or, for an action, done (with #ID standing for the
// conversation) and the conversation's header line.
func (c *agentClient) view(ctx context.Context, method, path string, body any, done string) int {
	status, data, err := c.call(ctx, method, path, body)
	if err != nil {
		return c.fail(err)
	}
	if status == http.StatusNoContent {
		if c.json {
			fmt.Fprintln(c.stderr, "nothing is waiting")
		} else {
			fmt.Fprintln(c.stdout, "nothing is waiting")
		}
		return exitOK
	}
	if c.json {
		return c.printRaw(data)
	}
	var v convView
	if !c.decode(data, &v) {
		return exitFail
	}
	now := time.Now()
	if done == "" {
		printView(c.stdout, &v, now)
	} else {
		fmt.Fprintln(c.stdout, strings.ReplaceAll(done, "#ID", fmt.Sprintf("#%d", v.Conversation.ID)))
		fmt.Fprintln(c.stdout, headerLine(&v.Conversation, now))
	}
	return exitOK
}

func parseConvID(s string) (int64, bool) {
	id, err := strconv.ParseInt(strings.TrimPrefix(s, "#"), 10, 64)
	return id, err == nil && id > 0
}

func convPath(id int64, action string) string {
	p := "/v1/conversations/" + strconv.FormatInt(id, 10)
	if action != "" {
		p += "/" + action
	}
	return p
}

func agentNext(ctx context.Context, c *agentClient, o *agentOpts, _ []string) int {
	path := "/v1/agent/next"
	if o.wait < 0 {
		return c.usageError("--wait must not be negative")
	}
	if o.wait > 0 {
		path += "?wait=" + url.QueryEscape(o.wait.String())
	}
	return c.view(ctx, http.MethodPost, path, nil, "")
}

func agentShow(ctx context.Context, c *agentClient, _ *agentOpts, pos []string) int {
	id, ok := parseConvID(pos[0])
	if !ok {
		return c.usageError("%q is not a conversation id", pos[0])
	}
	return c.view(ctx, http.MethodGet, convPath(id, ""), nil, "")
}

func agentAction(action, done string) func(ctx context.Context, c *agentClient, o *agentOpts, pos []string) int {
	return func(ctx context.Context, c *agentClient, _ *agentOpts, pos []string) int {
		id, ok := parseConvID(pos[0])
		if !ok {
			return c.usageError("%q is not a conversation id", pos[0])
		}
		return c.view(ctx, http.MethodPost, convPath(id, action), struct{}{}, done)
	}
}

func agentTransfer(ctx context.Context, c *agentClient, o *agentOpts, pos []string) int {
	id, ok := parseConvID(pos[0])
	if !ok {
		return c.usageError("%q is not a conversation id", pos[0])
	}
	switch {
	case (o.queue == "") == (o.agent == ""):
		return c.usageError("give one of --queue and --agent")
	case o.queue != "":
		return c.view(ctx, http.MethodPost, convPath(id, "transfer"), map[string]string{"queue": o.queue}, "transferred #ID to queue "+o.queue)
	default:
		return c.view(ctx, http.MethodPost, convPath(id, "transfer"), map[string]string{"agent": o.agent}, "transferred #ID to "+o.agent)
	}
}

func agentUrgency(ctx context.Context, c *agentClient, _ *agentOpts, pos []string) int {
	id, ok := parseConvID(pos[0])
	if !ok {
		return c.usageError("%q is not a conversation id", pos[0])
	}
	level := strings.ToLower(pos[1])
	if !slices.Contains([]string{"low", "normal", "high", "urgent"}, level) {
		return c.usageError("%q is not an urgency (low, normal, high, urgent)", pos[1])
	}
	return c.view(ctx, http.MethodPost, convPath(id, "urgency"), map[string]string{"urgency": level}, "urgency of #ID set to "+level)
}

// readText joins the text arguments, or reads standard input for "-".
func readText(words []string) (string, error) {
	if len(words) == 1 && words[0] == "-" {
		data, err := io.ReadAll(agentStdin)
		if err != nil {
			return "", fmt.Errorf("reading standard input: %w", err)
		}
		return strings.TrimSpace(string(data)), nil
	}
	return strings.TrimSpace(strings.Join(words, " ")), nil
}

func agentNote(ctx context.Context, c *agentClient, _ *agentOpts, pos []string) int {
	id, ok := parseConvID(pos[0])
	if !ok {
		return c.usageError("%q is not a conversation id", pos[0])
	}
	text, err := readText(pos[1:])
	if err != nil {
		return c.usageError("%v", err)
	}
	if text == "" {
		return c.usageError("the note is empty")
	}
	return c.view(ctx, http.MethodPost, convPath(id, "note"), map[string]string{"text": text}, "note added to #ID")
}

type replyTo struct {
	Kind  string `json:"kind"`
	Value string `json:"value"`
}

type replyAttachment struct {
	Name        string `json:"name"`
	ContentType string `json:"content_type"`
	Data        string `json:"data"`
}

type replyBody struct {
	Text        string            `json:"text"`
	Channel     string            `json:"channel,omitempty"`
	To          *replyTo          `json:"to,omitempty"`
	Attachments []replyAttachment `json:"attachments,omitempty"`
	Key         string            `json:"key"`
}

func agentReply(ctx context.Context, c *agentClient, o *agentOpts, pos []string) int {
	id, ok := parseConvID(pos[0])
	if !ok {
		return c.usageError("%q is not a conversation id", pos[0])
	}
	text, err := readText(pos[1:])
	if err != nil {
		return c.usageError("%v", err)
	}
	if text == "" && len(o.attach) == 0 {
		return c.usageError("give the reply's text (or - to read it from standard input)")
	}
	body := replyBody{Text: text, Channel: o.channel, Key: o.key}
	if o.to != "" {
		kind, value, ok := strings.Cut(o.to, ":")
		if !ok || kind == "" || value == "" {
			return c.usageError("--to %q: want kind:value, e.g. phone:+8613800138000 or email:li@example.com", o.to)
		}
		body.To = &replyTo{Kind: kind, Value: value}
	}
	for _, f := range o.attach {
		data, err := os.ReadFile(f)
		if err != nil {
			return c.usageError("--attach: %v", err)
		}
		ct := mime.TypeByExtension(filepath.Ext(f))
		if ct == "" {
			ct = http.DetectContentType(data)
		}
		body.Attachments = append(body.Attachments, replyAttachment{Name: filepath.Base(f), ContentType: ct,
			Data: base64.StdEncoding.EncodeToString(data)})
	}
	made := body.Key == ""
	if made {
		var b [12]byte
		_, _ = rand.Read(b[:])
		body.Key = "cli-" + hex.EncodeToString(b[:])
	}
	_, data, err := c.call(ctx, http.MethodPost, convPath(id, "reply"), body)
	if err != nil {
		code := c.fail(err)
		// No answer, or a server trouble: the reply may or may not be in.
		var ae *apiError
		if made && (!errors.As(err, &ae) || ae.Status >= 500) {
			fmt.Fprintf(c.stderr, "inroute agent: to retry without sending twice, add --key %s\n", body.Key)
		}
		return code
	}
	if c.json {
		if made {
			fmt.Fprintf(c.stderr, "idempotency key: %s\n", body.Key)
		}
		return c.printRaw(data)
	}
	var ans struct {
		Message viewMessage `json:"message"`
		Created bool        `json:"created"`
	}
	if !c.decode(data, &ans) {
		return exitFail
	}
	m := &ans.Message
	what := "reply"
	if !ans.Created {
		what = "already sent with this key: reply"
	}
	fmt.Fprintf(c.stdout, "%s %s to #%d on %s", what, m.ID, id, m.Channel)
	if m.FromValue != "" {
		fmt.Fprintf(c.stdout, " to %s:%s", m.FromKind, m.FromValue)
	}
	fmt.Fprintf(c.stdout, ": %s\n", deliveryWords(m))
	fmt.Fprintf(c.stdout, "idempotency key: %s\n", body.Key)
	return exitOK
}

func agentRenew(ctx context.Context, c *agentClient, _ *agentOpts, pos []string) int {
	id, ok := parseConvID(pos[0])
	if !ok {
		return c.usageError("%q is not a conversation id", pos[0])
	}
	_, data, err := c.call(ctx, http.MethodPost, convPath(id, "renew"), struct{}{})
	if err != nil {
		return c.fail(err)
	}
	if c.json {
		return c.printRaw(data)
	}
	var ans struct {
		LeaseUntil apiTime `json:"lease_until"`
	}
	if !c.decode(data, &ans) {
		return exitFail
	}
	fmt.Fprintf(c.stdout, "lease on #%d renewed until %s (%s left)\n", id, clock(ans.LeaseUntil.Time), human(time.Until(ans.LeaseUntil.Time)))
	return exitOK
}

func agentQueues(ctx context.Context, c *agentClient, _ *agentOpts, _ []string) int {
	_, data, err := c.call(ctx, http.MethodGet, "/v1/queues", nil)
	if err != nil {
		return c.fail(err)
	}
	if c.json {
		return c.printRaw(data)
	}
	var b queueBoard
	if !c.decode(data, &b) {
		return exitFail
	}
	printBoard(c.stdout, &b, time.Now())
	return exitOK
}

func agentMe(ctx context.Context, c *agentClient, _ *agentOpts, _ []string) int {
	_, data, err := c.call(ctx, http.MethodGet, "/v1/me", nil)
	if err != nil {
		return c.fail(err)
	}
	if c.json {
		return c.printRaw(data)
	}
	var me api.Me
	if !c.decode(data, &me) {
		return exitFail
	}
	fmt.Fprintf(c.stdout, "%s (%s)\n", me.Name, me.Role)
	fmt.Fprintf(c.stdout, "queues:  %s\n", orDash(strings.Join(me.Queues, ", ")))
	fmt.Fprintf(c.stdout, "open:    %d of %d\n", me.Open, me.Capacity)
	fmt.Fprintf(c.stdout, "lease:   %s\n", human(time.Duration(me.LeaseSeconds)*time.Second))
	return exitOK
}

// apiTime is a time in an answer; null, "" and a missing field are zero.
type apiTime struct{ time.Time }

func (t *apiTime) UnmarshalJSON(b []byte) error {
	var s *string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	if s == nil || *s == "" {
		t.Time = time.Time{}
		return nil
	}
	v, err := time.Parse(time.RFC3339Nano, *s)
	if err != nil {
		return err
	}
	t.Time = v
	return nil
}

type viewConversation struct {
	ID               int64    `json:"id"`
	Channel          string   `json:"channel"`
	LastChannel      string   `json:"last_channel"`
	Status           string   `json:"status"`
	Queue            string   `json:"queue"`
	Urgency          string   `json:"urgency"`
	Topic            string   `json:"topic"`
	Assignee         string   `json:"assignee"`
	Subject          string   `json:"subject"`
	CreatedAt        apiTime  `json:"created_at"`
	LeaseUntil       apiTime  `json:"lease_until"`
	FirstResponseDue apiTime  `json:"first_response_due"`
	NextResponseDue  apiTime  `json:"next_response_due"`
	SLABreached      bool     `json:"sla_breached"`
	SLAStep          int      `json:"sla_step"`
	Tags             []string `json:"tags"`
}

type viewAttachment struct {
	Name        string `json:"name"`
	ContentType string `json:"content_type"`
	Size        int64  `json:"size"`
}

type viewMessage struct {
	ID             string           `json:"id"`
	Direction      string           `json:"direction"`
	Channel        string           `json:"channel"`
	FromKind       string           `json:"from_kind"`
	FromValue      string           `json:"from_value"`
	FromName       string           `json:"from_name"`
	Subject        string           `json:"subject"`
	Text           string           `json:"text"`
	Attachments    []viewAttachment `json:"attachments"`
	Author         string           `json:"author"`
	Auto           bool             `json:"auto"`
	DeliveryStatus string           `json:"delivery_status"`
	DeliveryError  string           `json:"delivery_error"`
	ReceivedAt     apiTime          `json:"received_at"`
	Decision       *struct {
		Queue   string   `json:"queue"`
		Urgency string   `json:"urgency"`
		Topic   string   `json:"topic"`
		Explain []string `json:"explain"`
	} `json:"decision"`
}

type convView struct {
	Conversation viewConversation `json:"conversation"`
	Contact      *struct {
		ID         int64  `json:"id"`
		Name       string `json:"name"`
		Identities []struct {
			Kind     string `json:"kind"`
			Value    string `json:"value"`
			Verified bool   `json:"verified"`
		} `json:"identities"`
	} `json:"contact"`
	Messages []viewMessage `json:"messages"`
	Events   []struct {
		Kind  string         `json:"kind"`
		Actor string         `json:"actor"`
		At    apiTime        `json:"at"`
		Data  map[string]any `json:"data"`
	} `json:"events"`
	Explain []string `json:"explain"`
	History []struct {
		ID        int64   `json:"id"`
		Channel   string  `json:"channel"`
		Status    string  `json:"status"`
		Topic     string  `json:"topic"`
		Subject   string  `json:"subject"`
		CreatedAt apiTime `json:"created_at"`
	} `json:"history"`
}

// headerLine is the one-line state of a conversation.
func headerLine(c *viewConversation, now time.Time) string {
	lease := "-"
	if !c.LeaseUntil.IsZero() {
		if left := c.LeaseUntil.Sub(now); left > 0 {
			lease = human(left) + " left"
		} else {
			lease = "lapsed " + human(-left) + " ago"
		}
	}
	return fmt.Sprintf("#%d  queue %s  urgency %s  status %s  assignee %s  lease %s",
		c.ID, orDash(c.Queue), orDash(c.Urgency), orDash(c.Status), orDash(c.Assignee), lease)
}

func printView(w io.Writer, v *convView, now time.Time) {
	c := &v.Conversation
	fmt.Fprintln(w, headerLine(c, now))
	var info []string
	if c.Topic != "" {
		info = append(info, "topic "+c.Topic)
	}
	if c.Channel != "" {
		info = append(info, "started on "+c.Channel+" "+day(c.CreatedAt.Time, now))
	}
	if len(c.Tags) > 0 {
		info = append(info, "tags "+strings.Join(c.Tags, ", "))
	}
	if due, kind := c.FirstResponseDue, "first response"; !due.IsZero() || !c.NextResponseDue.IsZero() {
		if due.IsZero() {
			due, kind = c.NextResponseDue, "next response"
		}
		s := kind + " due in " + human(due.Sub(now))
		if left := due.Sub(now); left < 0 {
			s = kind + " overdue by " + human(-left)
		}
		if c.SLABreached {
			s += fmt.Sprintf(" (SLA breached, escalation step %d)", c.SLAStep)
		}
		info = append(info, s)
	}
	if len(info) > 0 {
		fmt.Fprintln(w, strings.Join(info, "  ·  "))
	}
	if c.Subject != "" {
		fmt.Fprintf(w, "subject: %s\n", c.Subject)
	}
	if ct := v.Contact; ct != nil {
		name := ct.Name
		if name == "" {
			name = "(no name)"
		}
		fmt.Fprintf(w, "\ncontact %d %s\n", ct.ID, name)
		rows := make([][]string, 0, len(ct.Identities))
		for _, id := range ct.Identities {
			verified := ""
			if id.Verified {
				verified = "verified"
			}
			rows = append(rows, []string{id.Kind, id.Value, verified})
		}
		writeTable(w, "  ", rows)
	}
	explained := false
	for i := range v.Messages {
		m := &v.Messages[i]
		fmt.Fprintln(w)
		head := []string{clockDay(m.ReceivedAt.Time, now), orDash(m.Channel), orDash(m.Direction)}
		if m.Direction == "in" {
			from := "from " + m.FromKind + ":" + m.FromValue
			if m.FromName != "" {
				from += " (" + m.FromName + ")"
			}
			head = append(head, from)
		} else {
			author := m.Author
			if m.Auto {
				author = "auto-reply"
			}
			head = append(head, orDash(author))
			if m.FromValue != "" {
				head = append(head, "to "+m.FromKind+":"+m.FromValue)
			}
			head = append(head, deliveryWords(m))
		}
		fmt.Fprintln(w, strings.Join(head, "  "))
		if m.Subject != "" {
			fmt.Fprintf(w, "    subject: %s\n", m.Subject)
		}
		text := strings.TrimRight(m.Text, "\n")
		if text == "" && len(m.Attachments) == 0 {
			text = "(no text)"
		}
		for _, line := range strings.Split(text, "\n") {
			if text != "" {
				fmt.Fprintf(w, "    %s\n", strings.TrimRight(line, "\r"))
			}
		}
		for _, a := range m.Attachments {
			fmt.Fprintf(w, "    [attachment] %s (%s, %s)\n", orDash(a.Name), orDash(a.ContentType), size(a.Size))
		}
		if m.Direction == "in" && m.Decision != nil {
			for _, e := range m.Decision.Explain {
				fmt.Fprintf(w, "    why: %s\n", e)
				explained = true
			}
		}
	}
	if !explained && len(v.Explain) > 0 {
		fmt.Fprintln(w)
		for _, e := range v.Explain {
			fmt.Fprintf(w, "why: %s\n", e)
		}
	}
	first := true
	for _, e := range v.Events {
		if e.Kind != "note" {
			continue
		}
		if first {
			fmt.Fprintln(w, "\nnotes:")
			first = false
		}
		text, _ := e.Data["text"].(string)
		fmt.Fprintf(w, "  %s  %s: %s\n", clockDay(e.At.Time, now), orDash(e.Actor), text)
	}
	if len(v.History) > 0 {
		fmt.Fprintln(w, "\nother conversations of this customer:")
		rows := make([][]string, 0, len(v.History))
		for _, h := range v.History {
			rows = append(rows, []string{fmt.Sprintf("#%d", h.ID), day(h.CreatedAt.Time, now), h.Channel, h.Status, h.Topic, h.Subject})
		}
		writeTable(w, "  ", rows)
	}
}

func deliveryWords(m *viewMessage) string {
	s := orDash(m.DeliveryStatus)
	if m.DeliveryError != "" {
		s += ": " + m.DeliveryError
	}
	return s
}

type queueBoard struct {
	Queues []struct {
		Name      string `json:"name"`
		Waiting   int    `json:"waiting"`
		ByUrgency map[string]struct {
			Waiting       int   `json:"waiting"`
			OldestSeconds int64 `json:"oldest_seconds"`
		} `json:"by_urgency"`
		OldestSeconds int64 `json:"oldest_seconds"`
		AtRisk        int   `json:"at_risk"`
		Breached      int   `json:"breached"`
	} `json:"queues"`
	AtRisk []struct {
		ID       int64   `json:"id"`
		Queue    string  `json:"queue"`
		Urgency  string  `json:"urgency"`
		Status   string  `json:"status"`
		Due      apiTime `json:"due"`
		Breached bool    `json:"breached"`
	} `json:"at_risk"`
	Agents []struct {
		Name     string  `json:"name"`
		Online   bool    `json:"online"`
		Open     int     `json:"open"`
		Capacity int     `json:"capacity"`
		LastSeen apiTime `json:"last_seen"`
	} `json:"agents"`
}

func printBoard(w io.Writer, b *queueBoard, now time.Time) {
	rows := [][]string{{"QUEUE", "WAITING", "URGENT", "HIGH", "NORMAL", "LOW", "OLDEST", "AT RISK", "BREACHED"}}
	for _, q := range b.Queues {
		row := []string{q.Name, strconv.Itoa(q.Waiting)}
		for _, u := range []string{"urgent", "high", "normal", "low"} {
			row = append(row, strconv.Itoa(q.ByUrgency[u].Waiting))
		}
		oldest := "-"
		if q.Waiting > 0 {
			oldest = human(time.Duration(q.OldestSeconds) * time.Second)
		}
		rows = append(rows, append(row, oldest, strconv.Itoa(q.AtRisk), strconv.Itoa(q.Breached)))
	}
	if len(b.Queues) == 0 {
		fmt.Fprintln(w, "no queues")
	} else {
		writeTable(w, "", rows)
	}
	if len(b.AtRisk) > 0 {
		fmt.Fprintln(w, "\nSLA at risk:")
		rows = [][]string{{"ID", "QUEUE", "URGENCY", "STATUS", "DUE"}}
		for _, r := range b.AtRisk {
			due := "in " + human(r.Due.Sub(now))
			if left := r.Due.Sub(now); left < 0 || r.Breached {
				due = "overdue by " + human(-left)
			}
			rows = append(rows, []string{fmt.Sprintf("#%d", r.ID), r.Queue, r.Urgency, r.Status, due})
		}
		writeTable(w, "  ", rows)
	}
	if len(b.Agents) > 0 {
		fmt.Fprintln(w, "\nagents:")
		rows = [][]string{{"NAME", "ONLINE", "OPEN", "LAST SEEN"}}
		for _, a := range b.Agents {
			online := "no"
			if a.Online {
				online = "yes"
			}
			seen := "-"
			if !a.LastSeen.IsZero() {
				seen = human(now.Sub(a.LastSeen.Time)) + " ago"
			}
			rows = append(rows, []string{a.Name, online, fmt.Sprintf("%d/%d", a.Open, a.Capacity), seen})
		}
		writeTable(w, "  ", rows)
	}
}

// writeTable prints rows in columns padded by display width, so Chinese
// (two columns a character) lines up with Latin text. The last column is
// not padded.
func writeTable(w io.Writer, indent string, rows [][]string) {
	var widths []int
	for _, r := range rows {
		for i, cell := range r {
			if i >= len(widths) {
				widths = append(widths, 0)
			}
			widths[i] = max(widths[i], displayWidth(cell))
		}
	}
	for _, r := range rows {
		var b strings.Builder
		b.WriteString(indent)
		for i, cell := range r {
			b.WriteString(cell)
			if i < len(r)-1 {
				b.WriteString(strings.Repeat(" ", widths[i]-displayWidth(cell)+2))
			}
		}
		fmt.Fprintln(w, strings.TrimRight(b.String(), " "))
	}
}

// displayWidth is how many terminal columns s takes: two for wide and
// full-width characters (CJK), none for combining marks and controls.
func displayWidth(s string) int {
	n := 0
	for _, r := range s {
		switch {
		case unicode.Is(unicode.Mn, r) || unicode.Is(unicode.Me, r) || unicode.IsControl(r) || r == '\u200b':
		case width.LookupRune(r).Kind() == width.EastAsianWide || width.LookupRune(r).Kind() == width.EastAsianFullwidth:
			n += 2
		default:
			n++
		}
	}
	return n
}

// human writes a duration to the second, without trailing zero units.
func human(d time.Duration) string {
	d = d.Round(time.Second)
	if d < 0 {
		d = -d
	}
	s := int64(d / time.Second)
	switch {
	case s < 60:
		return fmt.Sprintf("%ds", s)
	case s < 3600:
		if s%60 == 0 {
			return fmt.Sprintf("%dm", s/60)
		}
		return fmt.Sprintf("%dm%02ds", s/60, s%60)
	case s < 48*3600:
		return fmt.Sprintf("%dh%02dm", s/3600, s%3600/60)
	default:
		return fmt.Sprintf("%dd%02dh", s/86400, s%86400/3600)
	}
}

// clock is a time of day in local time.
func clock(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Local().Format(time.TimeOnly)
}

// clockDay is a local date and time; the date is left out for today.
func clockDay(t time.Time, now time.Time) string {
	if t.IsZero() {
		return "-"
	}
	t = t.Local()
	if y, m, d := now.Local().Date(); t.Year() == y && t.Month() == m && t.Day() == d {
		return t.Format(time.TimeOnly)
	}
	return t.Format(time.DateTime)
}

// day is a local date, or the time of day for today.
func day(t time.Time, now time.Time) string {
	if t.IsZero() {
		return "-"
	}
	t = t.Local()
	if y, m, d := now.Local().Date(); t.Year() == y && t.Month() == m && t.Day() == d {
		return "today " + t.Format("15:04")
	}
	return t.Format(time.DateOnly)
}

func size(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KB", float64(n)/(1<<10))
	default:
		return fmt.Sprintf("%d B", n)
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func agentQuarantine(ctx context.Context, c *agentClient, _ *agentOpts, pos []string) int {
	const base = "/v1/admin/email/quarantine"
	verb := "list"
	if len(pos) > 0 {
		verb = pos[0]
	}
	if verb != "list" && len(pos) != 2 {
		return c.usageError("quarantine %s needs the NAME from quarantine list", verb)
	}
	switch verb {
	case "list":
		_, data, err := c.call(ctx, http.MethodGet, base, nil)
		if err != nil {
			return c.fail(err)
		}
		if c.json {
			return c.printRaw(data)
		}
		var ans struct {
			Quarantine []struct {
				Name  string    `json:"name"`
				Error string    `json:"error"`
				At    time.Time `json:"at"`
				Size  int64     `json:"size"`
			} `json:"quarantine"`
		}
		if !c.decode(data, &ans) {
			return exitFail
		}
		if len(ans.Quarantine) == 0 {
			fmt.Fprintln(c.stdout, "the quarantine is empty")
			return exitOK
		}
		for _, q := range ans.Quarantine {
			fmt.Fprintf(c.stdout, "%s  %s  %d bytes\n    %s\n", q.Name, q.At.Local().Format("2006-01-02 15:04"), q.Size, q.Error)
		}
		return exitOK
	case "show":
		_, data, err := c.call(ctx, http.MethodGet, base+"/"+url.PathEscape(pos[1]), nil)
		if err != nil {
			return c.fail(err)
		}
		_, _ = c.stdout.Write(data)
		return exitOK
	case "retry":
		_, data, err := c.call(ctx, http.MethodPost, base+"/"+url.PathEscape(pos[1])+"/retry", nil)
		if err != nil {
			return c.fail(err)
		}
		if c.json {
			return c.printRaw(data)
		}
		var ans struct {
			MessageID string `json:"message_id"`
		}
		_ = json.Unmarshal(data, &ans)
		fmt.Fprintf(c.stdout, "%s reads now: routed as message %s\n", pos[1], ans.MessageID)
		return exitOK
	case "drop":
		if _, _, err := c.call(ctx, http.MethodDelete, base+"/"+url.PathEscape(pos[1]), nil); err != nil {
			return c.fail(err)
		}
		fmt.Fprintf(c.stdout, "dropped %s\n", pos[1])
		return exitOK
	}
	return c.usageError("quarantine: unknown action %q (list, show, retry or drop)", verb)
}
