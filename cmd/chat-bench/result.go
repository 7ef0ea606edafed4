package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/bits"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// clock is the one monotonic clock of the process: senders put clock.now() in the payload,
// receivers subtract it from their own clock.now(). Both ends live in this process.
type clock struct{ base time.Time }

func newClock() clock { return clock{base: time.Now()} }

func (c clock) now() int64 { return int64(time.Since(c.base)) }

// histogram records latencies in microseconds, lock-free, with under 1% relative error:
// 128 linear buckets, then 128 buckets per power of two.
type histogram struct {
	counts [64 * subBuckets]atomic.Int64
	max    atomic.Int64
	n      atomic.Int64
}

const subBits = 7
const subBuckets = 1 << subBits

func bucketOf(us int64) int {
	if us < subBuckets {
		return int(max(us, 0))
	}
	shift := bits.Len64(uint64(us)) - subBits - 1
	return subBuckets + shift*subBuckets + int(us>>shift) - subBuckets
}

// lowerBound is the smallest value of bucket i.
func lowerBound(i int) int64 {
	if i < subBuckets {
		return int64(i)
	}
	shift := (i - subBuckets) / subBuckets
	return int64(subBuckets+(i-subBuckets)%subBuckets) << shift
}

func (h *histogram) record(d time.Duration) {
	us := d.Microseconds()
	h.counts[min(bucketOf(us), len(h.counts)-1)].Add(1)
	h.n.Add(1)
	for {
		m := h.max.Load()
		if us <= m || h.max.CompareAndSwap(m, us) {
			return
		}
	}
}

// quantile returns the latency below which a fraction q of the samples fall, in milliseconds.
func (h *histogram) quantile(q float64) float64 {
	n := h.n.Load()
	if n == 0 {
		return 0
	}
	rank := int64(q * float64(n))
	var seen int64
	for i := range h.counts {
		seen += h.counts[i].Load()
		if seen > rank {
			return float64(min(lowerBound(i), h.max.Load())) / 1000
		}
	}
	return float64(h.max.Load()) / 1000
}

// stamp finds the send timestamp `bench_t` in a payload (a JSON field or inside a message's
// content) and returns it, or -1.
func stamp(payload []byte, from int) (ts int64, next int) {
	const key = "bench_t"
	s := payload[from:]
	i := bytes.Index(s, []byte(key))
	if i < 0 {
		return -1, len(payload)
	}
	j := i + len(key)
	for j < len(s) && j < i+len(key)+3 && (s[j] < '0' || s[j] > '9') {
		j++
	}
	k := j
	for k < len(s) && s[k] >= '0' && s[k] <= '9' {
		k++
	}
	v, err := strconv.ParseInt(string(s[j:k]), 10, 64)
	if err != nil {
		return -1, from + k
	}
	return v, from + k
}

// Result is one run of one scenario against one server: printed as a line for people and as
// a JSON line for scripts (scripts/bench-compare.sh builds BENCHMARKS.md from them).
type Result struct {
	Shape    string  `json:"shape,omitempty"`
	Label    string  `json:"label,omitempty"`
	Scenario string  `json:"scenario"`
	Proto    string  `json:"proto"`
	Clients  int     `json:"clients"`
	Rate     float64 `json:"rate"` // publishes (posts) per second asked; 0: flat out
	Seconds  float64 `json:"seconds"`

	Sent      int64 `json:"sent"`
	Expected  int64 `json:"expected"`
	Delivered int64 `json:"delivered"`
	Lost      int64 `json:"lost"`
	Errors    int64 `json:"errors"`

	SentPerSec      float64 `json:"sent_per_sec"`
	DeliveredPerSec float64 `json:"delivered_per_sec"`
	P50ms           float64 `json:"p50_ms"`
	P95ms           float64 `json:"p95_ms"`
	P99ms           float64 `json:"p99_ms"`
	MaxMs           float64 `json:"max_ms"`

	CPUSeconds       float64 `json:"cpu_seconds"`
	DeliveriesPerCPU float64 `json:"deliveries_per_cpu_second"`
	CPUMicrosPerDel  float64 `json:"cpu_us_per_delivery"`
	// BenchCPUSeconds is this load generator's own CPU over the same phase: it shares the
	// machine's cores with the server, and on a small machine it bounds latency as much.
	BenchCPUSeconds float64 `json:"bench_cpu_seconds"`

	RSSBefore      int64   `json:"rss_before"`
	RSSAfter       int64   `json:"rss_after"`
	BytesPerClient float64 `json:"bytes_per_client"`
	// Broadcast: one message to every held client at the end of idle; Received of them got it.
	Received int64 `json:"received"`

	// chat: REST round trip of a post (stored, then answered), and deliveries per door.
	PostP50ms     float64 `json:"post_p50_ms,omitempty"`
	PostP99ms     float64 `json:"post_p99_ms,omitempty"`
	FayeDelivered int64   `json:"faye_delivered,omitempty"`
	MQTTDelivered int64   `json:"mqtt_delivered,omitempty"`
}

// finish fills the derived fields from the counters, the histogram and the CPU used since m.
func (r *Result) finish(elapsed time.Duration, h *histogram, cpu, benchCPU float64) {
	r.Seconds = elapsed.Seconds()
	r.Lost = max(r.Expected-r.Delivered, 0)
	if r.Seconds > 0 {
		r.SentPerSec = float64(r.Sent) / r.Seconds
		r.DeliveredPerSec = float64(r.Delivered) / r.Seconds
	}
	if h != nil {
		r.P50ms, r.P95ms, r.P99ms = h.quantile(.5), h.quantile(.95), h.quantile(.99)
		r.MaxMs = float64(h.max.Load()) / 1000
	}
	r.CPUSeconds, r.BenchCPUSeconds = cpu, benchCPU
	if cpu > 0 && r.Delivered > 0 {
		r.DeliveriesPerCPU = float64(r.Delivered) / cpu
		r.CPUMicrosPerDel = cpu * 1e6 / float64(r.Delivered)
	}
}

func (r *Result) print(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s clients=%d", r.Proto, r.Scenario, r.Clients)
	if r.Label != "" {
		fmt.Fprintf(&b, " [%s]", r.Label)
	}
	if r.Rate > 0 {
		fmt.Fprintf(&b, " rate=%g/s", r.Rate)
	}
	b.WriteString(":")
	if r.RSSAfter > 0 {
		fmt.Fprintf(&b, " server RSS %.1f MiB -> %.1f MiB = %.0f bytes per client;", float64(r.RSSBefore)/(1<<20), float64(r.RSSAfter)/(1<<20), r.BytesPerClient)
	}
	if r.Scenario == "idle" && r.Proto == "faye" {
		fmt.Fprintf(&b, " broadcast received by %d/%d;", r.Received, r.Clients)
	}
	if r.Expected > 0 {
		fmt.Fprintf(&b, " sent %d (%.0f/s), delivered %d/%d (%d lost) in %.1fs = %.0f deliveries/s; latency p50 %.2f p95 %.2f p99 %.2f max %.2f ms",
			r.Sent, r.SentPerSec, r.Delivered, r.Expected, r.Lost, r.Seconds, r.DeliveredPerSec, r.P50ms, r.P95ms, r.P99ms, r.MaxMs)
	}
	if r.PostP99ms > 0 {
		fmt.Fprintf(&b, "; posts answered p50 %.2f p99 %.2f ms; delivered over Faye %d, MQTT %d", r.PostP50ms, r.PostP99ms, r.FayeDelivered, r.MQTTDelivered)
	}
	if r.CPUSeconds > 0 && r.Delivered > 0 {
		fmt.Fprintf(&b, "; server CPU %.2fs = %.0f deliveries per CPU-second; generator CPU %.2fs", r.CPUSeconds, r.DeliveriesPerCPU, r.BenchCPUSeconds)
	}
	if r.Errors > 0 {
		fmt.Fprintf(&b, "; %d errors", r.Errors)
	}
	fmt.Fprintln(w, b.String())
	line, err := json.Marshal(r)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(w, string(line))
	return err
}
