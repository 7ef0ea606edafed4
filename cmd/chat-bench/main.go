// Command chat-bench measures a running server from outside, on loopback: throughput,
// latency, losses, and the server's CPU and memory read from /proc/<pid>. It speaks Bayeux over
// websocket like the official Faye client, MQTT, and the REST API, so the same load runs
// against this server, the reference Faye server and a reference MQTT broker.
//
//	chat-bench idle N   [-proto faye|mqtt] -pid PID ...   held clients: server memory per client
//	chat-bench fanout N [-proto faye|mqtt] [-rate R] ...  N subscribers, one publisher
//	chat-bench pairs P  ...                               P conversations, both sides publishing
//	chat-bench chat P   -secret S ...                     REST posts, Faye and MQTT receivers
//	chat-bench report results.jsonl                       Markdown tables of a comparison run
//
// Against this server (-secret set) every client is a service of organisation -org, which may
// subscribe and publish anywhere in it; the chat scenario uses visitors and managers. Without
// -secret, clients connect anonymously (the reference servers). All the load comes from one
// address: run this server with the per-address limits off (see scripts/bench-compare.sh).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"
)

const usage = `chat-bench: load scenarios against a running server (loopback only).

  chat-bench idle N   [flags]   N handshaked, subscribed clients held; server RSS before and
                                after = bytes per client; then one broadcast to all of them
  chat-bench fanout N [flags]   N subscribers of one channel, one publisher: at -rate
                                publishes/s, or flat out (at most -window messages in flight)
  chat-bench pairs P  [flags]   P conversations of two clients, each publishing to the other
  chat-bench chat P   [flags]   this server only: P conversations; visitors (Faye) and managers
                                (MQTT) post through the REST API and receive live
  chat-bench report FILE        Markdown tables from the JSON lines of a comparison run
  chat-bench port               print a free loopback TCP port

Every run prints a line for people and a JSON line for scripts. Server CPU (utime+stime) and
memory come from /proc/<-pid>. The server must allow the load from one address: for this
server CHAT_LIMITS_CONNECTIONS_PER_IP=0 CHAT_LIMITS_HANDSHAKES_PER_MINUTE_PER_IP=0
CHAT_LIMITS_POSTS_PER_MINUTE=0 CHAT_LIMITS_OPENS_PER_MINUTE_PER_IP=0 CHAT_LIMITS_MQTT_CONNECTS_PER_MINUTE_PER_IP=0.

Flags:
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	err := run(os.Args[1], os.Args[2:])
	if err == flag.ErrHelp {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "chat-bench:", err)
		os.Exit(1)
	}
}

func run(scenario string, args []string) error {
	switch scenario {
	case "report":
		if len(args) != 1 {
			return fmt.Errorf("report needs one file of JSON lines")
		}
		return report(os.Stdout, args[0])
	case "port":
		return freePort(os.Stdout)
	case "help", "-h", "--help":
		fmt.Print(usage)
		newFlags(new(options)).PrintDefaults()
		return nil
	}
	var o options
	fs := newFlags(&o)
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		n, err := strconv.Atoi(args[0])
		if err != nil || n <= 0 {
			return fmt.Errorf("%s: the size must be a positive number, got %q", scenario, args[0])
		}
		o.clients = n
		args = args[1:]
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if o.cpuProfile != "" {
		stop, err := profileCPU(o.cpuProfile)
		if err != nil {
			return err
		}
		defer stop()
	}
	ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	defer cancel()
	o.clock = newClock()
	var (
		r   *Result
		err error
	)
	switch scenario + "/" + o.proto {
	case "idle/faye":
		r, err = fayeIdle(ctx, &o)
	case "fanout/faye":
		r, err = fayeFanout(ctx, &o)
	case "pairs/faye":
		r, err = fayePairs(ctx, &o)
	case "idle/mqtt":
		r, err = mqttIdle(ctx, &o)
	case "fanout/mqtt":
		r, err = mqttFanout(ctx, &o)
	case "chat/faye", "chat/mqtt":
		r, err = chatScenario(ctx, &o)
	default:
		return fmt.Errorf("unknown scenario %q with -proto %q\n\n%s", scenario, o.proto, usage)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", scenario, err)
	}
	r.Scenario, r.Shape, r.Label, r.Clients, r.Rate = scenario, o.shape, o.label, o.clients, o.rate
	if r.Proto == "" {
		r.Proto = o.proto
	}
	return r.print(os.Stdout)
}

// options are the flags of every scenario.
type options struct {
	proto    string
	http     string
	mount    string
	mqtt     string
	pid      int
	secret   string
	org      string
	clients  int
	rate     float64
	duration time.Duration
	size     int
	window   int
	conc     int
	label    string
	shape    string
	timeout  time.Duration
	settle   time.Duration
	hold     time.Duration
	clock    clock

	cpuProfile string
}

// profileCPU writes the load generator's own CPU profile to path until stop: to tell its
// costs from the server's, which share the machine.
func profileCPU(path string) (stop func(), err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("cpu profile %s: %w", path, err)
	}
	return func() { pprof.StopCPUProfile(); _ = f.Close() }, nil
}

func newFlags(o *options) *flag.FlagSet {
	fs := flag.NewFlagSet("chat-bench", flag.ContinueOnError)
	fs.StringVar(&o.proto, "proto", "faye", "faye (Bayeux over websocket) or mqtt (MQTT 3.1.1 over TCP)")
	fs.StringVar(&o.http, "http", "127.0.0.1:8000", "HTTP address of the server (Faye, REST)")
	fs.StringVar(&o.mount, "mount", "/faye", "Bayeux endpoint path")
	fs.StringVar(&o.mqtt, "mqtt", "127.0.0.1:1883", "MQTT address of the server")
	fs.IntVar(&o.pid, "pid", 0, "server process id, for CPU and memory (0: not measured)")
	fs.StringVar(&o.secret, "secret", "", "JWT secret of this server; empty: no tokens (reference servers)")
	fs.StringVar(&o.org, "org", "bench", "organisation of the clients (this server)")
	fs.IntVar(&o.clients, "clients", 100, "clients (idle), subscribers (fanout), conversations (pairs, chat); also the first argument")
	fs.Float64Var(&o.rate, "rate", 0, "publishes (posts) per second, all publishers together; 0: flat out")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "how long to publish")
	fs.IntVar(&o.size, "size", 100, "payload bytes")
	fs.IntVar(&o.window, "window", 0, "flat out: messages in flight (fanout: 20; per publisher in pairs: 4; in chat: 64 posts not yet delivered to both sides, and as many concurrent requests)")
	fs.IntVar(&o.conc, "conc", 64, "connections being set up at once")
	fs.StringVar(&o.label, "label", "", "name of the server measured, copied to the result")
	fs.StringVar(&o.shape, "shape", "", "row of the comparison table, copied to the result")
	fs.DurationVar(&o.timeout, "timeout", 5*time.Minute, "bound on the whole run")
	fs.DurationVar(&o.settle, "settle", 3*time.Second, "idle: wait before reading the server's memory")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "write the load generator's CPU profile to this file")
	fs.DurationVar(&o.hold, "hold", 0, "idle: keep the clients this long after measuring (to profile the server)")
	fs.Usage = func() {}
	return fs
}

func (o *options) windowOr(def int) int {
	if o.window > 0 {
		return o.window
	}
	return def
}

// payload is the data of every publish, the same for every server: a JSON object with the
// send time and padding up to size bytes.
func (o *options) payload(seq int64) []byte {
	b := make([]byte, 0, max(o.size, 48))
	b = append(b, `{"bench_t":`...)
	b = strconv.AppendInt(b, o.clock.now(), 10)
	b = append(b, `,"seq":`...)
	b = strconv.AppendInt(b, seq, 10)
	b = append(b, `,"pad":"`...)
	for len(b) < o.size-2 {
		b = append(b, 'x')
	}
	return append(b, `"}`...)
}

// latency records a delivery stamped ts.
func (o *options) latency(h *histogram, ts int64) {
	h.record(time.Duration(o.clock.now() - ts))
}

// cpuMark is the server's and this generator's CPU seconds at the start of a measured phase.
type cpuMark struct{ server, bench float64 }

func (o *options) markCPU() cpuMark { return cpuMark{o.cpu(), selfCPUSeconds()} }

// cpuSince returns the CPU seconds the server and this generator used since m.
func (o *options) cpuSince(m cpuMark) (server, bench float64) {
	return o.cpu() - m.server, selfCPUSeconds() - m.bench
}

// cpu returns the server's CPU seconds, or 0 when it is not measured.
func (o *options) cpu() float64 {
	if o.pid <= 0 {
		return 0
	}
	s, err := cpuSeconds(o.pid)
	if err != nil {
		return 0
	}
	return s
}
