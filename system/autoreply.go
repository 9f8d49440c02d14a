package system

import (
	"fmt"
	"strings"
	"time"

	"github.com/inroute/inroute/config"
	"github.com/inroute/inroute/message"
	"github.com/inroute/inroute/store"
)

// fillTemplate fills the placeholders of an auto-reply written in lang for
// conversation c, by the routing version r in force. Config validation
// refuses any placeholder not filled here.
func fillTemplate(text, lang string, c *store.Conversation, r *config.Routing) string {
	return config.FillTemplate(text, func(name string) (string, bool) {
		switch name {
		case config.PlaceholderToken:
			return c.Token(), true
		case config.PlaceholderAnswerWithin:
			return answerWithin(r, c.Queue, c.Urgency, lang), true
		}
		return "", false
	})
}

// answerWithin is the first-response target of queue at urgency u, for
// people reading lang (en or zh; config validation allows no other).
func answerWithin(r *config.Routing, queue string, u message.Urgency, lang string) string {
	zh := lang == "zh"
	var d time.Duration
	if q, ok := r.Queues[queue]; ok {
		d = q.SLA[string(u)].FirstResponse.D()
	}
	// Sub-second targets are not written: a customer reads whole seconds.
	d = d.Round(time.Second)
	if d <= 0 {
		// No promise to quote: the template still has to read well.
		if zh {
			return "尽快"
		}
		return "as soon as we can"
	}
	s := spellDuration(d, zh)
	if r.SLA.BusinessHours {
		// "4 hours" counted in business hours can be days on the calendar;
		// say so rather than promise the calendar time.
		if zh {
			return s + "（工作时间）"
		}
		return s + " (business hours)"
	}
	return s
}

// spellDuration writes d in days, hours, minutes and seconds: "1 day 12
// hours", "1天12小时". A day is 24 hours, as in config durations ("1d").
func spellDuration(d time.Duration, zh bool) string {
	units := []struct {
		size     time.Duration
		en, zh   string
		enPlural string
	}{
		{24 * time.Hour, "day", "天", "days"},
		{time.Hour, "hour", "小时", "hours"},
		{time.Minute, "minute", "分钟", "minutes"},
		{time.Second, "second", "秒", "seconds"},
	}
	var parts []string
	for _, u := range units {
		n := d / u.size
		if n == 0 {
			continue
		}
		d -= n * u.size
		switch {
		case zh:
			parts = append(parts, fmt.Sprintf("%d%s", n, u.zh))
		case n == 1:
			parts = append(parts, "1 "+u.en)
		default:
			parts = append(parts, fmt.Sprintf("%d %s", n, u.enPlural))
		}
	}
	if zh {
		return strings.Join(parts, "")
	}
	return strings.Join(parts, " ")
}
