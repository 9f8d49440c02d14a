package twilio

import (
	"errors"
	"fmt"
	"github.com/twilio/twilio-go/twiml"

	"github.com/inroute/inroute/message"
	openapi "github.com/twilio/twilio-go/rest/api/v2010"
)

// callbackGreeting is what the agent hears on picking up, before the
// customer's phone rings.
const callbackGreeting = "Call-back to the customer; connecting."

// checkCallback refuses a call-back that cannot be placed.
func checkCallback(o *message.Outbound) error {
	if o.AgentPhone == "" {
		return errors.New("call-back has no agent phone to ring first (agent_phone is empty)")
	}
	return nil
}

// createCall places a call-back: Twilio rings the agent first (To is the
// agent's phone), says what the call is, then dials the customer with our
// number as caller id, so the customer sees the number they called. The
// status callback (completed) carries the reply id like a message's.
func (c *Connector) createCall(api *openapi.ApiService, o *message.Outbound, from string) (string, error) {
	doc, err := callbackTwiML(from, o.To, c.opt.Voice.Language)
	if err != nil {
		return "", err
	}
	p := &openapi.CreateCallParams{}
	p.SetFrom(from).SetTo(o.AgentPhone).SetTwiml(doc)
	if cb := c.statusCallback(o.ID); cb != "" {
		p.SetStatusCallback(cb).SetStatusCallbackEvent([]string{"completed"})
	}
	call, err := api.CreateCall(p)
	if err != nil {
		return "", fmt.Errorf("create call: %w", err)
	}
	if call == nil || call.Sid == nil {
		return unknownSID, nil
	}
	return *call.Sid, nil
}

// callbackTwiML is the call's instructions, built with twilio-go's twiml
// package: <Say> to the agent, then <Dial callerId=from> the customer.
func callbackTwiML(from, customer, language string) (string, error) {
	out, err := twiml.Voice([]twiml.Element{
		&twiml.VoiceSay{Message: callbackGreeting, Language: language},
		&twiml.VoiceDial{CallerId: from, Number: customer},
	})
	if err != nil {
		return "", fmt.Errorf("call-back twiml: %w", err)
	}
	return out, nil
}
