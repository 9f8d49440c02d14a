package queue_test

import (
	"testing"

	"github.com/inroute/inroute/queue"
)

func TestDecodeItemRejects(t *testing.T) {
	for _, in := range []string{`nope`, `{"v":2}`, `{"v":1}`, `{"v":1,"message":{},"urgency":"meh"}`, `{"v":1,"message":{},"urgency":"low"}`} {
		if _, err := queue.DecodeItem([]byte(in)); err == nil {
			t.Errorf("accepted %s", in)
		}
	}
}
