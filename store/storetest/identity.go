package storetest

import (
	"errors"
	"testing"
	"time"

	"github.com/inroute/inroute/message"
	"github.com/inroute/inroute/store"
)

var identityTests = []contractTest{
	{"SenderAddressIsVerifiedIdentity", testSenderAddressIsVerifiedIdentity},
	{"SameVerifiedIdentitySameContact", testSameVerifiedIdentitySameContact},
	{"PhoneRegionOption", testPhoneRegionOption},
	{"VerifiedPhoneLinksNewAppUserToSMSContact", testVerifiedPhoneLinksNewAppUser},
	{"SharedVerifiedIdentityMergesNewerIntoOlder", testSharedVerifiedIdentityMerges},
	{"UnverifiedPhoneNeverJoinsContacts", testUnverifiedPhoneNeverJoins},
	{"UnverifiedEmailNeverJoinsContacts", testUnverifiedEmailNeverJoins},
	{"FindContactsAnyFormat", testFindContactsAnyFormat},
	{"FindContactsUnknownValue", testFindContactsUnknown},
	{"UnknownContactNotFound", testUnknownContactNotFound},
}

// The channel proves the sender's address, so it is a verified identity of
// the contact, normalized per channel, and it is what the message records
// as the identity that wrote.
func testSenderAddressIsVerifiedIdentity(t *testing.T, b Backend) {
	e := newEnv(t, b)
	cases := []struct {
		name        string
		ch          message.Channel
		from, to    string
		kind, value string
	}{
		{"EmailLowerCased", message.Email, "Ann.Lee@Example.COM", "support@wallet.example", store.KindEmail, "ann.lee@example.com"},
		{"SMSToE164WithDefaultRegionCN", message.SMS, "138 0013 8000", "+8610086000", store.KindPhone, "+8613800138000"},
		{"VoiceToE164", message.Voice, "+86 139-0013-9000", "+8610086000", store.KindPhone, "+8613900139000"},
		{"AppIsAppNameSlashUser", message.App, "u-42", "wallet", store.KindApp, "wallet/u-42"},
		{"TelegramKindIsChannel", message.Telegram, "123456789", "wallet_bot", "telegram", "123456789"},
		{"MessengerKindIsChannel", message.Messenger, "psid-991", "wallet_page", "messenger", "psid-991"},
		{"WeChatKindIsChannel", message.WeChat, "oWx-openid-1", "wallet_oa", "wechat", "oWx-openid-1"},
		{"WebChatKindIsChannel", message.WebChat, "visitor-7f3a", "wallet_site", "webchat", "visitor-7f3a"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := e.sub(t)
			m := e.msg(tc.ch, tc.from)
			m.To.Address = tc.to
			r := e.rec(m, topic("balance"))
			if r.Conversation.ContactID == 0 {
				t.Fatalf("Record: Conversation.ContactID is 0; want the sender's contact")
			}
			c := e.contact(r.Conversation.ContactID)
			id, ok := identity(c, tc.kind, tc.value)
			if !ok {
				t.Fatalf("Contact(%d).Identities = %+v; want one %s %q", c.ID, c.Identities, tc.kind, tc.value)
			}
			if !id.Verified {
				t.Errorf("identity %s %q is not verified; the channel's own sender address must be", tc.kind, tc.value)
			}
			ms := e.messages(r.Conversation.ID)
			if len(ms) != 1 {
				t.Fatalf("Messages(%d) has %d messages; want 1", r.Conversation.ID, len(ms))
			}
			if ms[0].FromKind != tc.kind || ms[0].FromValue != tc.value {
				t.Errorf("message From = %s %q; want the identity that wrote, %s %q", ms[0].FromKind, ms[0].FromValue, tc.kind, tc.value)
			}
			if got := e.find(tc.value); !sameSet(got, []int64{c.ID}) {
				t.Errorf("FindContacts(%q) = %v; want [%d]", tc.value, got, c.ID)
			}
		})
	}
}

// A later message with the same verified identity, however it is written,
// belongs to the same contact. The second message is kept out of the first
// conversation (another topic, past the chat window) so that the contact
// is compared, not inherited from a joined conversation.
func testSameVerifiedIdentitySameContact(t *testing.T, b Backend) {
	e := newEnv(t, b)
	cases := []struct {
		name       string
		ch1        message.Channel
		from1      string
		ch2        message.Channel
		from2      string
		findFormat string
	}{
		{"EmailInAnyCase", message.Email, "Dora@Example.com", message.Email, "dora@EXAMPLE.COM", "DORA@example.com"},
		{"SMSInAnyFormat", message.SMS, "13700137000", message.SMS, "+86 137 0013 7000", "137-0013-7000"},
		{"SMSThenVoiceSamePhone", message.SMS, "+8613600136000", message.Voice, "136 0013 6000", "+8613600136000"},
		{"TelegramAgain", message.Telegram, "424242", message.Telegram, "424242", "424242"},
		{"AppUserAgain", message.App, "u-9", message.App, "u-9", "wallet/u-9"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := e.sub(t)
			r1 := e.rec(e.msg(tc.ch1, tc.from1), topic("topup_missing"))
			e.clock.Advance(25 * time.Hour)
			r2 := e.rec(e.msg(tc.ch2, tc.from2), topic("card_lost"))
			if r2.Joined {
				t.Fatalf("second message joined conversation %d; want a new one (other topic, chat window passed)", r2.Conversation.ID)
			}
			c1, c2 := r1.Conversation.ContactID, r2.Conversation.ContactID
			if c1 != c2 {
				t.Errorf("%s %q and %s %q went to contacts %d and %d; want one contact for one verified identity",
					tc.ch1, tc.from1, tc.ch2, tc.from2, c1, c2)
			}
			if got := e.find(tc.findFormat); !sameSet(got, []int64{c1}) {
				t.Errorf("FindContacts(%q) = %v; want [%d]", tc.findFormat, got, c1)
			}
		})
	}
}

// Options.PhoneRegion decides the country of numbers written without one.
func testPhoneRegionOption(t *testing.T, b Backend) {
	e := newEnv(t, b, func(o *store.Options) { o.PhoneRegion = "US" })
	r := e.rec(e.msg(message.SMS, "(415) 555-0100"), topic("balance"))
	c := e.contact(r.Conversation.ContactID)
	if _, ok := identity(c, store.KindPhone, "+14155550100"); !ok {
		t.Errorf("Contact(%d).Identities = %+v; want phone +14155550100 (region US)", c.ID, c.Identities)
	}
	if got := e.find("415-555-0100"); !sameSet(got, []int64{c.ID}) {
		t.Errorf("FindContacts(%q) with region US = %v; want [%d]", "415-555-0100", got, c.ID)
	}
}

// An app user seen for the first time, whose app confirmed a phone that an
// SMS contact wrote from, is that SMS contact: the verified phone already
// belongs to it.
func testVerifiedPhoneLinksNewAppUser(t *testing.T, b Backend) {
	e := newEnv(t, b)
	r1 := e.rec(e.msg(message.SMS, "+8613800138000"), topic("card_lost"))
	smsContact := r1.Conversation.ContactID

	e.clock.Advance(time.Hour)
	app := e.msg(message.App, "u-1")
	app.From.Phone, app.From.PhoneVerified = "138 0013 8000", true
	r2 := e.rec(app, topic("login"))

	if got := e.canonical(r2.Conversation.ContactID); got != smsContact {
		t.Errorf("app message with verified phone went to contact %d; want the SMS contact %d that owns the phone", got, smsContact)
	}
	for _, v := range []string{"wallet/u-1", "+8613800138000"} {
		if got := e.find(v); !sameSet(got, []int64{smsContact}) {
			t.Errorf("FindContacts(%q) = %v; want [%d]", v, got, smsContact)
		}
	}
}

// Two existing contacts that turn out to share a verified identity are one
// customer: the newer is merged into the older, and the older's
// conversations then include the newer's.
func testSharedVerifiedIdentityMerges(t *testing.T, b Backend) {
	e := newEnv(t, b)
	r1 := e.rec(e.msg(message.SMS, "+8613800138000"), topic("card_lost"))
	older := r1.Conversation.ContactID

	e.clock.Advance(time.Hour)
	r2 := e.rec(e.msg(message.App, "u-1"), topic("login"))
	newer := r2.Conversation.ContactID
	if newer == older {
		t.Fatalf("app user u-1 (no phone yet) got the SMS contact %d; want a contact of its own", older)
	}

	// The app user now confirms the phone the SMS contact wrote from.
	e.clock.Advance(time.Hour)
	app := e.msg(message.App, "u-1")
	app.From.Phone, app.From.PhoneVerified = "+8613800138000", true
	r3 := e.rec(app, topic("login"))

	if got := e.contact(newer).MergedInto; got != older {
		t.Errorf("Contact(newer %d).MergedInto = %d; want the older contact %d", newer, got, older)
	}
	if got := e.contact(older).MergedInto; got != 0 {
		t.Errorf("Contact(older %d).MergedInto = %d; want 0 (the older contact stays)", older, got)
	}
	want := ids(r1.Conversation.ID, r2.Conversation.ID, r3.Conversation.ID)
	if got := e.contactConvs(older); !sameSet(got, want) {
		t.Errorf("ContactConversations(older %d) = %v; want the conversations of both, %v", older, got, want)
	}
	for _, v := range []string{"wallet/u-1", "+8613800138000"} {
		if got := e.find(v); !sameSet(got, []int64{older}) {
			t.Errorf("FindContacts(%q) = %v; want only the canonical contact [%d]", v, got, older)
		}
	}
}

// An unverified identity is only a claim: anyone can type any phone into
// an app. Two users claiming the same phone stay two contacts, and the
// real owner of the number (writing by SMS) is a third; FindContacts still
// finds all of them.
func testUnverifiedPhoneNeverJoins(t *testing.T, b Backend) {
	e := newEnv(t, b)
	const phone = "+8613800138000"
	a := e.msg(message.App, "u-1")
	a.From.Phone = "138 0013 8000"
	ra := e.rec(a, topic("login"))

	e.clock.Advance(time.Minute)
	bm := e.msg(message.App, "u-2")
	bm.From.Phone = "+86 138 0013 8000"
	rb := e.rec(bm, topic("login"))

	ca, cb := ra.Conversation.ContactID, rb.Conversation.ContactID
	if ca == cb {
		t.Fatalf("two app users claiming the same unverified phone share contact %d; want two contacts", ca)
	}
	for _, id := range []int64{ca, cb} {
		c := e.contact(id)
		if c.MergedInto != 0 {
			t.Errorf("Contact(%d).MergedInto = %d; an unverified phone must not merge contacts", id, c.MergedInto)
		}
		got, ok := identity(c, store.KindPhone, phone)
		if !ok {
			t.Errorf("Contact(%d).Identities = %+v; want the claimed phone %s (unverified)", id, c.Identities, phone)
		} else if got.Verified {
			t.Errorf("Contact(%d) phone %s is verified; the app did not verify it", id, phone)
		}
	}

	e.clock.Advance(time.Minute)
	rs := e.rec(e.msg(message.SMS, phone), topic("card_lost"))
	cs := rs.Conversation.ContactID
	if cs == ca || cs == cb || e.canonical(cs) == ca || e.canonical(cs) == cb {
		t.Errorf("SMS from %s went to contact %d (canonical %d); want a new contact, not an app user that only claimed the phone (%d, %d)",
			phone, cs, e.canonical(cs), ca, cb)
	}
	if got := e.find("138 0013 8000"); !sameSet(got, []int64{ca, cb, cs}) {
		t.Errorf("FindContacts(%q) = %v; want all three contacts %v", "138 0013 8000", got, []int64{ca, cb, cs})
	}
}

// The same holds for an unverified e-mail: the person who really writes
// from that address is not the app user who typed it.
func testUnverifiedEmailNeverJoins(t *testing.T, b Backend) {
	e := newEnv(t, b)
	a := e.msg(message.App, "u-3")
	a.From.Email = "Bob@Example.com"
	ra := e.rec(a, topic("login"))

	e.clock.Advance(time.Minute)
	rm := e.rec(e.msg(message.Email, "bob@example.com"), topic("refund"))
	ca, cm := ra.Conversation.ContactID, rm.Conversation.ContactID
	if ca == cm || e.canonical(cm) == ca {
		t.Errorf("e-mail from bob@example.com went to the app user's contact %d; want its own contact (the app did not verify the e-mail)", ca)
	}
	if got := e.find("BOB@example.com"); !sameSet(got, []int64{ca, cm}) {
		t.Errorf("FindContacts(%q) = %v; want both contacts %v", "BOB@example.com", got, []int64{ca, cm})
	}
}

// Agents type identities as they have them: e-mails in any case, phones
// with or without country code, spaces or dashes.
func testFindContactsAnyFormat(t *testing.T, b Backend) {
	e := newEnv(t, b)
	email := e.rec(e.msg(message.Email, "Carol.Wu@Example.com"), topic("refund")).Conversation.ContactID
	phone := e.rec(e.msg(message.SMS, "+8613800138000"), topic("refund")).Conversation.ContactID
	app := e.rec(e.msg(message.App, "u-7"), topic("refund")).Conversation.ContactID
	tg := e.rec(e.msg(message.Telegram, "555001"), topic("refund")).Conversation.ContactID
	if len(map[int64]bool{email: true, phone: true, app: true, tg: true}) != 4 {
		t.Fatalf("four different senders got contacts %d, %d, %d, %d; want four contacts", email, phone, app, tg)
	}
	cases := []struct {
		query string
		want  int64
	}{
		{"carol.wu@example.com", email},
		{"CAROL.WU@EXAMPLE.COM", email},
		{"Carol.Wu@Example.com", email},
		{"+8613800138000", phone},
		{"13800138000", phone},
		{"138 0013 8000", phone},
		{"138-0013-8000", phone},
		{"+86 138 0013 8000", phone},
		{"wallet/u-7", app},
		{"555001", tg},
	}
	for _, tc := range cases {
		t.Run(tc.query, func(t *testing.T) {
			e := e.sub(t)
			if got := e.find(tc.query); !sameSet(got, []int64{tc.want}) {
				t.Errorf("FindContacts(%q) = %v; want [%d]", tc.query, got, tc.want)
			}
		})
	}
}

func testFindContactsUnknown(t *testing.T, b Backend) {
	e := newEnv(t, b)
	e.rec(e.msg(message.Email, "someone@example.com"), topic("refund"))
	for _, q := range []string{"nobody@example.com", "+8613999999999", "wallet/u-unknown"} {
		if got := e.find(q); len(got) != 0 {
			t.Errorf("FindContacts(%q) = %v; want no contacts", q, got)
		}
	}
}

func testUnknownContactNotFound(t *testing.T, b Backend) {
	e := newEnv(t, b)
	if _, err := e.s.Contact(e.ctx, 987654321); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Contact(unknown id): err = %v; want store.ErrNotFound", err)
	}
}
