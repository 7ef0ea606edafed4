package e2e

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/convead/chat-server/auth"
	"github.com/convead/chat-server/config"
)

// BenchmarkRESTPostMessage posts chat messages through HTTP into the embedded store (each one
// fsync'd, commits grouped by bbolt's batch) from many concurrent visitors.
//
//	go test ./e2e -run '^$' -bench RESTPostMessage -benchtime 5s
func BenchmarkRESTPostMessage(b *testing.B) {
	// Load from one address and a few senders: the rate limits are raised, as load tests do.
	e := start(b, func(c *config.Config) {
		c.Limits.PostsPerMinute, c.Limits.OpensPerMinutePerIP, c.Limits.ConnectionsPerIP, c.Limits.MQTTConnectsPerMinutePerIP = 0, 0, 0, 0
	})
	mTok := token(b, auth.Manager, "shop", "m1")
	const visitors = 64
	type conv struct{ id, tok string }
	convs := make([]conv, visitors)
	for i := range convs {
		v := fmt.Sprint("v", i)
		r := want(b, e.post("/chat/service/"+v, mTok, nil), http.StatusCreated)
		convs[i] = conv{fmt.Sprint(r.obj("conversation")["id"]), token(b, auth.Visitor, "shop", v)}
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: visitors}}
	var next atomic.Int64
	b.SetParallelism(visitors / 2) // goroutines = 2 cores × 32
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		c := convs[int(next.Add(1)-1)%visitors]
		body := []byte(`{"content":"hello, is this in stock?"}`)
		for pb.Next() {
			req, _ := http.NewRequest(http.MethodPost, e.base+"/chat/conversation/"+c.id, bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "Bearer "+c.tok)
			resp, err := client.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusCreated {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "posts/s")
}
