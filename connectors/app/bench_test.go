package app_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/inroute/inroute/bus"
	"github.com/inroute/inroute/bus/testbus"
	"github.com/inroute/inroute/connectors/app"
	"github.com/inroute/inroute/message"
)

// BenchmarkPost measures accepted in-app messages per second: HTTP over
// loopback, auth, JSON, validation, and a JetStream publish acknowledged
// before the 202. The baseline is a bare JetStream publish of a message of
// the same size from the same number of goroutines, in the same run, so the
// ratio says what the connector costs on top of the bus.
func BenchmarkPost(b *testing.B) {
	for _, sync := range []bool{true, false} {
		name := "fsync=always"
		if !sync {
			name = "fsync=interval"
		}
		b.Run(name+"/baseline-publish", func(b *testing.B) {
			srv := testbus.StartWith(b, testbus.Options{SyncAlways: sync})
			bb := srv.Connect(b)
			m := &message.Message{V: 1, ID: message.NewID(), Channel: message.App, ChannelMessageID: "x",
				ReceivedAt: time.Now(), From: message.Party{Address: "u-1"}, Text: "my top-up has not arrived"}
			data, _ := message.Encode(m)
			var n atomic.Int64
			b.SetParallelism(16)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					id := fmt.Sprint("b-", n.Add(1))
					if _, err := bb.Publish(context.Background(), bus.InboundSubject(message.App), data, id, nil); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
		})
		b.Run(name+"/post", func(b *testing.B) {
			srv := testbus.StartWith(b, testbus.Options{SyncAlways: sync})
			_, h := newServer(b, srv.Connect(b), 0)
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
			var n atomic.Int64
			b.SetParallelism(16)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					req, _ := http.NewRequest(http.MethodPost, h.URL+app.Path, bytes.NewReader(body(fmt.Sprint("p-", n.Add(1)), "my top-up has not arrived")))
					req.Header.Set("Authorization", "Bearer "+token)
					resp, err := client.Do(req)
					if err != nil {
						b.Error(err)
						return
					}
					// Read to the end so the connection is reused.
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusAccepted {
						b.Errorf("status %d", resp.StatusCode)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}
