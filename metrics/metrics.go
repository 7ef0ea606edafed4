// Package metrics exposes the node's Prometheus metrics: live counts read from the doors and
// the broker at scrape time, HTTP and store latency histograms, and the Go runtime's. It owns
// its registry (nothing registers globally) and the /metrics endpoint.
package metrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"runtime/debug"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Namespace starts the name of every metric of the server itself.
const Namespace = "chat"

// Metrics is one node's registry and the instruments the doors feed.
type Metrics struct {
	reg     *prometheus.Registry
	http    *prometheus.HistogramVec
	store   *prometheus.HistogramVec
	allowed []netip.Prefix
	log     *slog.Logger
	srv     *http.Server // the own listener, when metrics.addr is set
	addr    net.Addr
}

// New returns a registry holding the Go and process collectors, the build info and the
// latency histograms. allowed are the networks that may scrape.
func New(allowed []netip.Prefix, log *slog.Logger) *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		http: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: Namespace, Name: "http_request_duration_seconds",
			Help: "HTTP requests by method, matched route template and status class. Held Faye long-polls count for as long as they are held.",
			// Up to a minute: a long-poll is held for faye.timeout (45s by default).
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}, []string{"method", "route", "status"}),
		store: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: Namespace, Name: "store_duration_seconds",
			Help:    "Store calls by operation and outcome (ok, not_found, conflict, unavailable, error).",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"op", "outcome"}),
		allowed: allowed,
		log:     log,
	}
	version, revision, goVersion := buildInfo()
	build := prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: Namespace, Name: "build_info", Help: "Always 1; the labels say which build runs.",
		ConstLabels: prometheus.Labels{"version": version, "revision": revision, "go_version": goVersion},
	})
	build.Set(1)
	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.http, m.store, build,
	)
	return m
}

func buildInfo() (version, revision, goVersion string) {
	version, revision, goVersion = "unknown", "unknown", "unknown"
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return
	}
	version, goVersion = info.Main.Version, info.GoVersion
	for _, s := range info.Settings {
		if s.Key == "vcs.revision" {
			revision = s.Value
		}
	}
	return
}

// Registry is the node's registry, for tests and for adding collectors.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the metrics in the Prometheus text format to allowed addresses.
func (m *Metrics) Handler() http.Handler {
	h := promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		Registry:            m.reg, // promhttp_metric_handler_errors_total
		MaxRequestsInFlight: 4,
		Timeout:             10 * time.Second,
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !m.Allowed(r.RemoteAddr, r.Header) {
			m.log.Debug("metrics: scrape refused", "remote", r.RemoteAddr)
			http.Error(w, "metrics: this address may not scrape (metrics.allowed_ips); requests through a proxy never may", http.StatusForbidden)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// forwardHeaders mark a request that came through a proxy.
var forwardHeaders = []string{"X-Forwarded-For", "Forwarded", "X-Real-Ip"}

// Allowed reports whether a scrape from the connecting address remote ("host:port") with
// header may be served: the address must be in an allowed network, and the request must not
// have come through a proxy, which would make a public client look local.
func (m *Metrics) Allowed(remote string, header http.Header) bool {
	for _, h := range forwardHeaders {
		if header.Get(h) != "" {
			return false
		}
	}
	ap, err := netip.ParseAddrPort(remote)
	if err != nil {
		return false
	}
	addr := ap.Addr().Unmap()
	for _, p := range m.allowed {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// Listen serves Handler at path on its own listener at addr (metrics.addr), until Close.
func (m *Metrics) Listen(addr, path string) (net.Addr, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen metrics on %s (metrics.addr): %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle(path, m.Handler())
	m.addr = ln.Addr()
	m.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	go func() {
		if err := m.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			m.log.Error("metrics listener stopped", "addr", addr, "err", err.Error())
		}
	}()
	return ln.Addr(), nil
}

// Addr is the own listener's address; nil when there is none.
func (m *Metrics) Addr() net.Addr { return m.addr }

// Close stops the own listener, if any, letting scrapes in flight finish within ctx.
func (m *Metrics) Close(ctx context.Context) error {
	if m.srv == nil {
		return nil
	}
	if err := m.srv.Shutdown(ctx); err != nil {
		return fmt.Errorf("stop metrics listener: %w", err)
	}
	return nil
}
