// Command chat-bench measures a running server from outside, on loopback: throughput,
// latency, and the server's CPU and memory read from /proc/<pid>. It speaks to any MQTT broker,
// so the same load can be run against this server and a reference one.
//
//	chat-bench mqtt-fanout -addr 127.0.0.1:1883 -pid PID -subs 100 -msgs 20000 [-secret S]
//	chat-bench mqtt-idle   -addr 127.0.0.1:1883 -pid PID -clients 2000 [-secret S]
//
// With -secret, clients authenticate with tokens signed by it (this server); without, they
// connect anonymously (a reference broker configured to allow it).
//
// All the load comes from one address: start this server with the per-address limits raised
// (CHAT_LIMITS_CONNECTIONS_PER_IP=0 and, for Faye, CHAT_LIMITS_HANDSHAKES_PER_MINUTE_PER_IP=0).
package main

import (
	"flag"
	"fmt"
	"os"
	"time"
)

const usage = `chat-bench: load scenarios against a running server (loopback only).
All load comes from one address: run this server with CHAT_LIMITS_CONNECTIONS_PER_IP=0.

  chat-bench mqtt-fanout -addr HOST:PORT -pid PID [-subs 100] [-msgs 20000] [-size 200] [-secret S]
      one publisher, -subs subscribers of one topic, QoS 0, flat out: deliveries/s, latency,
      server CPU per delivery
  chat-bench mqtt-idle -addr HOST:PORT -pid PID [-clients 2000] [-secret S]
      -clients idle subscribed clients held: server memory per client
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "mqtt-fanout":
		err = mqttFanout(os.Args[2:])
	case "mqtt-idle":
		err = mqttIdle(os.Args[2:])
	case "help", "-h", "--help":
		fmt.Print(usage)
		return
	default:
		fmt.Fprintf(os.Stderr, "unknown scenario %q\n\n%s", os.Args[1], usage)
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "chat-bench:", err)
		os.Exit(1)
	}
}

// common flags of every scenario.
type common struct {
	addr    string
	pid     int
	secret  string
	timeout time.Duration
}

func (c *common) register(fs *flag.FlagSet) {
	fs.StringVar(&c.addr, "addr", "127.0.0.1:1883", "MQTT address of the server (loopback)")
	fs.IntVar(&c.pid, "pid", 0, "server process id, for CPU and memory (0: not measured)")
	fs.StringVar(&c.secret, "secret", "", "JWT secret of this server; empty: connect anonymously")
	fs.DurationVar(&c.timeout, "timeout", 2*time.Minute, "bound on the whole scenario")
}
