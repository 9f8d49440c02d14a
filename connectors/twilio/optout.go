package twilio

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/inroute/inroute/bus"
	"github.com/nats-io/nats.go/jetstream"
)

// OptOuts remembers the numbers that texted STOP (or another opt-out
// word) until they text START, in the KV bucket bus.BucketSMSOptOut, so
// every connector process refuses to message them.
type OptOuts struct {
	b  *bus.Bus
	mu sync.Mutex
	kv jetstream.KeyValue
}

// Opt-out and opt-in keywords, as Twilio's own Advanced Opt-Out knows them.
var (
	stopWords  = []string{"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "OPTOUT", "REVOKE", "退订", "TD"}
	startWords = []string{"START", "YES", "UNSTOP", "SUBSCRIBE"}
)

// Keyword says whether body is an opt-out (-1), an opt-in (+1) or neither.
func Keyword(body string) int {
	w := strings.ToUpper(strings.TrimSpace(body))
	w = strings.TrimRight(w, ".! ")
	for _, s := range stopWords {
		if w == s {
			return -1
		}
	}
	for _, s := range startWords {
		if w == s {
			return 1
		}
	}
	return 0
}

// bucket finds or creates the bucket. A failure is not remembered: the
// bus may be back on the next call.
func (o *OptOuts) bucket(ctx context.Context) (jetstream.KeyValue, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.kv != nil {
		return o.kv, nil
	}
	// Detached from the caller: a webhook whose client hung up must not
	// fail the creation for everyone waiting on it.
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	kv, err := o.b.JS.CreateOrUpdateKeyValue(cctx, jetstream.KeyValueConfig{
		Bucket: bus.BucketSMSOptOut, Description: "numbers that texted STOP, until START", History: 1,
	})
	if err != nil {
		return nil, err
	}
	o.kv = kv
	return kv, nil
}

// key is a number's bucket key: hex, because a sender such as
// "whatsapp:+1..." holds characters a key may not.
func key(number string) string { return hex.EncodeToString([]byte(number)) }

// Set records an opt-out (out true) or an opt-in for number.
func (o *OptOuts) Set(ctx context.Context, number string, out bool) error {
	kv, err := o.bucket(ctx)
	if err != nil {
		return fmt.Errorf("opt-out bucket: %w", err)
	}
	if out {
		_, err = kv.PutString(ctx, key(number), "stop")
	} else {
		err = kv.Delete(ctx, key(number))
	}
	if err != nil {
		return fmt.Errorf("opt-out of %s: %w", number, err)
	}
	return nil
}

// Out reports whether number opted out.
func (o *OptOuts) Out(ctx context.Context, number string) (bool, error) {
	kv, err := o.bucket(ctx)
	if err != nil {
		return false, fmt.Errorf("opt-out bucket: %w", err)
	}
	_, err = kv.Get(ctx, key(number))
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, jetstream.ErrKeyNotFound):
		return false, nil
	default:
		return false, fmt.Errorf("opt-out of %s: %w", number, err)
	}
}
