package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/convead/chat-server/internal/testkit"
)

const testSecret = "bench-test-secret-bench-test-secret-42"

// startServer runs a node in this process, with the per-address limits off as a load test
// needs; its pid is the test's own.
func startServer(t *testing.T) *options {
	t.Helper()
	cfg := testkit.Config(t, testSecret)
	cfg.Limits.ConnectionsPerIP, cfg.Limits.HandshakesPerMinutePerIP, cfg.Limits.MQTTConnectsPerMinutePerIP = 0, 0, 0
	cfg.Limits.PostsPerMinute, cfg.Limits.OpensPerMinutePerIP = 0, 0
	srv, _ := testkit.Start(t, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	o := &options{}
	if err := newFlags(o).Parse(nil); err != nil {
		t.Fatal(err)
	}
	o.http, o.mqtt = srv.HTTPAddr().String(), srv.MQTTAddr().String()
	o.pid, o.secret, o.clock = os.Getpid(), testSecret, newClock()
	o.duration, o.settle, o.conc = 300*time.Millisecond, 10*time.Millisecond, 8
	return o
}

// TestScenarios runs every scenario briefly against a real node: each must deliver all it
// sent, without errors.
func TestScenarios(t *testing.T) {
	o := startServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	type scenario struct {
		name    string
		proto   string
		clients int
		rate    float64
		run     func(context.Context, *options) (*Result, error)
		perSent int64 // deliveries expected per message sent; 0: an idle run
	}
	for _, s := range []scenario{
		{"faye idle", "faye", 20, 0, fayeIdle, 0},
		{"faye fanout flat out", "faye", 10, 0, fayeFanout, 10},
		{"faye fanout at a rate", "faye", 10, 50, fayeFanout, 10},
		{"faye pairs flat out", "faye", 5, 0, fayePairs, 1},
		{"faye pairs at a rate", "faye", 5, 100, fayePairs, 1},
		{"mqtt idle", "mqtt", 10, 0, mqttIdle, 0},
		{"mqtt fanout", "mqtt", 10, 0, mqttFanout, 10},
		{"chat", "faye", 4, 0, chatScenario, 2},
	} {
		t.Run(s.name, func(t *testing.T) {
			o := *o
			o.proto, o.clients, o.rate = s.proto, s.clients, s.rate
			r, err := s.run(ctx, &o)
			if err != nil {
				t.Fatal(err)
			}
			if r.Errors != 0 {
				t.Errorf("%d errors", r.Errors)
			}
			if s.perSent == 0 {
				if r.RSSAfter <= 0 || r.RSSBefore <= 0 {
					t.Errorf("memory not read: %+v", r)
				}
				if s.proto == "faye" && r.Received != int64(s.clients) {
					t.Errorf("broadcast received by %d of %d", r.Received, s.clients)
				}
				return
			}
			if r.Sent == 0 || r.Expected != r.Sent*s.perSent || r.Delivered != r.Expected || r.Lost != 0 {
				t.Errorf("sent %d, expected %d, delivered %d, lost %d", r.Sent, r.Expected, r.Delivered, r.Lost)
			}
			if r.P50ms <= 0 || r.MaxMs < r.P99ms || r.P99ms < r.P50ms {
				t.Errorf("latencies p50 %v p99 %v max %v", r.P50ms, r.P99ms, r.MaxMs)
			}
			if r.CPUSeconds <= 0 || r.DeliveriesPerCPU <= 0 {
				t.Errorf("server CPU not measured: %v s", r.CPUSeconds)
			}
			if r.Proto == "rest+faye+mqtt" && (r.FayeDelivered != r.Sent || r.MQTTDelivered != r.Sent) {
				t.Errorf("chat: %d posts, %d delivered over Faye, %d over MQTT", r.Sent, r.FayeDelivered, r.MQTTDelivered)
			}
		})
	}
}

// TestRefusedToken: clients the server refuses fail their setup with the server's reason.
func TestRefusedToken(t *testing.T) {
	o := startServer(t)
	o.secret = "another-secret-another-secret-another-1"
	_, err := fayeFanout(context.Background(), o)
	if err == nil || !strings.Contains(err.Error(), "handshake refused") {
		t.Fatalf("Faye fanout with a bad token: %v", err)
	}
	_, err = mqttFanout(context.Background(), o)
	if err == nil || !strings.Contains(err.Error(), "connect refused") {
		t.Fatalf("MQTT fanout with a bad token: %v", err)
	}
}

func TestHistogram(t *testing.T) {
	h := new(histogram)
	for i := 1; i <= 10000; i++ {
		h.record(time.Duration(i) * time.Microsecond)
	}
	for _, c := range []struct{ q, want float64 }{{.5, 5}, {.99, 9.9}, {1, 10}} {
		if got := h.quantile(c.q); got < c.want*0.99 || got > c.want*1.01 {
			t.Errorf("quantile %v = %v ms, want %v ms within 1%%", c.q, got, c.want)
		}
	}
	for i := 0; i < 40*subBuckets; i++ {
		if b := bucketOf(lowerBound(i)); b != i {
			t.Fatalf("bucketOf(lowerBound(%d)) = %d", i, b)
		}
	}
}

func TestStamp(t *testing.T) {
	for _, c := range []struct {
		in   string
		want []int64
	}{
		{`[{"channel":"/a","data":{"bench_t":123,"seq":1}}]`, []int64{123}},
		{`[{"data":{"bench_t":1}},{"data":{"bench_t":22}}]`, []int64{1, 22}},
		{`{"entity":"message","message":{"content":"bench_t:987 #1"}}`, []int64{987}},
		{`{"bench_t":"x"}`, nil},
		{`no stamp`, nil},
		{`bench_t`, nil},
	} {
		var got []int64
		for i := 0; i < len(c.in); {
			var ts int64
			ts, i = stamp([]byte(c.in), i)
			if ts >= 0 {
				got = append(got, ts)
			}
		}
		if len(got) != len(c.want) || (len(got) > 0 && got[len(got)-1] != c.want[len(c.want)-1]) {
			t.Errorf("stamp(%s) = %v, want %v", c.in, got, c.want)
		}
	}
}

func TestReport(t *testing.T) {
	path := filepath.Join(t.TempDir(), "results.jsonl")
	lines := []*Result{
		{Shape: "fanout-faye", Label: "faye", Clients: 1000, Delivered: 69000, CPUSeconds: 1},
		{Shape: "fanout-faye", Label: "ours", Clients: 1000, Delivered: 400000, CPUSeconds: 1},
		{Shape: "idle-faye", Label: "ours", Clients: 10, RSSBefore: 1, RSSAfter: 1 + 10*6*1024, Received: 10},
	}
	var buf bytes.Buffer
	buf.WriteString("a human line\n")
	for _, r := range lines {
		r.finish(time.Second, nil, r.CPUSeconds, 0)
		if r.RSSAfter > 0 {
			r.BytesPerClient = float64(r.RSSAfter-r.RSSBefore) / float64(r.Clients)
		}
		if err := r.print(&buf); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := report(&out, path); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"| Faye fan-out, 1000 subscribers, flat out: deliveries per server CPU-second | 69000 (faye) | 400000 | 5.80× better | ≥ 8× faye | **no** |",
		"| idle Faye websocket clients (10), server memory per client, KB (1,000 B) | — | 6.1 | — | ≤ 5 | **no** |",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}
}

// TestHandleFrame: frames of deliveries and acknowledgements, mixed as this server sends
// them, are counted without decoding; a refused publish, however it is spelled, is an error.
func TestHandleFrame(t *testing.T) {
	for _, tc := range []struct {
		frame               string
		delivered, ok, errs int64
	}{
		{`[{"channel":"/bench/a","data":{"bench_t":5,"seq":1}},{"id":"7","clientId":"c","channel":"/bench/b","successful":true}]`, 1, 1, 0},
		{`[{"id":"7","channel":"/bench/b","successful":true},{"id":"8","channel":"/bench/b","successful":true}]`, 0, 2, 0},
		{`[{"channel":"/bench/a","data":{"bench_t":5}},{"channel":"/bench/a","data":{"bench_t":6}}]`, 2, 0, 0},
		{`[{"id":"7","channel":"/bench/b","successful":false,"error":"403::Forbidden"}]`, 0, 0, 1},
		{`[{"id":"7","channel":"/bench/b","successful": false,"error":"403::Forbidden"},{"channel":"/bench/a","data":{"bench_t":5}}]`, 1, 0, 1},
		{`[{"id":"7","channel":"/bench/b","successful": true}]`, 0, 1, 0},
	} {
		var errs atomic.Int64
		var delivered int64
		c := &fayeClient{d: &fayeDialer{errs: &errs}, onDeliver: func(int64) { delivered++ }}
		c.handle([]byte(tc.frame))
		if delivered != tc.delivered || c.d.pubOK.Load() != tc.ok || errs.Load() != tc.errs {
			t.Errorf("%s: %d delivered, %d acknowledged, %d errors; want %d, %d, %d", tc.frame,
				delivered, c.d.pubOK.Load(), errs.Load(), tc.delivered, tc.ok, tc.errs)
		}
	}
}
