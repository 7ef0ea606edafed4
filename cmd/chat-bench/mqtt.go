package main

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/convead/chat-server/auth"
)

// connectMQTT opens an MQTT 3.1.1 client; with a secret it authenticates as a service of the
// organisation (which may subscribe to any of its topics), else anonymously.
func (o *options) connectMQTT(id string, onMessage paho.MessageHandler) (paho.Client, error) {
	return o.connectMQTTAs(id, auth.Service, "bench", onMessage)
}

func (o *options) connectMQTTAs(id string, role auth.Role, sub string, onMessage paho.MessageHandler) (paho.Client, error) {
	opts := paho.NewClientOptions().AddBroker("tcp://" + o.mqtt).SetClientID(id).
		SetAutoReconnect(false).SetConnectTimeout(setupTimeout).SetOrderMatters(true).SetKeepAlive(60 * time.Second)
	if o.secret != "" {
		tok, err := o.token(role, sub)
		if err != nil {
			return nil, err
		}
		opts.SetUsername(sub).SetPassword(tok)
	}
	if onMessage != nil {
		opts.SetDefaultPublishHandler(onMessage)
	}
	cl := paho.NewClient(opts)
	if t := cl.Connect(); !t.WaitTimeout(setupTimeout) || t.Error() != nil {
		return nil, fmt.Errorf("MQTT connect %s: %v", id, t.Error())
	}
	return cl, nil
}

func subscribeMQTT(cl paho.Client, topics ...string) error {
	filters := make(map[string]byte, len(topics))
	for _, t := range topics {
		filters[t] = 0
	}
	t := cl.SubscribeMultiple(filters, nil)
	if !t.WaitTimeout(setupTimeout) {
		return errors.New("subscribe timed out")
	}
	for topic, code := range t.(*paho.SubscribeToken).Result() {
		if code >= 0x80 {
			return fmt.Errorf("subscribe %s refused", topic)
		}
	}
	return t.Error()
}

func disconnectAll(cs []paho.Client) {
	for _, c := range cs {
		if c != nil {
			c.Disconnect(0)
		}
	}
}

// mqttTopic is the topic of a bench channel: inside the organisation on this server.
func (o *options) mqttTopic(name string) string {
	return "orgs/" + o.org + name
}

// mqttFanout: -clients subscribers of one topic, one publisher, QoS 0, at -rate or flat out.
func mqttFanout(ctx context.Context, o *options) (*Result, error) {
	topic := o.mqttTopic(chFanout)
	var delivered atomic.Int64
	h := new(histogram)
	onMessage := func(_ paho.Client, m paho.Message) {
		if ts, _ := stamp(m.Payload(), 0); ts >= 0 {
			o.latency(h, ts)
		}
		delivered.Add(1)
	}
	subs, err := dialAll(ctx, o.clients, o.conc, func(_ context.Context, i int) (paho.Client, error) {
		cl, err := o.connectMQTT(fmt.Sprint("bench-sub-", i), onMessage)
		if err != nil {
			return nil, err
		}
		return cl, subscribeMQTT(cl, topic)
	})
	defer disconnectAll(subs)
	if err != nil {
		return nil, err
	}
	pub, err := o.connectMQTT("bench-pub", nil)
	if err != nil {
		return nil, err
	}
	defer pub.Disconnect(0)
	n := int64(o.clients)
	window := int64(o.windowOr(20))
	cpu0, begin := o.cpu(), time.Now()
	sent, err := pace(ctx, o.rate, o.duration, func(seq int64) bool {
		return seq*n-delivered.Load() < window*n
	}, func(seq int64) error {
		pub.Publish(topic, 0, false, o.payload(seq))
		return nil
	})
	if err != nil {
		return nil, err
	}
	drain(ctx, &delivered, sent*n)
	r := &Result{Sent: sent, Expected: sent * n, Delivered: delivered.Load()}
	r.finish(time.Since(begin), h, o.cpu()-cpu0)
	return r, nil
}

// mqttIdle holds -clients connected clients, each subscribed to a topic of its own.
func mqttIdle(ctx context.Context, o *options) (*Result, error) {
	if o.pid <= 0 {
		return nil, errors.New("idle needs -pid to read the server's memory")
	}
	before, err := rssBytes(o.pid)
	if err != nil {
		return nil, err
	}
	clients, err := dialAll(ctx, o.clients, o.conc, func(_ context.Context, i int) (paho.Client, error) {
		cl, err := o.connectMQTT(fmt.Sprint("bench-idle-", i), nil)
		if err != nil {
			return nil, err
		}
		return cl, subscribeMQTT(cl, o.mqttTopic(fmt.Sprint("/bench/idle/", i)))
	})
	defer disconnectAll(clients)
	if err != nil {
		return nil, err
	}
	time.Sleep(o.settle)
	after, err := rssBytes(o.pid)
	if err != nil {
		return nil, err
	}
	time.Sleep(o.hold)
	return &Result{RSSBefore: before, RSSAfter: after, BytesPerClient: float64(after-before) / float64(o.clients)}, nil
}
