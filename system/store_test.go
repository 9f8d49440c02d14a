package system_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/inroute/inroute/config"
	"github.com/inroute/inroute/connectors"
	"github.com/inroute/inroute/message"
	"github.com/inroute/inroute/store"
	"github.com/inroute/inroute/store/postgres/pgtest"
	"github.com/inroute/inroute/system"
)

// backends runs fn on the embedded SQLite store and, when the test
// database is there, on PostgreSQL.
func backends(t *testing.T, fn func(t *testing.T, cfg *config.Config)) {
	t.Run("sqlite", func(t *testing.T) { fn(t, testConfig(t)) })
	t.Run("postgres", func(t *testing.T) {
		cfg := testConfig(t)
		cfg.Store.URL = pgtest.FreshURL(t)
		fn(t, cfg)
	})
}

func waitConversations(t *testing.T, st store.Store, contact int64, n int) []store.Conversation {
	t.Helper()
	var convs []store.Conversation
	deadline := time.Now().Add(15 * time.Second)
	for {
		var err error
		convs, err = st.ContactConversations(context.Background(), contact)
		if err == nil && len(convs) == n {
			return convs
		}
		if time.Now().After(deadline) {
			t.Fatalf("contact %d has %d conversations (%v), want %d", contact, len(convs), err, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func findOne(t *testing.T, st store.Store, v string) store.Contact {
	t.Helper()
	var cs []store.Contact
	deadline := time.Now().Add(15 * time.Second)
	for {
		var err error
		cs, err = st.FindContacts(context.Background(), v)
		if err == nil && len(cs) == 1 {
			return cs[0]
		}
		if time.Now().After(deadline) {
			t.Fatalf("contacts for %s: %d (%v), want 1", v, len(cs), err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A customer writes in the app (the app has verified their phone), then
// texts from that phone: one contact, one conversation, one queue item,
// and the history has both messages.
func TestAppThenSMSIsOneCustomer(t *testing.T) {
	backends(t, func(t *testing.T, cfg *config.Config) {
		sys := start(t, cfg, system.RoleAll)
		base := "http://" + sys.HTTPAddr()
		status, body, _ := do(t, "POST", base+"/v1/channels/app/messages", appToken, map[string]any{
			"message_id": "m1", "text": "我的充值还没到账",
			"user": map[string]any{"id": "u-7", "name": "王芳", "phone": "138 0013 8000", "phone_verified": true},
		})
		if status != 202 {
			t.Fatalf("app post: %d %s", status, body)
		}
		contact := findOne(t, sys.Store(), "+8613800138000")
		waitConversations(t, sys.Store(), contact.ID, 1)

		// The SMS connector publishes the text as it would from Twilio.
		sms := &message.Message{V: 1, ID: message.NewID(), Channel: message.SMS, ChannelMessageID: "SM1",
			ReceivedAt: time.Now().UTC(), From: message.Party{Address: "+8613800138000"}, To: message.Party{Address: "+8610100000000"},
			Text: "still no top-up, please help"}
		if _, _, err := (&connectors.Inbound{Bus: sys.Bus()}).Publish(context.Background(), sms); err != nil {
			t.Fatal(err)
		}
		var msgs []store.Message
		deadline := time.Now().Add(15 * time.Second)
		for len(msgs) < 2 && time.Now().Before(deadline) {
			convs := waitConversations(t, sys.Store(), contact.ID, 1)
			msgs, _ = sys.Store().Messages(context.Background(), convs[0].ID)
			time.Sleep(20 * time.Millisecond)
		}
		if len(msgs) != 2 || msgs[0].Channel != message.App || msgs[1].Channel != message.SMS {
			t.Fatalf("history: %+v", msgs)
		}
		if again := findOne(t, sys.Store(), "wallet/u-7"); again.ID != contact.ID {
			t.Fatalf("app identity is contact %d, phone is %d", again.ID, contact.ID)
		}
		// One conversation, so one item for an agent, not two.
		status, it := next(t, base)
		if status != 200 || it.ConversationID != msgs[0].ConversationID {
			t.Fatalf("next: %d %+v", status, it)
		}
		if status, _ := next(t, base); status != http.StatusNoContent {
			t.Fatalf("a second item for the same conversation: %d", status)
		}
		c, err := sys.Store().Conversation(context.Background(), it.ConversationID)
		if err != nil || c.Status != store.StatusAssigned || c.Assignee != "ann" {
			t.Fatalf("after next: %+v %v", c, err)
		}
	})
}

// The whole history survives a restart of the process.
func TestHistorySurvivesRestart(t *testing.T) {
	backends(t, func(t *testing.T, cfg *config.Config) {
		ctx := context.Background()
		sys, err := system.Start(ctx, system.Options{Config: cfg, Roles: system.RoleAll})
		if err != nil {
			t.Fatal(err)
		}
		base := "http://" + sys.HTTPAddr()
		for i := range 3 {
			status, body, _ := do(t, "POST", base+"/v1/channels/app/messages", appToken, map[string]any{
				"message_id": fmt.Sprint("h", i), "text": fmt.Sprint("message ", i), "user": map[string]any{"id": "u-9"},
			})
			if status != 202 {
				t.Fatalf("%d %s", status, body)
			}
		}
		contact := findOne(t, sys.Store(), "wallet/u-9")
		deadline := time.Now().Add(15 * time.Second)
		for {
			convs, _ := sys.Store().ContactConversations(ctx, contact.ID)
			if len(convs) == 1 {
				if msgs, _ := sys.Store().Messages(ctx, convs[0].ID); len(msgs) == 3 {
					break
				}
			}
			if time.Now().After(deadline) {
				t.Fatal("history not recorded")
			}
			time.Sleep(20 * time.Millisecond)
		}
		if err := sys.Shutdown(ctx); err != nil {
			t.Fatal(err)
		}
		sys2 := start(t, cfg, system.RoleAll)
		convs := waitConversations(t, sys2.Store(), contact.ID, 1)
		msgs, err := sys2.Store().Messages(ctx, convs[0].ID)
		if err != nil || len(msgs) != 3 {
			t.Fatalf("after restart: %d messages, %v", len(msgs), err)
		}
		for i, m := range msgs {
			if m.Text != fmt.Sprint("message ", i) || m.Decision == nil || len(m.Decision.Explain) == 0 {
				t.Fatalf("message %d: %+v", i, m)
			}
		}
	})
}
