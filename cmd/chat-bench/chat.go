package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/convead/chat-server/auth"
)

// convsPerManager bounds the conversations of one bench manager: it subscribes to each
// (limits.subscriptions_per_client is 100 by default).
const convsPerManager = 50

// chatScenario is the product path on this server: -clients conversations, each between a
// visitor (a Faye websocket client subscribed to /conversations/C) and a manager (an MQTT client
// subscribed to orgs/O/conversations/C). Both post through the REST API (stored, fsync'd,
// then published); each post is one delivery to the visitor and one to the manager.
func chatScenario(ctx context.Context, o *options) (*Result, error) {
	if o.secret == "" {
		return nil, errors.New("chat runs against this server only: -secret is needed")
	}
	p := o.clients
	managers := (p + convsPerManager - 1) / convsPerManager
	workers := o.windowOr(64)
	hc := &fasthttp.Client{MaxConnsPerHost: workers + 16, ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second}
	base := "http://" + o.http

	svc, err := o.token(auth.Service, "bench")
	if err != nil {
		return nil, err
	}
	if _, err := call(hc, "PUT", base+"/admin/orgs/"+o.org, svc, `{"name":"Bench"}`, 200); err != nil {
		return nil, fmt.Errorf("create the organisation: %w", err)
	}
	visitors, mgrs := make([]string, p), make([]string, managers)
	for j := range mgrs {
		if mgrs[j], err = o.token(auth.Manager, fmt.Sprint("m", j)); err != nil {
			return nil, err
		}
	}
	for i := range visitors {
		if visitors[i], err = o.token(auth.Visitor, fmt.Sprint("v", i)); err != nil {
			return nil, err
		}
	}
	// The manager opens each conversation, so it is its counterpart without being on duty.
	convs, err := dialAll(ctx, p, 16, func(_ context.Context, i int) (string, error) {
		body, err := call(hc, "POST", fmt.Sprintf("%s/chat/service/v%d", base, i), mgrs[i%managers], "", 201)
		if err != nil {
			return "", fmt.Errorf("open conversation of v%d: %w", i, err)
		}
		var reply struct {
			Conversation struct {
				ID string `json:"id"`
			} `json:"conversation"`
		}
		if err := json.Unmarshal(body, &reply); err != nil || reply.Conversation.ID == "" {
			return "", fmt.Errorf("open conversation of v%d: reply %q", i, body)
		}
		return reply.Conversation.ID, nil
	})
	if err != nil {
		return nil, err
	}

	var errs, failed, delivered, fayeGot, mqttGot atomic.Int64
	h, posts := new(histogram), new(histogram)
	poll, err := newPoller()
	if err != nil {
		return nil, err
	}
	defer poll.close()
	visitorsWS, err := dialAll(ctx, p, o.conc, func(ctx context.Context, i int) (*fayeClient, error) {
		ext, _ := json.Marshal(map[string]string{"token": visitors[i]})
		d := &fayeDialer{url: "ws://" + o.http + o.mount, poll: poll, ext: ext, errs: &errs}
		return d.dial(ctx, []string{"/conversations/" + convs[i]}, func(ts int64) {
			o.latency(h, ts)
			fayeGot.Add(1)
			delivered.Add(1)
		})
	})
	defer closeAll(visitorsWS)
	if err != nil {
		return nil, err
	}
	onPublish := func(_ string, payload []byte) {
		if ts, _ := stamp(payload, 0); ts >= 0 {
			o.latency(h, ts)
			mqttGot.Add(1)
			delivered.Add(1)
		}
	}
	managersMQTT, err := dialAll(ctx, managers, o.conc, func(ctx context.Context, j int) (*mqttConn, error) {
		var topics []string
		for i := j; i < p; i += managers {
			topics = append(topics, o.mqttTopic("/conversations/"+convs[i]))
		}
		return o.dialMQTTAs(ctx, fmt.Sprint("bench-m", j), auth.Manager, fmt.Sprint("m", j), topics, onPublish, &errs)
	})
	defer closeMQTT(managersMQTT)
	if err != nil {
		return nil, err
	}
	pingCtx, stopPing := context.WithCancel(ctx)
	defer stopPing()
	go keepAlive(pingCtx, managersMQTT)

	// Post i goes to conversation i mod P, from its visitor on even rounds and its manager on
	// odd ones. Workers post; a feeder hands them sequence numbers at -rate or as fast as
	// they take them.
	var ok atomic.Int64
	var firstErr sync.Once
	jobs := make(chan int64)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for seq := range jobs {
				i := int(seq % int64(p))
				tok := visitors[i]
				if (seq/int64(p))%2 == 1 {
					tok = mgrs[i%managers]
				}
				t0 := o.clock.now()
				body := `{"content":"bench_t:` + strconv.FormatInt(t0, 10) + `","client_message_id":"cm-` + strconv.FormatInt(seq, 10) + `"}`
				if _, err := call(hc, "POST", base+"/chat/conversation/"+convs[i], tok, body, 201); err != nil {
					errs.Add(1)
					failed.Add(1)
					firstErr.Do(func() { fmt.Fprintln(os.Stderr, "chat-bench: post:", err) })
					continue
				}
				o.latency(posts, t0)
				ok.Add(1)
			}
		}()
	}
	cpu0, begin := o.markCPU(), time.Now()
	// Flat out, the window also bounds the posts not yet delivered, on each side: the REST
	// reply comes before the deliveries, so a gate on replies alone lets a reader fall behind
	// until the server cuts it off (mqtt.queue_per_client, 256 by default, which a single
	// manager of every conversation reaches), and the run measures an overload.
	window := int64(workers)
	_, err = pace(ctx, o.rate, o.duration, func(seq int64) bool {
		n := seq - failed.Load()
		return n-fayeGot.Load() < window && n-mqttGot.Load() < window
	}, func(seq int64) error {
		select {
		case jobs <- seq:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	close(jobs)
	wg.Wait()
	postSeconds := time.Since(begin).Seconds()
	if err != nil {
		return nil, err
	}
	sent := ok.Load()
	drain(ctx, &delivered, 2*sent)
	r := &Result{Proto: "rest+faye+mqtt", Sent: sent, Expected: 2 * sent, Delivered: delivered.Load(), Errors: errs.Load()}
	srv, gen := o.cpuSince(cpu0)
	r.finish(time.Since(begin), h, srv, gen)
	r.SentPerSec = float64(sent) / postSeconds
	r.PostP50ms, r.PostP99ms = posts.quantile(.5), posts.quantile(.99)
	r.FayeDelivered, r.MQTTDelivered = fayeGot.Load(), mqttGot.Load()
	return r, nil
}

// call makes one REST request and checks its status.
func call(hc *fasthttp.Client, method, url, token, body string, want int) ([]byte, error) {
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.Header.SetMethod(method)
	req.SetRequestURI(url)
	req.Header.Set("Authorization", "Bearer "+token)
	if body != "" {
		req.Header.SetContentType("application/json")
		req.SetBodyString(body)
	}
	if err := hc.Do(req, resp); err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, url, err)
	}
	if resp.StatusCode() != want && !(want == 201 && resp.StatusCode() == 200) {
		return nil, fmt.Errorf("%s %s: HTTP %d %s", method, url, resp.StatusCode(), resp.Body())
	}
	return append([]byte(nil), resp.Body()...), nil
}
