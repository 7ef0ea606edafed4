package metrics

import (
	"maps"
	"slices"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/convead/chat-server/broker"
	"github.com/convead/chat-server/faye"
)

// Sources are where live counts come from; each is read once per scrape.
type Sources struct {
	Faye   interface{ Stats() faye.Stats }
	Broker interface{ Stats() broker.Stats }
	// Duty counts managers on duty per organisation. Organisation ids are labels; manager
	// ids never are.
	Duty interface{ CountByOrg() map[string]int }
	// Chat counts the chat service's events waiting in its outbox.
	Chat interface{ QueuedEvents() int }
}

// Watch registers the collector that reads src at every scrape.
func (m *Metrics) Watch(src Sources) error {
	if err := m.reg.Register(newLive(src)); err != nil {
		return err
	}
	return nil
}

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(prometheus.BuildFQName(Namespace, "", name), help, labels, nil)
}

// live is a pull collector: it holds no state, it asks the sources.
type live struct {
	src Sources

	fayeSessions, fayeSubs, fayeQueued, fayeQueueMax, fayeDelivered, fayeDropped, fayeOverflowed        *prometheus.Desc
	mqttClients, mqttKept, mqttSubs, mqttInflight, mqttInflightMax, mqttDelivered, mqttDropped, mqttCut *prometheus.Desc
	mqttSockets, mqttRefused                                                                            *prometheus.Desc
	publishes, onDuty, outbox                                                                           *prometheus.Desc
}

func newLive(src Sources) *live {
	return &live{
		src:             src,
		fayeSessions:    desc("faye_sessions", "Faye clients by the connection type of their last /meta/connect (none: handshaken, not connected yet).", "transport"),
		fayeSubs:        desc("faye_subscriptions", "Channel subscriptions (and patterns) of all Faye clients."),
		fayeQueued:      desc("faye_queued_messages", "Deliveries waiting in the queues of all Faye clients."),
		fayeQueueMax:    desc("faye_queue_max_messages", "Deliveries waiting in the longest queue of one Faye client (limits.queue_per_client ends it)."),
		fayeDelivered:   desc("faye_deliveries_total", "Deliveries queued for Faye clients."),
		fayeDropped:     desc("faye_dropped_total", "Deliveries dropped because a Faye client's queue was full."),
		fayeOverflowed:  desc("faye_overflow_sessions_ended_total", "Faye clients ended because their queue overflowed."),
		mqttClients:     desc("mqtt_clients", "Connected MQTT clients by listener (tcp, ws).", "listener"),
		mqttKept:        desc("mqtt_kept_sessions", "Persistent MQTT sessions whose client is not connected."),
		mqttSubs:        desc("mqtt_subscriptions", "Subscription filters of MQTT clients, kept sessions included."),
		mqttInflight:    desc("mqtt_inflight_messages", "QoS 1/2 messages to MQTT clients queued or sent and not yet acknowledged."),
		mqttInflightMax: desc("mqtt_inflight_max_messages", "Unacknowledged QoS 1/2 messages of the most behind MQTT client."),
		mqttDelivered:   desc("mqtt_deliveries_total", "PUBLISH packets written to MQTT clients (QoS resends included)."),
		mqttDropped:     desc("mqtt_dropped_total", "Messages dropped because an MQTT client's queue was full (mqtt.queue_per_client)."),
		mqttCut:         desc("mqtt_overflow_disconnects_total", "MQTT clients disconnected because their queue overflowed."),
		mqttSockets:     desc("mqtt_sockets", "Open MQTT sockets (tcp and ws), those that have not sent their CONNECT yet included."),
		mqttRefused:     desc("mqtt_refused_sockets_total", "MQTT sockets closed before their CONNECT by a per-address limit, by its limits.* key.", "limit"),
		publishes:       desc("broker_publishes_total", "Publishes routed by the broker, by source: mqtt_client, or server (REST, Faye, chat events).", "source"),
		onDuty:          desc("managers_on_duty", "Managers on duty through this node's connections, per organisation that has any.", "org"),
		outbox:          desc("outbox_queued_events", "Chat events (messages, conversation changes, notifications) stored and waiting to be published."),
	}
}

func (l *live) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{l.fayeSessions, l.fayeSubs, l.fayeQueued, l.fayeQueueMax, l.fayeDelivered, l.fayeDropped, l.fayeOverflowed,
		l.mqttClients, l.mqttKept, l.mqttSubs, l.mqttInflight, l.mqttInflightMax, l.mqttDelivered, l.mqttDropped, l.mqttCut, l.mqttSockets, l.mqttRefused, l.publishes, l.onDuty, l.outbox} {
		ch <- d
	}
}

func (l *live) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v int, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(v), labels...)
	}
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	f := l.src.Faye.Stats()
	for _, t := range slices.Sorted(maps.Keys(f.SessionsByTransport)) {
		gauge(l.fayeSessions, f.SessionsByTransport[t], t)
	}
	gauge(l.fayeSubs, f.Subscriptions)
	gauge(l.fayeQueued, f.Queued)
	gauge(l.fayeQueueMax, f.QueuedMax)
	counter(l.fayeDelivered, f.Delivered)
	counter(l.fayeDropped, f.Dropped)
	counter(l.fayeOverflowed, f.Overflowed)

	b := l.src.Broker.Stats()
	for _, ln := range slices.Sorted(maps.Keys(b.ClientsByListener)) {
		gauge(l.mqttClients, b.ClientsByListener[ln], ln)
	}
	gauge(l.mqttKept, b.KeptSessions)
	gauge(l.mqttSubs, b.Subscriptions)
	gauge(l.mqttInflight, b.Inflight)
	gauge(l.mqttInflightMax, b.InflightMax)
	counter(l.mqttDelivered, b.Delivered)
	counter(l.mqttDropped, b.Dropped)
	counter(l.mqttCut, b.Cut)
	gauge(l.mqttSockets, b.Sockets)
	for _, k := range slices.Sorted(maps.Keys(b.Refused)) {
		counter(l.mqttRefused, b.Refused[k], k)
	}
	for _, s := range slices.Sorted(maps.Keys(b.Publishes)) {
		counter(l.publishes, b.Publishes[s], s)
	}

	for org, n := range l.src.Duty.CountByOrg() {
		gauge(l.onDuty, n, org)
	}
	gauge(l.outbox, l.src.Chat.QueuedEvents())
}
