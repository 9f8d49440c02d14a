package main

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/inroute/inroute/config"
	"github.com/inroute/inroute/message"
	"github.com/inroute/inroute/store"
	"github.com/inroute/inroute/system"
)

func TestStoreCommands(t *testing.T) {
	dir := t.TempDir()
	p := writeConfig(t, "data_dir: "+filepath.Join(dir, "data")+"\n")
	cfg, err := config.Load(p)
	if err != nil {
		t.Fatal(err)
	}
	st, err := system.OpenStore(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	rec := func(ch message.Channel, from, id string) store.Result {
		m := &message.Message{V: 1, ID: message.NewID(), Channel: ch, ChannelMessageID: id, ReceivedAt: time.Now().UTC(),
			From: message.Party{Address: from, Name: "Li"}, To: message.Party{Address: "wallet"}, Text: "hi"}
		res, err := st.Record(context.Background(), []store.Inbound{{Msg: m, Decision: store.Decision{Queue: "general", Urgency: message.Normal, Topic: "general"}}})
		if err != nil {
			t.Fatal(err)
		}
		return res[0]
	}
	a := rec(message.App, "u-1", "a1")
	b := rec(message.SMS, "+8613800138000", "s1")
	if err := st.SetStatus(context.Background(), b.Conversation.ID, store.StatusResolved, "test"); err != nil {
		t.Fatal(err)
	}
	st.Close()

	run := func(args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		code := run(context.Background(), append([]string{"store"}, append(args, "--config", p)...), &out, &errb)
		return code, out.String(), errb.String()
	}
	code, out, errs := run("find", "138 0013 8000")
	if code != 0 || !strings.Contains(out, "+8613800138000") || !strings.Contains(out, fmt.Sprint("contact ", b.Conversation.ContactID)) {
		t.Fatalf("find: %d %q %q", code, out, errs)
	}
	code, out, errs = run("merge", fmt.Sprint(a.Conversation.ContactID), fmt.Sprint(b.Conversation.ContactID))
	m := regexp.MustCompile(`unmerge (\d+)`).FindStringSubmatch(out)
	if code != 0 || m == nil {
		t.Fatalf("merge: %d %q %q", code, out, errs)
	}
	if code, out, _ = run("find", "+8613800138000"); code != 0 || !strings.Contains(out, fmt.Sprint("contact ", a.Conversation.ContactID, " ")) {
		t.Fatalf("after merge, find gives %d %q", code, out)
	}
	if code, out, errs = run("unmerge", m[1]); code != 0 || !strings.Contains(out, "undone") {
		t.Fatalf("unmerge: %d %q %q", code, out, errs)
	}
	if code, _, errs = run("unmerge", m[1]); code != exitConfig || !strings.Contains(errs, "conflict") {
		t.Fatalf("second unmerge: %d %q", code, errs)
	}
	if code, _, errs = run("purge"); code != exitConfig || !strings.Contains(errs, "retention") {
		t.Fatalf("purge without retention: %d %q", code, errs)
	}
	time.Sleep(5 * time.Millisecond)
	if code, out, errs = run("purge", "--older-than", "1ms", "--dry-run"); code != 0 || !strings.Contains(out, "would purge 1 ") {
		t.Fatalf("dry run: %d %q %q", code, out, errs)
	}
	if code, out, errs = run("purge", "--older-than", "1ms"); code != 0 || !strings.Contains(out, "1 conversations, 1 messages") {
		t.Fatalf("purge: %d %q %q", code, out, errs)
	}
	for _, bad := range [][]string{{"frob"}, {"merge", "1"}, {"merge", "x", "2"}, {"find"}} {
		if code, _, _ := run(bad...); code != exitConfig {
			t.Errorf("%v: exit %d", bad, code)
		}
	}
}
