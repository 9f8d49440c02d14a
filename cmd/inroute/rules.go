package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/inroute/inroute/config"
	"github.com/inroute/inroute/message"
	"github.com/inroute/inroute/router/rules"
)

const rulesUsage = `Usage: inroute rules SUBCOMMAND [flags]

Check and try the routing rules (the routing section of the config):

  check                       validate the rules and run their tests; exit 0 when
                              all is well, 1 with file:line:col lines otherwise
  test [--input FILE|-]       read JSON lines (channel, text, optional subject,
                              from, to, queue_hint; other fields ignored) and
                              write one JSON line per input with queue, urgency,
                              topic and explain
  explain --channel C [--subject S] [--from A] [--to A] [--queue-hint Q] TEXT
                              say in words how a message would be routed

Every subcommand takes --config FILE (default ./config.yaml).
`

func runRules(_ context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stdout, rulesUsage)
		if len(args) == 0 {
			return exitConfig
		}
		return exitOK
	}
	sub, rest := args[0], args[1:]
	fs := flag.NewFlagSet("inroute rules "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "./config.yaml", "configuration file")
	input := fs.String("input", "-", "test: JSON lines to route (- for standard input)")
	channel := fs.String("channel", "", "explain: the channel the message came on")
	subject := fs.String("subject", "", "explain: the subject")
	from := fs.String("from", "", "explain: the sender's address")
	to := fs.String("to", "", "explain: the address written to")
	hint := fs.String("queue-hint", "", "explain: the queue the connector suggests (an e-mail mailbox's queue)")
	pos, err := parseInterspersed(fs, rest)
	if err != nil {
		return exitConfig
	}
	switch sub {
	case "check", "test", "explain":
	default:
		fmt.Fprintf(stderr, "inroute rules: unknown subcommand %q\n\n%s", sub, rulesUsage)
		return exitConfig
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		fmt.Fprintln(stderr, err)
		if sub == "check" {
			return exitFail
		}
		return exitConfig
	}
	switch sub {
	case "check":
		e, err := rules.Check(cfg)
		if err != nil {
			fmt.Fprintln(stderr, err)
			return exitFail
		}
		r := cfg.Routing
		fmt.Fprintf(stdout, "rules version %s: %d topics, %d rules, %d tests passed\n", e.Version(), len(r.Topics), len(r.Rules), len(r.Tests))
		return exitOK
	case "test":
		e, err := rules.Compile(cfg)
		if err != nil {
			fmt.Fprintln(stderr, err)
			return exitFail
		}
		return rulesTest(e, *input, stdout, stderr)
	default: // explain
		if *channel == "" || len(pos) == 0 {
			fmt.Fprintf(stderr, "inroute rules explain: want --channel and the message text\n\n%s", rulesUsage)
			return exitConfig
		}
		if !message.Channel(*channel).Valid() {
			fmt.Fprintf(stderr, "inroute rules explain: unknown channel %q\n", *channel)
			return exitConfig
		}
		e, err := rules.Compile(cfg)
		if err != nil {
			fmt.Fprintln(stderr, err)
			return exitFail
		}
		m := rules.TestMessage(config.TestMessage{Channel: *channel, Subject: *subject, Text: strings.Join(pos, " "), From: *from, To: *to, QueueHint: *hint})
		m.ReceivedAt = time.Now()
		d := e.Decide(m)
		fmt.Fprintf(stdout, "queue:    %s\nurgency:  %s\ntopic:    %s\n", d.Queue, d.Urgency, d.Topic)
		if len(d.Tags) > 0 {
			fmt.Fprintf(stdout, "tags:     %s\n", strings.Join(d.Tags, ", "))
		}
		if d.AutoReply != "" {
			fmt.Fprintf(stdout, "reply:    %s\n", d.AutoReply)
		}
		fmt.Fprintf(stdout, "rules:    %s\nwhy:\n", d.RulesVersion)
		for i, line := range d.Explain {
			fmt.Fprintf(stdout, "  %d. %s\n", i+1, line)
		}
		return exitOK
	}
}

// testLine is an input line of `rules test`; other fields are ignored.
type testLine struct {
	Channel string `json:"channel"`
	Subject string `json:"subject"`
	Text    string `json:"text"`
	From    string `json:"from"`
	To      string `json:"to"`
	// QueueHint is a connector's suggested queue (message.ExtraQueueHint).
	QueueHint string `json:"queue_hint"`
}

type testOutput struct {
	Queue        string   `json:"queue,omitempty"`
	Urgency      string   `json:"urgency,omitempty"`
	Topic        string   `json:"topic,omitempty"`
	Tags         []string `json:"tags,omitempty"`
	AutoReply    string   `json:"auto_reply,omitempty"`
	RulesVersion string   `json:"rules_version,omitempty"`
	Explain      []string `json:"explain,omitempty"`
	Error        string   `json:"error,omitempty"`
}

func rulesTest(e *rules.Engine, input string, stdout, stderr io.Writer) int {
	var in io.Reader = os.Stdin
	if input != "-" {
		f, err := os.Open(input)
		if err != nil {
			fmt.Fprintf(stderr, "inroute rules test: %v\n", err)
			return exitConfig
		}
		defer f.Close()
		in = f
	}
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
	out := bufio.NewWriter(stdout)
	defer out.Flush()
	enc := json.NewEncoder(out)
	enc.SetEscapeHTML(false)
	code := exitOK
	n := 0
	for sc.Scan() {
		n++
		raw := strings.TrimSpace(sc.Text())
		if raw == "" {
			continue
		}
		var tl testLine
		var res testOutput
		switch err := json.Unmarshal([]byte(raw), &tl); {
		case err != nil:
			res.Error = fmt.Sprintf("line %d: not a JSON object: %v", n, err)
		case !message.Channel(tl.Channel).Valid():
			res.Error = fmt.Sprintf("line %d: unknown channel %q", n, tl.Channel)
		case strings.TrimSpace(tl.Text) == "" && strings.TrimSpace(tl.Subject) == "":
			res.Error = fmt.Sprintf("line %d: no text or subject", n)
		}
		if res.Error != "" {
			fmt.Fprintln(stderr, res.Error)
			code = exitFail
		} else {
			m := rules.TestMessage(config.TestMessage(tl))
			m.ReceivedAt = time.Now()
			d := e.Decide(m)
			res = testOutput{Queue: d.Queue, Urgency: string(d.Urgency), Topic: d.Topic, Tags: d.Tags,
				AutoReply: d.AutoReply, RulesVersion: d.RulesVersion, Explain: d.Explain}
		}
		if err := enc.Encode(res); err != nil {
			return exitFail
		}
	}
	if err := sc.Err(); err != nil {
		fmt.Fprintf(stderr, "inroute rules test: %v\n", err)
		return exitFail
	}
	return code
}
