package metrics

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/recover"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"github.com/convead/chat-server/broker"
	"github.com/convead/chat-server/faye"
	"github.com/convead/chat-server/store"
	"github.com/convead/chat-server/store/bolt"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func nets(t *testing.T, s ...string) []netip.Prefix {
	t.Helper()
	var out []netip.Prefix
	for _, x := range s {
		out = append(out, netip.MustParsePrefix(x))
	}
	return out
}

func TestAllowed(t *testing.T) {
	m := New(nets(t, "127.0.0.0/8", "10.0.0.0/8", "::1/128"), quiet)
	cases := []struct {
		remote string
		header http.Header
		want   bool
	}{
		{"127.0.0.1:5000", nil, true},
		{"10.1.2.3:5000", nil, true},
		{"[::1]:5000", nil, true},
		{"[::ffff:10.1.2.3]:5000", nil, true}, // IPv4-mapped: the IPv4 rules apply
		{"203.0.113.9:5000", nil, false},
		{"[2001:db8::1]:5000", nil, false},
		{"127.0.0.1:5000", http.Header{"X-Forwarded-For": {"203.0.113.9"}}, false},
		{"127.0.0.1:5000", http.Header{"Forwarded": {"for=203.0.113.9"}}, false},
		{"127.0.0.1:5000", http.Header{"X-Real-Ip": {"203.0.113.9"}}, false},
		{"127.0.0.1", nil, false}, // no port: not what a server sees
		{"", nil, false},
	}
	for _, c := range cases {
		if got := m.Allowed(c.remote, c.header); got != c.want {
			t.Errorf("Allowed(%q, %v) = %v, want %v", c.remote, c.header, got, c.want)
		}
	}
	if New(nil, quiet).Allowed("127.0.0.1:1", nil) {
		t.Error("an empty allow-list allowed a scrape")
	}
}

func TestHandlerRefusesAndServes(t *testing.T) {
	m := New(nets(t, "192.0.2.0/24"), quiet)
	for remote, want := range map[string]int{"192.0.2.7:1234": http.StatusOK, "198.51.100.7:1234": http.StatusForbidden} {
		req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
		req.RemoteAddr = remote
		rec := httptest.NewRecorder()
		m.Handler().ServeHTTP(rec, req)
		if rec.Code != want {
			t.Errorf("scrape from %s: %d, want %d", remote, rec.Code, want)
		}
		if want == http.StatusOK && !strings.Contains(rec.Body.String(), "chat_build_info") {
			t.Errorf("scrape body lacks chat_build_info:\n%.500s", rec.Body.String())
		}
	}
}

// histogramCounts returns the sample count of each series of a histogram, keyed by its
// label values joined with " ".
func histogramCounts(t *testing.T, m *Metrics, name string) map[string]uint64 {
	t.Helper()
	families, err := m.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]uint64{}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, s := range f.Metric {
			var labels []string
			for _, l := range s.Label {
				labels = append(labels, l.GetValue())
			}
			out[strings.Join(labels, " ")] = s.Histogram.GetSampleCount()
		}
	}
	return out
}

func TestMiddleware(t *testing.T) {
	m := New(nil, quiet)
	app := fiber.New(fiber.Config{ErrorHandler: func(c *fiber.Ctx, err error) error {
		code := fiber.StatusInternalServerError
		var fe *fiber.Error
		if errors.As(err, &fe) {
			code = fe.Code
		}
		return c.Status(code).SendString(err.Error())
	}})
	app.Use(m.Middleware)
	app.Use(recover.New())
	app.Post("/chat/conversation/:conversation_id", func(c *fiber.Ctx) error { return c.SendStatus(fiber.StatusCreated) })
	app.Get("/teapot", func(c *fiber.Ctx) error { return fiber.NewError(fiber.StatusTeapot, "short and stout") })
	app.Get("/panic", func(c *fiber.Ctx) error { panic("boom") })
	for _, r := range []struct {
		method, path string
		status       int
	}{
		{http.MethodPost, "/chat/conversation/abc", 201},
		{http.MethodPost, "/chat/conversation/def", 201},
		{http.MethodGet, "/teapot", 418},
		{http.MethodGet, "/panic", 500},
		{http.MethodGet, "/nothing/here/42", 404},
		{http.MethodDelete, "/chat/conversation/abc", 405},
	} {
		resp, err := app.Test(httptest.NewRequest(r.method, r.path, nil))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != r.status {
			t.Errorf("%s %s: status %d, want %d (the middleware must send what the error handler decides)", r.method, r.path, resp.StatusCode, r.status)
		}
	}
	got := histogramCounts(t, m, "chat_http_request_duration_seconds")
	want := map[string]uint64{
		"POST /chat/conversation/:conversation_id 2xx": 2, // one series for both ids
		"GET /teapot 4xx":      1,
		"GET /panic 5xx":       1,
		"GET unmatched 4xx":    1,
		"DELETE unmatched 4xx": 1,
	}
	for k, n := range want {
		if got[k] != n {
			t.Errorf("series %q = %d, want %d; all: %v", k, got[k], n, got)
		}
	}
	for k := range got {
		if strings.Contains(k, "abc") || strings.Contains(k, "42") {
			t.Errorf("a raw URL leaked into the labels: %q", k)
		}
	}
}

func TestStoreTimesEveryCall(t *testing.T) {
	m := New(nil, quiet)
	raw, err := bolt.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	st := m.Store(raw)
	ctx := context.Background()
	defer st.Close(ctx)
	if _, err := st.PutOrg(ctx, store.Org{ID: "shop", Name: "Shop"}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Org(ctx, "shop"); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Org(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Org(nope) = %v, want not found through the wrapper", err)
	}
	c := store.Conversation{ID: store.NewID(), OrgID: "shop", VisitorID: "v", Status: store.StatusOpen, CreatedAt: time.Now()}
	if _, err := st.CreateConversation(ctx, c); err != nil {
		t.Fatal(err)
	}
	c.ID = store.NewID()
	if _, err := st.CreateConversation(ctx, c); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("second open conversation = %v, want conflict", err)
	}
	if _, _, err := st.AppendMessage(ctx, store.Message{ID: store.NewID(), ConversationID: c.ID, OrgID: "shop", VisitorID: "v", Content: "hi", CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	_ = st.Ping(cctx)
	got := histogramCounts(t, m, "chat_store_duration_seconds")
	for k, n := range map[string]uint64{
		"put_org ok": 1, "org ok": 1, "org not_found": 1, "create_conversation ok": 1,
		"create_conversation conflict": 1, "append_message ok": 1,
	} {
		if got[k] != n {
			t.Errorf("series %q = %d, want %d; all: %v", k, got[k], n, got)
		}
	}
	if got["ping ok"]+got["ping unavailable"] != 1 {
		t.Errorf("ping not timed: %v", got)
	}
}

func TestOutcome(t *testing.T) {
	for err, want := range map[error]string{
		nil:                      "ok",
		store.ErrNotFound:        "not_found",
		store.ErrConflict:        "conflict",
		store.ErrUnavailable:     "unavailable",
		context.DeadlineExceeded: "unavailable",
		errors.New("disk full"):  "error",
	} {
		if got := outcome(err); got != want {
			t.Errorf("outcome(%v) = %s, want %s", err, got, want)
		}
	}
}

// fixed sources give the collector known values.
type fixedFaye faye.Stats

func (f fixedFaye) Stats() faye.Stats { return faye.Stats(f) }

type fixedBroker broker.Stats

func (b fixedBroker) Stats() broker.Stats { return broker.Stats(b) }

type fixedDuty map[string]int

func (d fixedDuty) CountByOrg() map[string]int { return d }

type fixedChat int

func (c fixedChat) QueuedEvents() int { return int(c) }

func watched(t *testing.T) *Metrics {
	t.Helper()
	m := New(nil, quiet)
	err := m.Watch(Sources{
		Faye: fixedFaye{SessionsByTransport: map[string]int{"websocket": 3, "long-polling": 2, faye.NotConnected: 1},
			Subscriptions: 9, Queued: 7, QueuedMax: 4, Delivered: 100, Dropped: 5, Overflowed: 1},
		Broker: fixedBroker{ClientsByListener: map[string]int{broker.ListenerTCP: 4, broker.ListenerWebsocket: 1}, KeptSessions: 2,
			Subscriptions: 11, Inflight: 6, InflightMax: 3, Publishes: map[string]uint64{broker.SourceClient: 8, broker.SourceServer: 12},
			Delivered: 30, Dropped: 2, Cut: 1, Sockets: 9, Refused: map[string]uint64{broker.RefusedConnections: 3, broker.RefusedAttempts: 0}},
		Duty: fixedDuty{"shop": 2, "other": 1},
		Chat: fixedChat(17),
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestLiveCollector(t *testing.T) {
	m := watched(t)
	want := `
# HELP chat_faye_sessions Faye clients by the connection type of their last /meta/connect (none: handshaken, not connected yet).
# TYPE chat_faye_sessions gauge
chat_faye_sessions{transport="long-polling"} 2
chat_faye_sessions{transport="none"} 1
chat_faye_sessions{transport="websocket"} 3
# HELP chat_mqtt_clients Connected MQTT clients by listener (tcp, ws).
# TYPE chat_mqtt_clients gauge
chat_mqtt_clients{listener="tcp"} 4
chat_mqtt_clients{listener="ws"} 1
# HELP chat_broker_publishes_total Publishes routed by the broker, by source: mqtt_client, or server (REST, Faye, chat events).
# TYPE chat_broker_publishes_total counter
chat_broker_publishes_total{source="mqtt_client"} 8
chat_broker_publishes_total{source="server"} 12
# HELP chat_mqtt_refused_sockets_total MQTT sockets closed before their CONNECT by a per-address limit, by its limits.* key.
# TYPE chat_mqtt_refused_sockets_total counter
chat_mqtt_refused_sockets_total{limit="connections_per_ip"} 3
chat_mqtt_refused_sockets_total{limit="mqtt_connects_per_minute_per_ip"} 0
# HELP chat_mqtt_sockets Open MQTT sockets (tcp and ws), those that have not sent their CONNECT yet included.
# TYPE chat_mqtt_sockets gauge
chat_mqtt_sockets 9
# HELP chat_managers_on_duty Managers on duty through this node's connections, per organisation that has any.
# TYPE chat_managers_on_duty gauge
chat_managers_on_duty{org="other"} 1
chat_managers_on_duty{org="shop"} 2
# HELP chat_faye_dropped_total Deliveries dropped because a Faye client's queue was full.
# TYPE chat_faye_dropped_total counter
chat_faye_dropped_total 5
# HELP chat_mqtt_inflight_max_messages Unacknowledged QoS 1/2 messages of the most behind MQTT client.
# TYPE chat_mqtt_inflight_max_messages gauge
chat_mqtt_inflight_max_messages 3
# HELP chat_outbox_queued_events Chat events (messages, conversation changes, notifications) stored and waiting to be published.
# TYPE chat_outbox_queued_events gauge
chat_outbox_queued_events 17
`
	err := testutil.GatherAndCompare(m.reg, strings.NewReader(want), "chat_faye_sessions", "chat_mqtt_clients",
		"chat_broker_publishes_total", "chat_mqtt_refused_sockets_total", "chat_mqtt_sockets", "chat_managers_on_duty", "chat_faye_dropped_total", "chat_mqtt_inflight_max_messages", "chat_outbox_queued_events")
	if err != nil {
		t.Fatal(err)
	}
	problems, err := testutil.GatherAndLint(m.reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
}

// TestREADMEListsEveryMetric keeps the README's metrics table in step with the code.
func TestREADMEListsEveryMetric(t *testing.T) {
	m := watched(t)
	m.http.WithLabelValues("GET", "/", "2xx").Observe(0) // vectors appear once they have a series
	m.store.WithLabelValues("ping", "ok").Observe(0)
	families, err := m.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, f := range families {
		if !strings.HasPrefix(f.GetName(), Namespace+"_") {
			continue
		}
		n++
		row := regexp.MustCompile("(?m)^\\| `" + regexp.QuoteMeta(f.GetName()) + "` \\| " + typeName(f.GetType()) + " \\|")
		if !row.Match(readme) {
			t.Errorf("README's Metrics table has no row | `%s` | %s | …", f.GetName(), typeName(f.GetType()))
		}
	}
	if n < 18 {
		t.Errorf("only %d chat_ metrics gathered", n)
	}
}

func typeName(t dto.MetricType) string { return strings.ToLower(t.String()) }

// TestGrafanaDashboard checks that the dashboard is valid JSON with a Prometheus data source
// variable, and that every chat_ metric its queries use exists.
func TestGrafanaDashboard(t *testing.T) {
	raw, err := os.ReadFile("../deploy/grafana/chat-server.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Templating struct {
			List []struct{ Name, Type, Query any }
		}
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("dashboard is not valid JSON: %v", err)
	}
	hasDS := false
	for _, v := range dash.Templating.List {
		hasDS = hasDS || (v.Type == "datasource" && v.Query == "prometheus")
	}
	if !hasDS {
		t.Error("no Prometheus data source variable")
	}
	m := watched(t)
	m.http.WithLabelValues("GET", "/", "2xx").Observe(0)
	m.store.WithLabelValues("ping", "ok").Observe(0)
	families, err := m.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	known := map[string]bool{}
	for _, f := range families {
		known[f.GetName()] = true
	}
	name := regexp.MustCompile(`\b(chat|go|process)_[a-z_]+`)
	exprs := 0
	for _, p := range dash.Panels {
		for _, target := range p.Targets {
			exprs++
			for _, n := range name.FindAllString(target.Expr, -1) {
				base := n
				for _, suffix := range []string{"_bucket", "_count", "_sum"} {
					if s, ok := strings.CutSuffix(n, suffix); ok && known[s] {
						base = s
					}
				}
				if !known[base] {
					t.Errorf("panel %q queries %s, which the server does not export", p.Title, n)
				}
			}
		}
	}
	if exprs < 10 {
		t.Errorf("only %d queries", exprs)
	}
}
