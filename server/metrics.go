package server

import (
	"context"
	"log/slog"
	"net/netip"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/adaptor"

	"github.com/convead/chat-server/config"
	"github.com/convead/chat-server/metrics"
)

// newMetrics returns the node's metrics, or nil when metrics.enabled is false.
func newMetrics(cfg *config.Config, log *slog.Logger) *metrics.Metrics {
	if !cfg.Metrics.Enabled {
		return nil
	}
	nets := make([]netip.Prefix, 0, len(cfg.Metrics.AllowedIPs))
	for _, s := range cfg.Metrics.AllowedIPs {
		p, _ := config.ParseNet(s) // validated by config
		nets = append(nets, p)
	}
	return metrics.New(nets, log.With("component", "metrics"))
}

// mountMetrics serves the endpoint on the HTTP port unless it has its own listener.
func mountMetrics(app *fiber.App, cfg *config.Config, m *metrics.Metrics) {
	if m != nil && cfg.Metrics.Addr == "" {
		app.Get(cfg.Metrics.Path, adaptor.HTTPHandler(m.Handler()))
	}
}

// startMetrics opens the own listener (metrics.addr), if configured.
func (s *Server) startMetrics() error {
	if s.mx == nil || s.cfg.Metrics.Addr == "" {
		return nil
	}
	addr, err := s.mx.Listen(s.cfg.Metrics.Addr, s.cfg.Metrics.Path)
	if err != nil {
		return err
	}
	s.log.Info("metrics listening", "addr", addr.String(), "path", s.cfg.Metrics.Path)
	return nil
}

func (s *Server) stopMetrics(ctx context.Context) error {
	if s.mx == nil {
		return nil
	}
	return s.mx.Close(ctx)
}

// MetricsURL is where the metrics are served: their own listener, or the HTTP port; empty
// when metrics are off.
func (s *Server) MetricsURL() string {
	if s.mx == nil {
		return ""
	}
	addr := s.mx.Addr()
	if addr == nil {
		addr = s.HTTPAddr()
	}
	return "http://" + addr.String() + s.cfg.Metrics.Path
}
