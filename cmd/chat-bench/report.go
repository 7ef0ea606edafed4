package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
)

// row is one line of the comparison table: a metric of the runs of one shape (-shape), this
// server's ("ours") against the reference's.
type row struct {
	shape  string
	title  string // %d is the number of clients
	ref    string // label of the reference server's run; empty: ours only
	value  func(r *Result) float64
	format string
	higher bool // a higher value is better
	target float64
	// ratio, when set, is the target instead: ours at least that many times better than the
	// reference (both measured in the same run).
	ratio float64
}

var rows = []row{
	{"idle-faye", "idle Faye websocket clients (%d), server memory per client, KB (1,000 B)", "faye", kb, "%.1f", false, 5, 0},
	{"idle2-faye", "idle Faye websocket clients (%d), server memory per client, KB (1,000 B)", "faye", kb, "%.1f", false, 5, 0},
	{"fanout-faye", "Faye fan-out, %d subscribers, flat out: deliveries per server CPU-second", "faye", perCPU, "%.0f", true, 0, 8},
	{"fanout-faye-rate", "Faye fan-out, %d subscribers at the set rate: p99 latency, ms", "faye", p99, "%.1f", false, 10, 0},
	{"pairs-faye", "Faye pairs, %d conversations: deliveries per server CPU-second", "faye", perCPU, "%.0f", true, 0, 3},
	{"idle-mqtt", "idle MQTT clients (%d), server memory per client, KB (1,000 B)", "mosquitto", kb, "%.1f", false, 20.5, 0},
	{"fanout-mqtt", "MQTT fan-out, %d subscribers, flat out: deliveries per server CPU-second", "mosquitto", perCPU, "%.0f", true, 150_000, 0},
	{"chat-max", "chat path, %d conversations, flat out (256 in flight): REST posts stored (fsync) per second", "", func(r *Result) float64 { return r.SentPerSec }, "%.0f", true, 5000, 0},
	{"chat", "chat path, %d conversations: delivery p99 (Faye and MQTT), ms", "", p99, "%.1f", false, 20, 0},
	{"held-faye", "%d concurrent Faye websocket clients held: share receiving a broadcast, %%", "faye", func(r *Result) float64 { return 100 * float64(r.Received) / float64(max(r.Clients, 1)) }, "%.1f", true, 100, 0},
}

func kb(r *Result) float64     { return r.BytesPerClient / 1000 }
func perCPU(r *Result) float64 { return r.DeliveriesPerCPU }
func p99(r *Result) float64    { return r.P99ms }

// report reads the JSON lines of a comparison run and writes the comparison table and every
// run's figures in Markdown.
func report(w io.Writer, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	var results []*Result
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if !strings.HasPrefix(line, "{") {
			continue
		}
		r := new(Result)
		if err := json.Unmarshal([]byte(line), r); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		results = append(results, r)
	}
	if err := sc.Err(); err != nil {
		return err
	}
	find := func(shape, label string) *Result {
		for _, r := range results {
			if r.Shape == shape && r.Label == label {
				return r
			}
		}
		return nil
	}
	fmt.Fprintln(w, "| shape | reference | ours | ours vs reference | target (ours) | met? |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|:---:|")
	for _, row := range rows {
		ours := find(row.shape, "ours")
		ref := find(row.shape, row.ref)
		if ours == nil && ref == nil {
			continue
		}
		n := 0
		for _, r := range []*Result{ours, ref} {
			if r != nil {
				n = r.Clients
			}
		}
		title := fmt.Sprintf(row.title, n)
		if ours != nil && ours.Rate > 0 {
			title += fmt.Sprintf(" (%g/s)", ours.Rate)
		}
		refText, oursText, ratio, met := "—", "—", "—", "—"
		var rv, ov float64
		if ref != nil {
			rv = row.value(ref)
			refText = fmt.Sprintf(row.format, rv) + " (" + row.ref + ")"
		}
		if ours != nil {
			ov = row.value(ours)
			oursText = fmt.Sprintf(row.format, ov)
			good := ov >= row.target
			if !row.higher {
				good = ov <= row.target
			}
			met = map[bool]string{true: "yes", false: "**no**"}[good]
		}
		x := 0.0
		if ref != nil && ours != nil && rv > 0 && ov > 0 {
			x = ov / rv
			if !row.higher {
				x = rv / ov
			}
			ratio = fmt.Sprintf("%.2f× better", x)
			if x > 0.995 && x < 1.005 {
				ratio = "equal"
			} else if x < 1 {
				ratio = fmt.Sprintf("%.2f× worse", 1/x)
			}
		}
		cmp := "≥"
		if !row.higher {
			cmp = "≤"
		}
		target := cmp + " " + trimZeros(fmt.Sprintf(row.format, row.target))
		if row.ratio > 0 {
			target = fmt.Sprintf("≥ %g× %s", row.ratio, row.ref)
			met = "—"
			if x > 0 {
				met = map[bool]string{true: "yes", false: "**no**"}[x >= row.ratio]
			}
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s |\n", title, refText, oursText, ratio, target, met)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Every run:")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| shape | server | proto | clients | rate/s | sent | delivered/expected | lost | errors | delivered/s | p50 ms | p99 ms | max ms | server CPU s | deliveries per CPU-s | generator CPU s | bytes per client |")
	fmt.Fprintln(w, "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, r := range results {
		rate := "flat out"
		if r.Scenario == "idle" {
			rate = "—"
		} else if r.Rate > 0 {
			rate = fmt.Sprintf("%g", r.Rate)
		}
		perClient := "—"
		if r.RSSAfter > 0 {
			perClient = fmt.Sprintf("%.0f", r.BytesPerClient)
		}
		delivered := fmt.Sprintf("%d/%d", r.Delivered, r.Expected)
		if r.Expected == 0 && r.Received > 0 {
			delivered = fmt.Sprintf("broadcast %d/%d", r.Received, r.Clients)
		}
		fmt.Fprintf(w, "| %s | %s | %s | %d | %s | %d | %s | %d | %d | %.0f | %.2f | %.2f | %.2f | %.2f | %.0f | %.2f | %s |\n",
			r.Shape, r.Label, r.Proto, r.Clients, rate, r.Sent, delivered, r.Lost, r.Errors, r.DeliveredPerSec,
			r.P50ms, r.P99ms, r.MaxMs, r.CPUSeconds, r.DeliveriesPerCPU, r.BenchCPUSeconds, perClient)
	}
	return nil
}

func trimZeros(s string) string {
	if strings.Contains(s, ".") {
		s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	}
	return s
}
