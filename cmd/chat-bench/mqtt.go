package main

import (
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/convead/chat-server/auth"
)

const benchOrg = "bench"

// connect opens an MQTT 3.1.1 client; with a secret it authenticates as a service of the bench
// organisation (which may subscribe to any of its topics).
func (c *common) connect(id string, onMessage paho.MessageHandler) (paho.Client, error) {
	opts := paho.NewClientOptions().AddBroker("tcp://" + c.addr).SetClientID(id).
		SetAutoReconnect(false).SetConnectTimeout(10 * time.Second).SetOrderMatters(false).SetKeepAlive(60 * time.Second)
	if c.secret != "" {
		tok, err := auth.Issue([]byte(c.secret), auth.Identity{Subject: "bench", Role: auth.Service, Org: benchOrg}, 24*time.Hour, time.Now())
		if err != nil {
			return nil, err
		}
		opts.SetUsername("bench").SetPassword(tok)
	}
	if onMessage != nil {
		opts.SetDefaultPublishHandler(onMessage)
	}
	cl := paho.NewClient(opts)
	if t := cl.Connect(); !t.WaitTimeout(10*time.Second) || t.Error() != nil {
		return nil, fmt.Errorf("connect %s: %v", id, t.Error())
	}
	return cl, nil
}

func subscribe(cl paho.Client, topic string) error {
	t := cl.Subscribe(topic, 0, nil)
	if !t.WaitTimeout(10 * time.Second) {
		return errors.New("subscribe timed out")
	}
	if code := t.(*paho.SubscribeToken).Result()[topic]; code >= 0x80 {
		return fmt.Errorf("subscribe %s refused", topic)
	}
	return t.Error()
}

func mqttFanout(args []string) error {
	var c common
	fs := flag.NewFlagSet("mqtt-fanout", flag.ContinueOnError)
	c.register(fs)
	subs := fs.Int("subs", 100, "subscribers of the topic")
	msgs := fs.Int("msgs", 20000, "messages published")
	size := fs.Int("size", 200, "payload bytes")
	if err := fs.Parse(args); err != nil {
		return err
	}
	topic := "orgs/" + benchOrg + "/notifications/fanout"
	var delivered atomic.Int64
	var mu sync.Mutex
	latencies := make([]time.Duration, 0, *subs**msgs)
	start := time.Now()
	onMessage := func(_ paho.Client, m paho.Message) {
		if len(m.Payload()) < 8 {
			return
		}
		sent := time.Duration(binary.BigEndian.Uint64(m.Payload()))
		lat := time.Since(start) - sent
		mu.Lock()
		latencies = append(latencies, lat)
		mu.Unlock()
		delivered.Add(1)
	}
	clients := make([]paho.Client, 0, *subs)
	defer func() {
		for _, cl := range clients {
			cl.Disconnect(0)
		}
	}()
	for i := 0; i < *subs; i++ {
		cl, err := c.connect(fmt.Sprint("bench-sub-", i), onMessage)
		if err != nil {
			return err
		}
		clients = append(clients, cl)
		if err := subscribe(cl, topic); err != nil {
			return err
		}
	}
	pub, err := c.connect("bench-pub", nil)
	if err != nil {
		return err
	}
	defer pub.Disconnect(0)
	cpu0, _ := cpuSeconds(c.pid)
	begin := time.Now()
	payload := make([]byte, max(*size, 8))
	want := int64(*subs) * int64(*msgs)
	for i := 0; i < *msgs; i++ {
		binary.BigEndian.PutUint64(payload, uint64(time.Since(start)))
		pub.Publish(topic, 0, false, slices.Clone(payload))
		// Open loop with a window: never more than 500 messages ahead of the slowest reader.
		for int64(i+1)*int64(*subs)-delivered.Load() > int64(500**subs) {
			time.Sleep(time.Millisecond)
		}
	}
	deadline := time.Now().Add(c.timeout)
	for delivered.Load() < want && time.Now().Before(deadline) {
		last := delivered.Load()
		time.Sleep(500 * time.Millisecond)
		if delivered.Load() == last {
			break // nothing moves any more: the rest was dropped
		}
	}
	elapsed := time.Since(begin)
	cpu1, _ := cpuSeconds(c.pid)
	got := delivered.Load()
	mu.Lock()
	slices.Sort(latencies)
	q := func(p float64) time.Duration {
		if len(latencies) == 0 {
			return 0
		}
		return latencies[min(len(latencies)-1, int(p*float64(len(latencies))))]
	}
	mu.Unlock()
	fmt.Printf("mqtt-fanout subs=%d msgs=%d size=%d: delivered %d/%d (%.1f%% lost) in %s = %.0f deliveries/s; latency p50 %s p95 %s p99 %s max %s",
		*subs, *msgs, *size, got, want, 100*float64(want-got)/float64(want), elapsed.Round(time.Millisecond),
		float64(got)/elapsed.Seconds(), q(.5), q(.95), q(.99), q(1))
	if c.pid > 0 && cpu1 > cpu0 {
		fmt.Printf("; server CPU %.2fs = %.0f deliveries per CPU-second", cpu1-cpu0, float64(got)/(cpu1-cpu0))
	}
	fmt.Println()
	return nil
}

func mqttIdle(args []string) error {
	var c common
	fs := flag.NewFlagSet("mqtt-idle", flag.ContinueOnError)
	c.register(fs)
	n := fs.Int("clients", 2000, "idle clients")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if c.pid <= 0 {
		return errors.New("mqtt-idle needs -pid to read the server's memory")
	}
	before, err := rssBytes(c.pid)
	if err != nil {
		return err
	}
	clients := make([]paho.Client, 0, *n)
	defer func() {
		for _, cl := range clients {
			cl.Disconnect(0)
		}
	}()
	for i := 0; i < *n; i++ {
		cl, err := c.connect(fmt.Sprint("bench-idle-", i), nil)
		if err != nil {
			return err
		}
		clients = append(clients, cl)
		if err := subscribe(cl, fmt.Sprint("orgs/", benchOrg, "/notifications/idle-", i)); err != nil {
			return err
		}
	}
	time.Sleep(2 * time.Second)
	after, err := rssBytes(c.pid)
	if err != nil {
		return err
	}
	fmt.Printf("mqtt-idle clients=%d: server RSS %.1f MiB -> %.1f MiB = %.0f bytes per client\n",
		*n, float64(before)/(1<<20), float64(after)/(1<<20), float64(after-before)/float64(*n))
	return nil
}
