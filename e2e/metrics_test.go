package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"

	"github.com/convead/chat-server/auth"
	"github.com/convead/chat-server/config"
)

// scrape is one parsed /metrics reply.
type scrape map[string]*dto.MetricFamily

func (e *env) scrape(headers ...string) (int, scrape) {
	e.t.Helper()
	req, err := http.NewRequest(http.MethodGet, e.srv.MetricsURL(), nil)
	if err != nil {
		e.t.Fatal(err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.StatusCode, nil
	}
	var p expfmt.TextParser
	families, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		e.t.Fatalf("parse /metrics: %v", err)
	}
	return resp.StatusCode, families
}

func (e *env) mustScrape() scrape {
	e.t.Helper()
	status, s := e.scrape()
	if status != http.StatusOK {
		e.t.Fatalf("scrape: status %d", status)
	}
	return s
}

// value sums the samples of name whose labels include want (name=value pairs); histograms
// give their sample count.
func (s scrape) value(name string, want ...string) float64 {
	f := s[name]
	if f == nil {
		return 0
	}
	total := 0.0
	for _, m := range f.Metric {
		labels := map[string]string{}
		for _, l := range m.Label {
			labels[l.GetName()] = l.GetValue()
		}
		match := true
		for i := 0; i+1 < len(want); i += 2 {
			match = match && labels[want[i]] == want[i+1]
		}
		if !match {
			continue
		}
		switch {
		case m.Counter != nil:
			total += m.Counter.GetValue()
		case m.Gauge != nil:
			total += m.Gauge.GetValue()
		case m.Histogram != nil:
			total += float64(m.Histogram.GetSampleCount())
		case m.Untyped != nil:
			total += m.Untyped.GetValue()
		}
	}
	return total
}

// TestMetricsFollowChatFlow runs the chat flow with a Faye subscriber (websocket) and an MQTT
// subscriber, and checks that the metrics moved by exactly what happened, and that no label
// names a person.
func TestMetricsFollowChatFlow(t *testing.T) {
	e := fayeEnv(t)
	const visitor, manager = "visitor-7f3a", "manager-9c2e"
	vTok, mTok := token(t, auth.Visitor, "shop", visitor), token(t, auth.Manager, "shop", manager)
	before := e.mustScrape()

	mq := e.onDuty(mTok, "app-"+manager)

	ws := e.dialFaye()
	call := func(s string) []map[string]any { return wsCall(t, ws, s) }
	cid := call(`[{"channel":"/meta/handshake","version":"1.0","supportedConnectionTypes":["websocket"],"ext":{"token":"` + vTok + `"}}]`)[0]["clientId"].(string)
	ext := `,"ext":{"token":"` + vTok + `"}` // clients send their token on every message
	call(`[{"channel":"/meta/connect","clientId":"` + cid + `"` + ext + `,"connectionType":"websocket","advice":{"timeout":0}},{"channel":"/meta/subscribe","clientId":"` + cid + `"` + ext + `,"subscription":"/service/` + visitor + `"}]`)

	live := e.mustScrape()
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"chat_faye_sessions", []string{"transport", "websocket"}, 1},
		{"chat_faye_sessions", nil, 1},
		{"chat_faye_subscriptions", nil, 1},
		{"chat_mqtt_clients", []string{"listener", "tcp"}, 1},
		{"chat_mqtt_clients", []string{"listener", "ws"}, 0},
		{"chat_mqtt_subscriptions", nil, 1},
		{"chat_managers_on_duty", []string{"org", "shop"}, 1},
	} {
		if got := live.value(c.name, c.labels...); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}

	open := want(t, e.post("/chat/service/"+visitor, vTok, nil), http.StatusCreated)
	convID := fmt.Sprint(open.obj("conversation")["id"])
	mq.next()
	nextDelivery(t, ws, "/service/"+visitor)
	sent := want(t, e.post("/chat/conversation/"+convID, vTok, map[string]any{"content": "Hello"}), http.StatusCreated)
	msgID := fmt.Sprint(sent.obj("message")["id"])
	want(t, e.call(http.MethodGet, "/no/such/path", "", nil), http.StatusNotFound)

	delta := func(after scrape, name string, labels ...string) float64 {
		return after.value(name, labels...) - before.value(name, labels...)
	}
	var after scrape
	waitFor(t, "the MQTT delivery counted (counted after the write)", func() bool {
		after = e.mustScrape()
		return delta(after, "chat_mqtt_deliveries_total") >= 1
	})
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		// The open announces the conversation, the post the message: two server publishes.
		{"chat_broker_publishes_total", []string{"source", "server"}, 2},
		{"chat_broker_publishes_total", []string{"source", "mqtt_client"}, 0},
		{"chat_faye_deliveries_total", nil, 1},
		{"chat_mqtt_deliveries_total", nil, 1},
		{"chat_faye_dropped_total", nil, 0},
		{"chat_mqtt_dropped_total", nil, 0},
		{"chat_http_request_duration_seconds", []string{"method", "POST", "route", "/chat/service/:visitor_id", "status", "2xx"}, 1},
		{"chat_http_request_duration_seconds", []string{"method", "POST", "route", "/chat/conversation/:conversation_id", "status", "2xx"}, 1},
		{"chat_http_request_duration_seconds", []string{"method", "GET", "route", "unmatched", "status", "4xx"}, 1},
		{"chat_store_duration_seconds", []string{"op", "create_conversation", "outcome", "ok"}, 1},
		{"chat_store_duration_seconds", []string{"op", "append_message", "outcome", "ok"}, 1},
	} {
		if got := delta(after, c.name, c.labels...); got != c.want {
			t.Errorf("%s%v moved by %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	for _, name := range []string{"go_goroutines", "process_resident_memory_bytes", "chat_build_info"} {
		if after[name] == nil {
			t.Errorf("%s missing", name)
		}
	}
	for name, f := range after {
		for _, m := range f.Metric {
			for _, l := range m.Label {
				for _, id := range []string{visitor, manager, convID, msgID, cid} {
					if strings.Contains(l.GetValue(), id) {
						t.Errorf("%s label %s=%q carries an id", name, l.GetName(), l.GetValue())
					}
				}
			}
		}
	}

	// Requests through a proxy are refused even from an allowed address.
	if status, _ := e.scrape("X-Forwarded-For", "203.0.113.9"); status != http.StatusForbidden {
		t.Errorf("scrape through a proxy: status %d, want 403", status)
	}
	ws.Close()
	mq.close()
	waitFor(t, "the gauges back to zero after the clients left", func() bool {
		s := e.mustScrape()
		return s.value("chat_faye_sessions", "transport", "websocket") == 0 && s.value("chat_mqtt_clients") == 0 &&
			s.value("chat_managers_on_duty") == 0
	})
}

// nextDelivery reads websocket frames, skipping /meta replies, until a delivery on name.
func nextDelivery(t *testing.T, ws *websocket.Conn, name string) {
	t.Helper()
	_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	defer ws.SetReadDeadline(time.Time{})
	for {
		_, data, err := ws.ReadMessage()
		if err != nil {
			t.Fatalf("waiting for a delivery on %s: %v", name, err)
		}
		var f []map[string]any
		_ = json.Unmarshal(data, &f)
		for _, m := range f {
			if m["channel"] == name {
				return
			}
		}
	}
}

// TestMetricsListener serves the metrics on their own listener: the HTTP port then has none,
// and addresses outside metrics.allowed_ips are refused.
func TestMetricsListener(t *testing.T) {
	e := start(t, func(c *config.Config) { c.Metrics.Addr = "127.0.0.1:0" })
	if strings.HasPrefix(e.srv.MetricsURL(), e.base) {
		t.Fatalf("metrics at %s, want their own listener", e.srv.MetricsURL())
	}
	if s := e.mustScrape(); s["chat_faye_sessions"] == nil {
		t.Fatal("chat_faye_sessions missing")
	}
	want(t, e.call(http.MethodGet, "/metrics", "", nil), http.StatusNotFound)

	closed := start(t, func(c *config.Config) { c.Metrics.AllowedIPs = []string{"192.0.2.0/24"} })
	if status, _ := closed.scrape(); status != http.StatusForbidden {
		t.Fatalf("scrape from outside metrics.allowed_ips: status %d, want 403", status)
	}
	off := start(t, func(c *config.Config) { c.Metrics.Enabled = false })
	if off.srv.MetricsURL() != "" {
		t.Fatalf("metrics off, but served at %q", off.srv.MetricsURL())
	}
	want(t, off.call(http.MethodGet, "/metrics", "", nil), http.StatusNotFound)
}
