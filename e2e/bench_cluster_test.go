package e2e

import (
	"encoding/binary"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/convead/chat-server/auth"
	"github.com/convead/chat-server/config"
)

// BenchmarkCluster measures delivery through the broker on one node, and across two nodes over
// NATS (publishers on node 1, subscribers on node 2), for two shapes:
//
//   - fanout: one publisher, 50 subscribers of one topic (a notification to many screens);
//   - pairs: 50 publishers, each with its own subscriber on its own topic (conversations).
//
// It reports deliveries/s and the p50/p99 latency from publish to delivery. All nodes run in
// this process on loopback, with NATS in-process: the figures compare shapes and node counts
// on one machine, they do not predict a deployment.
//
//	go test ./e2e -run '^$' -bench Cluster -benchtime 20000x
func BenchmarkCluster(b *testing.B) {
	nats := startNATS(b)
	uri := startFerretDB(b)
	db := fmt.Sprintf("bench_%d", time.Now().UnixNano())
	node := func(name string) *env {
		return start(b, func(c *config.Config) {
			c.Mongo.URI, c.Mongo.Database = uri, db
			c.Cluster.NATSURL, c.Cluster.NodeName = nats.url(), name
			c.Limits.ConnectionsPerIP, c.Limits.MQTTConnectsPerMinutePerIP = 0, 0
		})
	}
	n1, n2 := node("node-1"), node("node-2")
	const width = 50
	for _, shape := range []string{"fanout", "pairs"} {
		for _, nodes := range []int{1, 2} {
			b.Run(fmt.Sprintf("%s/%dnode", shape, nodes), func(b *testing.B) {
				subNode := n1
				if nodes == 2 {
					subNode = n2
				}
				benchDeliveries(b, n1, subNode, shape, width)
			})
		}
	}
}

func benchDeliveries(b *testing.B, pubNode, subNode *env, shape string, width int) {
	tok := token(b, auth.Service, "bench", "bench")
	run := fmt.Sprint(time.Now().UnixNano())
	topic := func(i int) string {
		if shape == "fanout" {
			return "orgs/bench/notifications/fanout-" + run
		}
		return fmt.Sprintf("orgs/bench/notifications/pair-%s-%d", run, i)
	}
	origin := time.Now()
	var delivered atomic.Int64
	var mu sync.Mutex
	var latencies []time.Duration
	onMessage := func(_ paho.Client, m paho.Message) {
		if len(m.Payload()) < 8 {
			return
		}
		lat := time.Since(origin) - time.Duration(binary.BigEndian.Uint64(m.Payload()))
		mu.Lock()
		latencies = append(latencies, lat)
		mu.Unlock()
		delivered.Add(1)
	}
	for i := 0; i < width; i++ {
		sub := subNode.mustConnect(tok, fmt.Sprintf("sub-%s-%d", run, i))
		if st := sub.c.Subscribe(topic(i), 0, onMessage); !st.WaitTimeout(10*time.Second) || st.Error() != nil {
			b.Fatalf("subscribe: %v", st.Error())
		}
	}
	pubs := 1
	if shape == "pairs" {
		pubs = width
	}
	publishers := make([]*client, pubs)
	for i := range publishers {
		publishers[i] = pubNode.mustConnect(tok, fmt.Sprintf("pub-%s-%d", run, i))
	}
	perMessage := int64(1)
	if shape == "fanout" {
		perMessage = int64(width)
	}
	// A warm-up message per topic: across nodes, it also proves the interest reached NATS.
	for i, p := range publishers {
		p.c.Publish(topic(i), 0, false, make([]byte, 8))
	}
	waitFor(b, "warm-up deliveries", func() bool { return delivered.Load() >= int64(pubs)*perMessage })
	delivered.Store(0)
	mu.Lock()
	latencies = latencies[:0]
	mu.Unlock()

	window := 10 * int64(pubs) * perMessage
	b.ResetTimer()
	begin := time.Now()
	var wg sync.WaitGroup
	var sent atomic.Int64
	for i, p := range publishers {
		share := b.N / pubs
		if i < b.N%pubs {
			share++
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			payload := make([]byte, 200)
			for k := 0; k < share; k++ {
				binary.BigEndian.PutUint64(payload, uint64(time.Since(origin)))
				p.c.Publish(topic(i), 0, false, slices.Clone(payload))
				// Open loop with a window of 500 deliveries in flight in both shapes, so that
				// latency is the path's, not a queue's.
				for sent.Add(1)*perMessage-delivered.Load() > window {
					sent.Add(-1)
					time.Sleep(200 * time.Microsecond)
				}
			}
		}()
	}
	wg.Wait()
	want := int64(b.N) * perMessage
	deadline := time.Now().Add(30 * time.Second)
	for delivered.Load() < want && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	elapsed := time.Since(begin)
	b.StopTimer()
	got := delivered.Load()
	if got < want {
		b.Errorf("delivered %d of %d", got, want)
	}
	mu.Lock()
	slices.Sort(latencies)
	q := func(p float64) float64 {
		if len(latencies) == 0 {
			return 0
		}
		return float64(latencies[min(len(latencies)-1, int(p*float64(len(latencies))))].Microseconds()) / 1000
	}
	b.ReportMetric(float64(got)/elapsed.Seconds(), "deliveries/s")
	b.ReportMetric(q(0.50), "p50-ms")
	b.ReportMetric(q(0.99), "p99-ms")
	mu.Unlock()
	b.ReportMetric(0, "ns/op")
}
