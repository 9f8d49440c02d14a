package twilio

// Inbound webhooks: every request is checked against X-Twilio-Signature,
// and answered 2xx only once what it carries is durable on the bus.
//
// Retries. Twilio retries a webhook as its connection overrides say:
// a fragment appended to the webhook URL configured in the console, e.g.
//
//	https://support.example.com/v1/channels/twilio/sms#rc=3&rp=all&ct=2000&rt=15000&tt=20000
//
// rc is the retry count (at most 5), rp the retry policy (ct: connect
// failures, rt: read timeouts, 4xx, 5xx, all), ct and rt the connect and
// read timeouts in ms, tt the total time for all attempts, e the egress
// edge and sni whether to send SNI. A fragment is never part of an HTTP
// request, so the request target has none and validSignature checks the
// URL without it (the URL Twilio actually requests; not yet checked
// against a live account using overrides). Without an override that retries on 5xx (rp=5xx or rp=all),
// a 503 from us (bus down, media not fetched) is not retried for a
// message: configure e.g. #rc=5&rp=all on the SMS, recording,
// transcription and status URLs. Retries are harmless: MessageSid, CallSid
// and RecordingSid are the dedupe keys.

import (
	"encoding/json"
	"errors"
	"fmt"
	"github.com/twilio/twilio-go/twiml"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/inroute/inroute/api"
	"github.com/inroute/inroute/bus"
	"github.com/inroute/inroute/message"
	"github.com/twilio/twilio-go/client"
	"go.uber.org/zap"
)

// maxWebhookBody caps a webhook's form body. Twilio's largest (an SMS with
// 10 media URLs and a 1600-character body) is a few KiB.
const maxWebhookBody = 64 << 10

// emptyTwiML is the answer to a message webhook: nothing to send back.
const emptyTwiML = `<?xml version="1.0" encoding="UTF-8"?><Response></Response>`

// Default words callers hear when config says nothing.
const (
	defaultGreeting = "Thank you for calling. Please leave a message after the beep, and we will call you back."
	defaultGoodbye  = "Thank you. Goodbye."
	defaultLanguage = "en-US"
)

// Query parameters the connector puts on the <Record> action and
// transcribeCallback URLs so that the follow-ups carry the caller even if
// Twilio's request does not. The signature covers the query.
const (
	paramFrom = "from"
	paramTo   = "to"
)

// registerWebhooks adds the webhook endpoints.
func (c *Connector) registerWebhooks(mux *http.ServeMux) {
	mux.HandleFunc("POST "+PathSMS, c.verified(c.handleSMS))
	mux.HandleFunc("POST "+PathVoice, c.verified(c.handleVoice))
	mux.HandleFunc("POST "+PathRecording, c.verified(c.handleRecording))
	mux.HandleFunc("POST "+PathTranscription, c.verified(c.handleTranscription))
	mux.HandleFunc("POST "+PathStatus, c.verified(c.handleStatus))
}

// verified reads the form (bounded) and checks its signature before h sees
// it: an unsigned or wrongly signed request is refused with 403 and never
// reaches the bus.
func (c *Connector) verified(h func(w http.ResponseWriter, r *http.Request)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, maxWebhookBody)
		if err := r.ParseForm(); err != nil {
			var tooBig *http.MaxBytesError
			if errors.As(err, &tooBig) {
				api.WriteError(w, http.StatusRequestEntityTooLarge, api.CodeBodyTooLarge,
					fmt.Sprintf("body is larger than %d bytes", maxWebhookBody))
				return
			}
			api.WriteError(w, http.StatusBadRequest, api.CodeInvalidRequest, "form body could not be parsed")
			return
		}
		if !c.validSignature(r) {
			c.log.Warn("twilio webhook refused: bad or missing signature",
				zap.String("path", r.URL.Path), zap.String("remote", r.RemoteAddr))
			api.WriteError(w, http.StatusForbidden, api.CodeForbidden, "missing or wrong X-Twilio-Signature")
			return
		}
		h(w, r)
	}
}

// validSignature checks X-Twilio-Signature over the public URL (scheme,
// host and port as Twilio called them, not as a proxy forwarded them) with
// the path and raw query received, and every POSTed parameter. The
// validator also tries the URL with the default port added or removed:
// Twilio signs https URLs sometimes with :443 and sometimes without.
func (c *Connector) validSignature(r *http.Request) bool {
	sig := r.Header.Get("X-Twilio-Signature")
	if sig == "" || c.opt.AuthToken == "" {
		return false
	}
	params := make(map[string]string, len(r.PostForm))
	for k, v := range r.PostForm {
		if len(v) != 1 {
			// Twilio never repeats a parameter; the validator would sign
			// only the first value, leaving the others unchecked.
			return false
		}
		params[k] = v[0]
	}
	v := client.NewRequestValidator(c.opt.AuthToken)
	return v.Validate(c.publicURL(r), params, sig)
}

// publicURL is the URL Twilio called for r: the raw request target as it
// arrived (Twilio signs the bytes it sent; re-encoding a parsed URL could
// change them), after the configured scheme://host[:port]. PublicURL may
// also carry a path prefix that a proxy strips before forwarding.
func (c *Connector) publicURL(r *http.Request) string {
	target := r.RequestURI
	if !strings.HasPrefix(target, "/") {
		target = r.URL.RequestURI()
	}
	return strings.TrimRight(c.opt.PublicURL, "/") + target
}

// callbackURL is the public URL of path with query q.
func (c *Connector) callbackURL(path string, q url.Values) string {
	u := strings.TrimRight(c.opt.PublicURL, "/") + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	return u
}

// handleSMS takes an inbound SMS or MMS to inbound.sms.
func (c *Connector) handleSMS(w http.ResponseWriter, r *http.Request) {
	f := r.PostForm
	sid := f.Get("MessageSid")
	if sid == "" {
		sid = f.Get("SmsSid")
	}
	from := f.Get("From")
	if sid == "" || from == "" {
		api.WriteError(w, http.StatusBadRequest, api.CodeInvalidRequest, "MessageSid and From are required")
		return
	}
	log := c.log.With(zap.String("message_sid", sid))
	m := &message.Message{
		V: message.Version, ID: message.NewID(), Channel: message.SMS, ChannelMessageID: sid,
		ReceivedAt: c.opt.Now().UTC(),
		From:       message.Party{Address: from},
		To:         message.Party{Address: f.Get("To")},
		Text:       f.Get("Body"),
		Extra:      map[string]string{},
	}
	if strings.HasPrefix(from, "+") {
		// E.164: the same phone as the customer's calls and app profile.
		m.From.Phone = from
	}
	for k, p := range map[string]string{"account_sid": "AccountSid", "messaging_service_sid": "MessagingServiceSid",
		"from_country": "FromCountry", "from_city": "FromCity"} {
		if v := f.Get(p); v != "" {
			m.Extra[k] = v
		}
	}
	atts, notes, err := c.fetchMedia(r.Context(), f)
	if err != nil {
		// Twilio retries (with overrides) and the MessageSid dedupes.
		log.Warn("mms media not fetched; asking Twilio to retry", zap.Error(err))
		c.unavailable(w, "media could not be fetched from Twilio; retry later")
		return
	}
	m.Attachments = atts
	for k, v := range notes {
		m.Extra[k] = v
	}
	if m.Text == "" && len(m.Attachments) == 0 {
		m.Extra["empty"] = "true"
	}
	// The opt-out is recorded before the message is acknowledged, so no
	// reply can slip out between Twilio's STOP and our knowing of it; the
	// message is still published, agents see who left and why.
	if kw := Keyword(m.Text); kw != 0 {
		if err := c.optOuts.Set(r.Context(), from, kw < 0); err != nil {
			log.Warn("opt-out not recorded; asking Twilio to retry", zap.Error(err))
			c.unavailable(w, "opt-out could not be recorded; retry later")
			return
		}
		m.Extra["opt_out"] = "start"
		if kw < 0 {
			m.Extra["opt_out"] = "stop"
		}
		log.Info("sms opt-out keyword recorded", zap.Bool("out", kw < 0))
	}
	id, dup, ok := c.publish(w, r, m, log)
	if !ok {
		return
	}
	log.Info("sms accepted", zap.String("message_id", id), zap.Bool("duplicate", dup), zap.Int("attachments", len(m.Attachments)))
	writeTwiML(w, emptyTwiML)
}

// publish hands m to the bus and answers the failure itself (ok false).
func (c *Connector) publish(w http.ResponseWriter, r *http.Request, m *message.Message, log *zap.Logger) (string, bool, bool) {
	id, dup, err := c.pub.Publish(r.Context(), m)
	switch {
	case err == nil:
		return id, dup, true
	case errors.Is(err, bus.ErrUnavailable):
		log.Warn("twilio webhook not accepted: bus unavailable", zap.Error(err))
		c.unavailable(w, "the message bus is unavailable; retry later")
	case errors.Is(err, message.ErrInvalid), errors.Is(err, bus.ErrTooLarge):
		// A retry would fail the same way: 4xx stops Twilio retrying.
		log.Error("twilio webhook not accepted: invalid message", zap.Error(err))
		api.WriteError(w, http.StatusUnprocessableEntity, api.CodeInvalidMessage, err.Error())
	default:
		log.Error("twilio webhook not accepted", zap.Error(err))
		c.unavailable(w, "could not accept the message; retry later")
	}
	return "", false, false
}

// unavailable answers 503 with Retry-After: nothing was acknowledged.
func (c *Connector) unavailable(w http.ResponseWriter, msg string) {
	w.Header().Set("Retry-After", strconv.Itoa(max(1, int(c.opt.RetryAfter.Seconds()))))
	api.WriteError(w, http.StatusServiceUnavailable, api.CodeUnavailable, msg)
}

func writeTwiML(w http.ResponseWriter, doc string) {
	w.Header().Set("Content-Type", "text/xml; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write([]byte(doc))
}

// caller is the From of a call; Twilio sends "anonymous" or nothing for a
// withheld number, and a message needs a sender.
func caller(from string) string {
	if strings.TrimSpace(from) == "" {
		return "anonymous"
	}
	return from
}

// voiceMessage is the skeleton of the call's messages: one conversation per
// caller, and Thread.ChatID the CallSid joining the call, its recording and
// its transcription.
func (c *Connector) voiceMessage(channelID, callSid, from, to, text string) *message.Message {
	from = caller(from)
	p := message.Party{Address: from}
	if strings.HasPrefix(from, "+") {
		p.Phone = from
	}
	m := &message.Message{
		V: message.Version, ID: message.NewID(), Channel: message.Voice, ChannelMessageID: channelID,
		ReceivedAt: c.opt.Now().UTC(), From: p, To: message.Party{Address: to}, Text: text,
		Thread: message.Thread{ChatID: callSid}, Extra: map[string]string{},
	}
	if callSid != "" {
		m.Extra["call_sid"] = callSid
	}
	return m
}

// handleVoice answers an inbound call: the call is published at once (so a
// caller who hangs up before the beep still leaves a call-back request),
// then the TwiML greets and records a voicemail.
//
// When the bus is down the answer is 503 and Twilio plays its own
// application-error message to the caller; the call is then lost to us
// (Twilio does not call a voice URL again unless a fallback URL or #rc
// override says so), which is preferable to promising a call-back that
// was never recorded.
func (c *Connector) handleVoice(w http.ResponseWriter, r *http.Request) {
	f := r.PostForm
	callSid := f.Get("CallSid")
	if callSid == "" {
		api.WriteError(w, http.StatusBadRequest, api.CodeInvalidRequest, "CallSid is required")
		return
	}
	from, to := caller(f.Get("From")), f.Get("To")
	now := c.opt.Now()
	afterHours := c.opt.Open != nil && !c.opt.Open(now)
	m := c.voiceMessage(callSid, callSid, from, to, "Phone call from "+from)
	if v := f.Get("CallStatus"); v != "" {
		m.Extra["call_status"] = v
	}
	if afterHours {
		m.Extra["after_hours"] = "true"
	}
	if v := f.Get("AccountSid"); v != "" {
		m.Extra["account_sid"] = v
	}
	log := c.log.With(zap.String("call_sid", callSid))
	id, dup, ok := c.publish(w, r, m, log)
	if !ok {
		return
	}
	doc, err := c.voicemailTwiML(from, to, afterHours)
	if err != nil {
		// The call is on the bus already; the caller hears Twilio's error.
		log.Error("voicemail twiml", zap.Error(err))
		api.WriteError(w, http.StatusInternalServerError, api.CodeInternal, "could not build TwiML")
		return
	}
	log.Info("call accepted", zap.String("message_id", id), zap.Bool("duplicate", dup), zap.Bool("after_hours", afterHours))
	writeTwiML(w, doc)
}

func renderTwiML(verbs ...twiml.Element) (string, error) {
	out, err := twiml.Voice(verbs)
	if err != nil {
		return "", fmt.Errorf("twiml: %w", err)
	}
	return out, nil
}

func (c *Connector) say(text string) twiml.Element {
	lang := c.opt.Voice.Language
	if lang == "" {
		lang = defaultLanguage
	}
	return &twiml.VoiceSay{Message: text, Language: lang}
}

// voicemailTwiML greets, records with transcription, then says goodbye.
// The <Record> action and transcribeCallback carry the caller in their
// query, so the follow-ups join the caller's conversation whatever
// parameters Twilio sends with them. If nothing is recorded Twilio goes
// on to the goodbye without calling the action.
func (c *Connector) voicemailTwiML(from, to string, afterHours bool) (string, error) {
	greeting := c.opt.Voice.Greeting
	if afterHours && c.opt.Voice.AfterHours != "" {
		greeting = c.opt.Voice.AfterHours
	}
	if greeting == "" {
		greeting = defaultGreeting
	}
	q := url.Values{paramFrom: {from}, paramTo: {to}}
	maxLen := max(1, int(c.opt.Voice.MaxLength/time.Second))
	// RecordingStatusCallback repeats the action's news: Twilio calls it
	// once the recording is stored even when the action request failed
	// (Twilio does not retry a voice action without an override); the
	// RecordingSid dedupes the two.
	return renderTwiML(
		c.say(greeting),
		&twiml.VoiceRecord{Action: c.callbackURL(PathRecording, q), Method: http.MethodPost, MaxLength: strconv.Itoa(maxLen),
			PlayBeep: "true", Transcribe: "true", TranscribeCallback: c.callbackURL(PathTranscription, q),
			RecordingStatusCallback: c.callbackURL(PathRecording, q)},
		c.say(defaultGoodbye),
		&twiml.VoiceHangup{},
	)
}

// followUpParties is the caller and callee of a recording or transcription
// callback: Twilio's parameters, else what voicemailTwiML put in the query.
func followUpParties(r *http.Request) (string, string) {
	from, to := r.PostForm.Get("From"), r.PostForm.Get("To")
	q := r.URL.Query()
	if from == "" {
		from = q.Get(paramFrom)
	}
	if to == "" {
		to = q.Get(paramTo)
	}
	return caller(from), to
}

// recordingSid is the RecordingSid, or the last path element of the
// recording URL (.../Recordings/RE...) when a request lacks it.
func recordingSid(f url.Values) string {
	if s := f.Get("RecordingSid"); s != "" {
		return s
	}
	if u := f.Get("RecordingUrl"); u != "" {
		if i := strings.LastIndexByte(u, '/'); i >= 0 && i < len(u)-1 {
			return strings.TrimSuffix(u[i+1:], ".wav")
		}
	}
	return ""
}

// handleRecording is the <Record> action and recording status callback:
// the voicemail joins the call's conversation. The answer says goodbye
// (ignored if the caller hung up, and for the status callback).
func (c *Connector) handleRecording(w http.ResponseWriter, r *http.Request) {
	f := r.PostForm
	if st := f.Get("RecordingStatus"); st != "" && st != "completed" {
		// absent (nothing said) or failed: no recording to point to; the
		// call's own message already asks for a call-back.
		c.log.Info("recording not completed", zap.String("call_sid", f.Get("CallSid")), zap.String("status", st))
		writeTwiML(w, emptyTwiML)
		return
	}
	recSid, callSid, recURL := recordingSid(f), f.Get("CallSid"), f.Get("RecordingUrl")
	if recSid == "" || recURL == "" {
		api.WriteError(w, http.StatusBadRequest, api.CodeInvalidRequest, "RecordingUrl (and RecordingSid) are required")
		return
	}
	from, to := followUpParties(r)
	dur := f.Get("RecordingDuration")
	text := "Voicemail: " + recURL
	if dur != "" {
		text = "Voicemail (" + dur + "s): " + recURL
	}
	m := c.voiceMessage(recSid, callSid, from, to, text)
	m.Extra["recording_url"] = recURL
	m.Extra["recording_sid"] = recSid
	if dur != "" {
		m.Extra["recording_duration"] = dur
	}
	if v := f.Get("CallStatus"); v != "" {
		m.Extra["call_status"] = v
	}
	log := c.log.With(zap.String("call_sid", callSid), zap.String("recording_sid", recSid))
	id, dup, ok := c.publish(w, r, m, log)
	if !ok {
		return
	}
	log.Info("voicemail accepted", zap.String("message_id", id), zap.Bool("duplicate", dup))
	doc, err := renderTwiML(c.say(defaultGoodbye), &twiml.VoiceHangup{})
	if err != nil {
		doc = emptyTwiML
	}
	writeTwiML(w, doc)
}

// handleTranscription is the transcribeCallback: the text (or the failure
// to produce one, recorded with its status) joins the conversation.
func (c *Connector) handleTranscription(w http.ResponseWriter, r *http.Request) {
	f := r.PostForm
	recSid, callSid := recordingSid(f), f.Get("CallSid")
	key := recSid
	if key == "" {
		key = f.Get("TranscriptionSid")
	}
	if key == "" {
		api.WriteError(w, http.StatusBadRequest, api.CodeInvalidRequest, "RecordingSid or TranscriptionSid is required")
		return
	}
	from, to := followUpParties(r)
	status := f.Get("TranscriptionStatus")
	text := strings.TrimSpace(f.Get("TranscriptionText"))
	if text == "" {
		text = "(voicemail transcription " + cmpOr(status, "unavailable") + ")"
	} else {
		text = "Voicemail transcription: " + text
	}
	m := c.voiceMessage("transcription:"+key, callSid, from, to, text)
	m.Extra["transcription_status"] = cmpOr(status, "unknown")
	for k, p := range map[string]string{"recording_sid": "RecordingSid", "recording_url": "RecordingUrl", "transcription_sid": "TranscriptionSid"} {
		if v := f.Get(p); v != "" {
			m.Extra[k] = v
		}
	}
	log := c.log.With(zap.String("call_sid", callSid), zap.String("recording_sid", recSid))
	id, dup, ok := c.publish(w, r, m, log)
	if !ok {
		return
	}
	log.Info("transcription accepted", zap.String("message_id", id), zap.Bool("duplicate", dup), zap.String("status", status))
	writeTwiML(w, emptyTwiML)
}

func cmpOr(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// errorMeanings are the usual Twilio delivery error codes, for a status
// callback that carries a code without ErrorMessage.
var errorMeanings = map[string]string{
	"21610": "recipient unsubscribed (texted STOP)",
	"21211": "invalid 'To' phone number",
	"21614": "'To' number is not a valid mobile number",
	"30001": "queue overflow",
	"30002": "account suspended",
	"30003": "unreachable destination handset",
	"30004": "message blocked",
	"30005": "unknown destination handset",
	"30006": "landline or unreachable carrier",
	"30007": "message filtered by the carrier",
	"30008": "unknown error",
	"30034": "message from an unregistered number (A2P 10DLC)",
}

// deliveryStatus maps a Twilio message or call status to a report status;
// "" means an intermediate status nobody needs a report for.
func deliveryStatus(status string, call bool) string {
	if call {
		switch status {
		case "completed":
			return message.DeliveryDelivered
		case "busy", "no-answer", "failed", "canceled":
			return message.DeliveryFailed
		}
		return ""
	}
	switch status {
	case "sent":
		return message.DeliverySent
	case "delivered", "read":
		return message.DeliveryDelivered
	case "undelivered", "failed", "canceled":
		return message.DeliveryFailed
	}
	return ""
}

// handleStatus turns a status callback on one of our replies or call-backs
// into a delivery report on events.delivery.<channel>.
func (c *Connector) handleStatus(w http.ResponseWriter, r *http.Request) {
	f := r.PostForm
	reply := r.URL.Query().Get(ParamReply)
	ch, sid, raw := message.SMS, f.Get("MessageSid"), f.Get("MessageStatus")
	if sid == "" {
		sid = f.Get("SmsSid")
	}
	if raw == "" {
		raw = f.Get("SmsStatus")
	}
	call := sid == "" || raw == ""
	if call {
		ch, sid, raw = message.Voice, f.Get("CallSid"), f.Get("CallStatus")
	}
	status := deliveryStatus(raw, call)
	log := c.log.With(zap.String("sid", sid), zap.String("reply", reply), zap.String("twilio_status", raw))
	if reply == "" || sid == "" || status == "" {
		// Nothing to report: answer 200 so Twilio does not retry it.
		log.Debug("status callback ignored")
		writeTwiML(w, emptyTwiML)
		return
	}
	d := message.Delivery{V: message.OutboundVersion, MessageID: reply, Channel: ch, Status: status,
		ChannelMessageID: sid, At: c.opt.Now().UTC()}
	if status == message.DeliveryFailed {
		d.Detail = failureDetail(raw, f.Get("ErrorCode"), f.Get("ErrorMessage"))
	}
	data, err := json.Marshal(d)
	if err != nil {
		log.Error("encode delivery report", zap.Error(err))
		api.WriteError(w, http.StatusInternalServerError, api.CodeInternal, "could not encode the report")
		return
	}
	if _, err := c.b.Publish(r.Context(), bus.DeliverySubject(ch), data, "twilio-status:"+sid+":"+raw, nil); err != nil {
		log.Warn("delivery report not published; asking Twilio to retry", zap.Error(err))
		c.unavailable(w, "the message bus is unavailable; retry later")
		return
	}
	log.Info("delivery report published", zap.String("status", status))
	writeTwiML(w, emptyTwiML)
}

// failureDetail explains a failed delivery in Twilio's words.
func failureDetail(status, code, msg string) string {
	if code == "" {
		return "Twilio status " + status
	}
	if msg == "" {
		msg = cmpOr(errorMeanings[code], "see https://www.twilio.com/docs/api/errors/"+url.PathEscape(code))
	}
	return "Twilio error " + code + ": " + msg
}
