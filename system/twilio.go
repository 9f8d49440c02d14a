package system

import (
	"fmt"

	"github.com/inroute/inroute/blob"
	"github.com/inroute/inroute/calendar"
	"github.com/inroute/inroute/config"
	"github.com/inroute/inroute/connectors"
	"github.com/inroute/inroute/connectors/twilio"
	"go.uber.org/zap"
)

// twilioConnector builds the Twilio connector from config. MMS media go to
// the blob directory, which processes on several machines must share.
func twilioConnector(cfg *config.Config, pub *connectors.Inbound, log *zap.Logger) (*twilio.Connector, error) {
	tw := cfg.Conns.Twilio
	blobs, err := blob.Open(cfg.BlobDir(), cfg.Store.Attachments.MaxSize.Int64())
	if err != nil {
		return nil, err
	}
	cal, err := calendar.New(cfg.Routing.BusinessHours)
	if err != nil {
		return nil, fmt.Errorf("routing.business_hours: %w", err)
	}
	return twilio.New(pub, pub.Bus, twilio.Options{
		AccountSID: tw.AccountSID, AuthToken: tw.AuthToken, PublicURL: tw.PublicURL, Numbers: tw.Numbers,
		Voice: twilio.Voice{Language: tw.Voice.Language, Greeting: tw.Voice.Greeting, AfterHours: tw.Voice.AfterHours,
			MaxLength: tw.Voice.MaxLength.D()},
		MaxMediaSize: tw.MaxMediaSize.Int64(), MediaTypes: tw.MediaTypes, MessagesPerSecond: tw.MessagesPerSecond,
		APIURL: tw.APIURL, Blobs: blobs, Open: cal.Open,
	}, log), nil
}
