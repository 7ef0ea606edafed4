package main

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/convead/chat-server/auth"
)

// dialMQTTAs connects as role/sub of the organisation when -secret is set (the token is the
// password), else anonymously, and subscribes to topics.
func (o *options) dialMQTTAs(ctx context.Context, id string, role auth.Role, sub string, topics []string, onPublish func(string, []byte), errs *atomic.Int64) (*mqttConn, error) {
	user, password := "", ""
	if o.secret != "" {
		tok, err := o.token(role, sub)
		if err != nil {
			return nil, err
		}
		user, password = sub, tok
	}
	return dialMQTT(ctx, o.mqtt, id, user, password, topics, onPublish, errs)
}

// dialMQTTService connects as a service of the organisation, which may use any of its topics.
func (o *options) dialMQTTService(ctx context.Context, id string, topics []string, onPublish func(string, []byte), errs *atomic.Int64) (*mqttConn, error) {
	return o.dialMQTTAs(ctx, id, auth.Service, "bench", topics, onPublish, errs)
}

// mqttTopic is the topic of a bench channel: inside the organisation on this server.
func (o *options) mqttTopic(name string) string {
	return "orgs/" + o.org + name
}

// mqttFanout: -clients subscribers of one topic, one publisher, QoS 0, at -rate or flat out.
func mqttFanout(ctx context.Context, o *options) (*Result, error) {
	topic := o.mqttTopic(chFanout)
	var errs, delivered atomic.Int64
	h := new(histogram)
	onPublish := func(_ string, payload []byte) {
		if ts, _ := stamp(payload, 0); ts >= 0 {
			o.latency(h, ts)
		}
		delivered.Add(1)
	}
	subs, err := dialAll(ctx, o.clients, o.conc, func(ctx context.Context, i int) (*mqttConn, error) {
		return o.dialMQTTService(ctx, fmt.Sprint("bench-sub-", i), []string{topic}, onPublish, &errs)
	})
	defer closeMQTT(subs)
	if err != nil {
		return nil, err
	}
	pub, err := o.dialMQTTService(ctx, "bench-pub", nil, nil, &errs)
	if err != nil {
		return nil, err
	}
	defer pub.close()
	pingCtx, stopPing := context.WithCancel(ctx)
	defer stopPing()
	go keepAlive(pingCtx, append(subs, pub))
	return o.fanOut(ctx, h, &delivered, &errs, func(seq int64) error {
		return pub.publish(topic, o.payload(seq))
	})
}

// mqttIdle holds -clients connected clients, each subscribed to a topic of its own.
func mqttIdle(ctx context.Context, o *options) (*Result, error) {
	if o.pid <= 0 {
		return nil, errors.New("idle needs -pid to read the server's memory")
	}
	var errs atomic.Int64
	before, err := rssBytes(o.pid)
	if err != nil {
		return nil, err
	}
	clients, err := dialAll(ctx, o.clients, o.conc, func(ctx context.Context, i int) (*mqttConn, error) {
		return o.dialMQTTService(ctx, fmt.Sprint("bench-idle-", i), []string{o.mqttTopic(fmt.Sprint("/bench/idle/", i))}, nil, &errs)
	})
	defer closeMQTT(clients)
	if err != nil {
		return nil, err
	}
	pingCtx, stopPing := context.WithCancel(ctx)
	defer stopPing()
	go keepAlive(pingCtx, clients)
	time.Sleep(o.settle)
	after, err := rssBytes(o.pid)
	if err != nil {
		return nil, err
	}
	time.Sleep(o.hold)
	return &Result{RSSBefore: before, RSSAfter: after, BytesPerClient: float64(after-before) / float64(o.clients), Errors: errs.Load()}, nil
}
