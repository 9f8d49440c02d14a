package store

import (
	"fmt"
	"strings"

	"github.com/inroute/inroute/message"
	"github.com/nyaruka/phonenumbers"
)

// NormalizePhone returns s in E.164 form (+8613800138000). Numbers without a
// country code are read as numbers of region (an ISO country code).
func NormalizePhone(s, region string) (string, error) {
	num, err := phonenumbers.Parse(s, region)
	if err != nil {
		return "", fmt.Errorf("phone number %q: %w", s, err)
	}
	if !phonenumbers.IsPossibleNumber(num) {
		return "", fmt.Errorf("phone number %q is not a possible number", s)
	}
	return phonenumbers.Format(num, phonenumbers.E164), nil
}

// NormalizeEmail folds an e-mail address for comparison. Local parts are
// case-sensitive in theory and never in practice.
func NormalizeEmail(s string) string { return strings.ToLower(strings.TrimSpace(s)) }

// Identities derives a message's identities: the sender's address on the
// channel first (the channel proves it, so it counts as verified), then
// the e-mail and phone the channel vouches for, verified only if it says so.
// Values that cannot be normalized are left out.
func Identities(m *message.Message, region string) []Identity {
	var out []Identity
	add := func(kind, value string, verified bool) {
		if value == "" {
			return
		}
		for i, id := range out {
			if id.Kind == kind && id.Value == value {
				out[i].Verified = out[i].Verified || verified
				return
			}
		}
		out = append(out, Identity{Kind: kind, Value: value, Verified: verified})
	}
	addr := strings.TrimSpace(m.From.Address)
	switch m.Channel {
	case message.Email:
		add(KindEmail, NormalizeEmail(addr), true)
	case message.SMS, message.Voice:
		if p, err := NormalizePhone(addr, region); err == nil {
			add(KindPhone, p, true)
		} else {
			// A short code or an alphanumeric sender: keep it as written
			// so the customer is still recognised next time.
			add(KindPhone, addr, true)
		}
	case message.App:
		add(KindApp, m.To.Address+"/"+addr, true)
	default:
		add(string(m.Channel), addr, true)
	}
	if m.From.Email != "" {
		add(KindEmail, NormalizeEmail(m.From.Email), m.From.EmailVerified)
	}
	if m.From.Phone != "" {
		if p, err := NormalizePhone(m.From.Phone, region); err == nil {
			add(KindPhone, p, m.From.PhoneVerified)
		}
	}
	return out
}

// SearchValues turns what an agent typed into the identity values to look
// for: the text as is, folded as an e-mail, and as a phone number.
func SearchValues(v, region string) []string {
	v = strings.TrimSpace(v)
	vals := []string{v}
	if e := NormalizeEmail(v); e != v {
		vals = append(vals, e)
	}
	if p, err := NormalizePhone(v, region); err == nil && p != v {
		vals = append(vals, p)
	}
	return vals
}
