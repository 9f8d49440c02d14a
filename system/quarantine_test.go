package system_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/inroute/inroute/bus/testbus"
	"github.com/inroute/inroute/config"
	"github.com/inroute/inroute/connectors/email/mailtest"
	"github.com/inroute/inroute/system"
)

// An admin finds unreadable mail in the quarantine, reads it raw, tries it
// again and drops it, through the API; agents may not.
func TestEmailQuarantineThroughTheAPI(t *testing.T) {
	srv := mailtest.StartIMAP(t, mailtest.IMAPOptions{})
	cfg := shippedConfig(t)
	cfg.Conns.Email.Mailboxes = []config.Mailbox{srv.Mailbox()}
	sys := start(t, cfg, system.RoleAll)
	base := "http://" + sys.HTTPAddr()
	const bad = "Subject: nobody wrote this\r\nMessage-ID: <q1@nowhere>\r\n\r\nno sender\r\n"
	srv.Deliver("INBOX", []byte(bad))

	type item struct {
		Name, Error string
		Size        int64
	}
	var items []item
	testbus.CheckFor(t, 10*time.Second, 50*time.Millisecond, func() error {
		s, data, _ := do(t, "GET", base+"/v1/admin/email/quarantine", adminToken, nil)
		if s != http.StatusOK {
			return fmt.Errorf("list: %d %s", s, data)
		}
		var ans struct{ Quarantine []item }
		if err := json.Unmarshal(data, &ans); err != nil {
			return err
		}
		if items = ans.Quarantine; len(items) != 1 {
			return fmt.Errorf("%d quarantined", len(items))
		}
		return nil
	})
	name := items[0].Name
	if items[0].Error == "" || items[0].Size != int64(len(bad)) {
		t.Fatalf("quarantined %+v", items[0])
	}
	if s, _, _ := do(t, "GET", base+"/v1/admin/email/quarantine", agentToken, nil); s != http.StatusForbidden {
		t.Errorf("an agent listed the quarantine: %d", s)
	}
	s, data, hdr := do(t, "GET", base+"/v1/admin/email/quarantine/"+name, adminToken, nil)
	if s != http.StatusOK || string(data) != bad || hdr.Get("Content-Type") != "message/rfc822" {
		t.Fatalf("raw: %d %q %s", s, data, hdr.Get("Content-Type"))
	}
	if s, data, _ := do(t, "POST", base+"/v1/admin/email/quarantine/"+name+"/retry", adminToken, nil); s != http.StatusUnprocessableEntity {
		t.Errorf("retry of unreadable mail: %d %s", s, data)
	}
	if s, _, _ := do(t, "DELETE", base+"/v1/admin/email/quarantine/"+name, adminToken, nil); s != http.StatusNoContent {
		t.Errorf("drop: %d", s)
	}
	if s, data, _ := do(t, "DELETE", base+"/v1/admin/email/quarantine/"+name, adminToken, nil); s != http.StatusNotFound {
		t.Errorf("drop again: %d %s", s, data)
	}
}
