// Package server wires the parts into one running node: store, broker and its hooks, chat
// domain, and the HTTP doors. cmd/chat-server and the end-to-end tests both start it. The
// parts and their one-way dependencies: docs/design.md "Parts".
package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/recover"
	mqtt "github.com/mochi-mqtt/server/v2"

	"github.com/convead/chat-server/accept"
	"github.com/convead/chat-server/api"
	"github.com/convead/chat-server/broker"
	"github.com/convead/chat-server/chat"
	"github.com/convead/chat-server/cluster"
	"github.com/convead/chat-server/config"
	"github.com/convead/chat-server/duty"
	"github.com/convead/chat-server/faye"
	"github.com/convead/chat-server/faye/transport"
	"github.com/convead/chat-server/metrics"
	"github.com/convead/chat-server/mqttws"
	"github.com/convead/chat-server/origin"
	"github.com/convead/chat-server/plugins/clusterbridge"
	"github.com/convead/chat-server/plugins/commands"
	"github.com/convead/chat-server/plugins/mqttauth"
	"github.com/convead/chat-server/plugins/mqttduty"
	"github.com/convead/chat-server/ratelimit"
	"github.com/convead/chat-server/store"
	"github.com/convead/chat-server/store/bolt"
	"github.com/convead/chat-server/store/mongo"
	"github.com/convead/chat-server/web"
)

// Server is one running node.
type Server struct {
	log    *slog.Logger
	cfg    *config.Config
	store  store.Store
	broker *broker.Broker
	app    *fiber.App
	faye   *faye.Engine
	duties *duty.Registry
	svc    *chat.Service
	mx     *metrics.Metrics // nil when metrics.enabled is false
	httpLn net.Listener
	// httpAccept wraps httpLn: it retries EMFILE and the like, and says whether it died.
	httpAccept *accept.Listener
	served     chan error
	// stopMQTTWatch ends the wait for the MQTT listener's death, at Shutdown.
	stopMQTTWatch context.CancelFunc
	// stopFaye ends the Faye engine: held connects are answered, streams closed.
	stopFaye context.CancelFunc
	fayeDone chan struct{}
	// stopSweeps ends the desk sweeps (pending, reassignment, retention).
	stopSweeps context.CancelFunc
	sweepsDone chan struct{}
	demo       *web.Demo // the demo organisation's tokens, printed at start; nil when off
	// Cluster mode only (nil on a single node).
	node        *cluster.Node
	bridge      *clusterbridge.Hook // injects what the other nodes publish
	stopCluster context.CancelFunc
	clusterDone chan struct{}
	pprof       *http.Server // debug.pprof_addr; nil when off
}

// New builds a node from cfg; nothing listens until Start. What it acquires (the store, the
// cluster node) goes on one cleanup stack, unwound if a later step fails; once New returns the
// node, Shutdown releases it all in its own order.
func New(ctx context.Context, cfg *config.Config, log *slog.Logger) (_ *Server, err error) {
	var acquired cleanupStack
	defer func() {
		if err != nil {
			_ = acquired.unwind(ctx) // the build's error is the one to report
		}
	}()
	secret, err := Secret(cfg)
	if err != nil {
		return nil, err
	}
	st, err := OpenStore(ctx, cfg, log)
	if err != nil {
		return nil, err
	}
	mx := newMetrics(cfg, log)
	if mx != nil {
		st = mx.Store(st)
	}
	acquired.push(st.Close)
	duties := duty.NewRegistry()
	tlsConfig, err := mqttTLS(cfg)
	if err != nil {
		return nil, err
	}
	var onDuty chat.Duty = duties
	var announce func(org string) // cluster mode: tell the other nodes of a duty change
	var node *cluster.Node
	if cfg.Cluster.Enabled() {
		if node, err = joinCluster(cfg, log); err != nil {
			return nil, err
		}
		acquired.push(func(context.Context) error { node.Close(); return nil })
		p := node.Duty(duties)
		announce = p.Changed
		onDuty = p
	}
	b := broker.New(brokerConfig(cfg, tlsConfig), log)
	svc := chat.New(st, b, onDuty, chatConfig(cfg), log.With("component", "chat"))
	duties.Notify(func(org string) {
		if announce != nil {
			announce(org)
		}
		svc.DutyChanged(org) // pending conversations go to whoever came on duty
	})
	orgKeys := OrgKeyCache(st)
	verifier, err := Verifier(cfg, secret, orgKeys, log.With("component", "auth"))
	if err != nil {
		return nil, err
	}
	authHook := mqttauth.New(verifier, svc, b.Server().Clients, b.Server().DisconnectClient, b.Server().SendConnack, log.With("component", "mqtt-auth"))
	hooks := []mqtt.Hook{authHook, mqttduty.New(duties, authHook), commands.New(authHook, svc, b, log.With("component", "mqtt-commands"))}
	var bridge *clusterbridge.Hook
	if node != nil {
		bridge = clusterbridge.New(node, b.Server())
		hooks = append(hooks, bridge)
	}
	for _, h := range hooks {
		if err := b.AddHook(h); err != nil {
			return nil, err
		}
	}

	app := fiber.New(fiberConfig(cfg, log))
	if mx != nil {
		app.Use(mx.Middleware) // first: it times and sees the status of everything after it
	}
	app.Use(recover.New())
	origins, err := loadOrigins(ctx, cfg, st)
	if err != nil {
		return nil, err
	}
	engine := faye.New(fayeConfig(cfg, origins, node), svc, verifier, duties, b, log.With("component", "faye"))
	if err := b.OnPublish(engine.Deliver); err != nil {
		return nil, err
	}
	err = transport.Register(app, engine, transport.Config{Mount: cfg.Faye.Mount, Origins: origins, ClientJSPath: cfg.Faye.ClientJSPath, MaxFrameBytes: cfg.Limits.WSFrameBytes})
	if err != nil {
		return nil, err
	}
	if mx != nil {
		if err := mx.Watch(metrics.Sources{Faye: engine, Broker: b, Duty: duties, Chat: svc}); err != nil {
			return nil, fmt.Errorf("register metrics: %w", err)
		}
	}
	mountMetrics(app, cfg, mx)
	if cfg.MQTT.WSPath != "" {
		mqttws.Register(app, cfg.MQTT.WSPath, b, origins, cfg.Limits.WSFrameBytes, log.With("component", "mqtt-ws"))
	}
	// Assigned on return: the checks run only once the node serves.
	var srv *Server
	degraded := map[string]func(context.Context) error{}
	if node != nil {
		degraded["cluster"] = node.Ready
	}
	api.Register(app, svc, verifier, api.Config{
		Degraded:     degraded,
		AnonymousOrg: cfg.Auth.AnonymousOrg,
		Origins:      origins,
		OpensPerIP:   ratelimit.New(cfg.Limits.OpensPerMinutePerIP),
		OrgKeys:      orgKeys,
		Ready: map[string]func(context.Context) error{
			"store":  svc.Ready,
			"broker": func(context.Context) error { return b.Ready() },
			"http":   func(context.Context) error { return srv.httpReady() },
		},
	}, log.With("component", "api"))
	demo, err := setupWeb(ctx, app, cfg, svc, verifier)
	if err != nil {
		return nil, err
	}
	// served: one send each from the HTTP server and the MQTT listener's watch.
	srv = &Server{log: log, cfg: cfg, store: st, broker: b, app: app, faye: engine, duties: duties, svc: svc, served: make(chan error, 2),
		mx: mx, demo: demo, node: node, bridge: bridge}
	return srv, nil
}

func brokerConfig(cfg *config.Config, tlsConfig *tls.Config) broker.Config {
	return broker.Config{
		Addr:             cfg.MQTT.Addr,
		QueuePerClient:   cfg.MQTT.QueuePerClient,
		DataDir:          cfg.DataDir,
		TLS:              tlsConfig,
		MaxConnsPerIP:    cfg.Limits.ConnectionsPerIP,
		MaxSubscriptions: cfg.Limits.SubscriptionsPerClient,
		ConnectsPerIP:    ratelimit.New(cfg.Limits.MQTTConnectsPerMinutePerIP),
		MaxPacketSize:    cfg.MQTT.MaxPacketSize,
		ConnectTimeout:   cfg.MQTT.ConnectTimeout,
	}
}

func chatConfig(cfg *config.Config) chat.Config {
	return chat.Config{
		MaxMessagesCount:         cfg.API.MaxMessagesCount,
		MessagesCountLimit:       cfg.API.MessagesCountLimit,
		ContentChars:             cfg.Limits.ContentChars,
		OpensPerMinutePerVisitor: cfg.Limits.OpensPerMinutePerVisitor,
		PostsPerMinute:           cfg.Limits.PostsPerMinute,
	}
}

func fiberConfig(cfg *config.Config, log *slog.Logger) fiber.Config {
	return fiber.Config{
		// Handlers hand request strings to the store and the broker: they must not alias
		// fasthttp's reused buffers.
		Immutable:               true,
		BodyLimit:               cfg.Limits.HTTPBodyBytes,
		ReadTimeout:             cfg.HTTP.ReadTimeout,
		WriteTimeout:            cfg.HTTP.WriteTimeout,
		IdleTimeout:             cfg.HTTP.IdleTimeout,
		DisableStartupMessage:   true,
		EnableTrustedProxyCheck: len(cfg.HTTP.TrustedProxies) > 0,
		TrustedProxies:          cfg.HTTP.TrustedProxies,
		ProxyHeader:             proxyHeader(cfg),
		ErrorHandler:            api.ErrorHandler(log.With("component", "api")),
	}
}

// loadOrigins is the browser origin policy: http.allowed_origins, and each organisation's own
// allowed origins from the store.
func loadOrigins(ctx context.Context, cfg *config.Config, st store.Store) (*origin.Registry, error) {
	origins := origin.NewRegistry(origin.NewPolicy(cfg.HTTP.AllowedOrigins))
	orgs, err := st.Orgs(ctx)
	if err != nil {
		return nil, fmt.Errorf("load organisations: %w", err)
	}
	for _, o := range orgs {
		origins.SetOrg(o.ID, o.AllowedOrigins)
	}
	return origins, nil
}

// fayeConfig is the Faye engine's configuration; node is nil on a single node.
func fayeConfig(cfg *config.Config, origins *origin.Registry, node *cluster.Node) faye.Config {
	c := faye.Config{
		Timeout:         cfg.Faye.Timeout,
		IdleTimeout:     cfg.Faye.IdleTimeout,
		Ping:            cfg.Faye.Ping,
		MaxBatch:        cfg.Limits.BayeuxBatch,
		MaxChannels:     cfg.Limits.ChannelsPerClient,
		MaxQueue:        cfg.Limits.QueuePerClient,
		AnonymousOrg:    cfg.Auth.AnonymousOrg,
		HandshakesPerIP: ratelimit.New(cfg.Limits.HandshakesPerMinutePerIP),
		Origins:         origins,
	}
	if node != nil {
		c.Node, c.Router, c.Interest = node.Name(), node, node
	}
	return c
}

// httpReady fails once the HTTP listener is dead: the node then still answers on open
// connections (and over the cluster), and must say it is not serving.
func (s *Server) httpReady() error {
	if s.httpAccept == nil {
		return errors.New("not started")
	}
	return s.httpAccept.Err()
}

// joinCluster connects to NATS (see package cluster).
func joinCluster(cfg *config.Config, log *slog.Logger) (*cluster.Node, error) {
	node, err := cluster.Connect(cluster.Config{
		URL:         cfg.Cluster.NATSURL,
		Node:        cfg.Cluster.NodeName,
		Prefix:      cfg.Cluster.SubjectPrefix,
		Heartbeat:   cfg.Cluster.Heartbeat,
		NodeTimeout: cfg.Cluster.NodeTimeout,
		// A forwarded long-poll is held up to faye.timeout by the owner.
		ForwardTimeout: cfg.Faye.Timeout + 10*time.Second,
	}, log.With("component", "cluster"))
	if err != nil {
		return nil, err
	}
	log.Info("cluster: joining", "node", cfg.Cluster.NodeName, "prefix", cfg.Cluster.SubjectPrefix)
	return node, nil
}

func mqttTLS(cfg *config.Config) (*tls.Config, error) {
	if cfg.MQTT.TLSCertFile == "" {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(cfg.MQTT.TLSCertFile, cfg.MQTT.TLSKeyFile)
	if err != nil {
		return nil, fmt.Errorf("load MQTT TLS certificate (mqtt.tls_cert_file, mqtt.tls_key_file): %w", err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}

func proxyHeader(cfg *config.Config) string {
	if len(cfg.HTTP.TrustedProxies) == 0 {
		return ""
	}
	return fiber.HeaderXForwardedFor
}

// OpenStore opens the store cfg names (MongoDB when mongo.uri is set, else the embedded one),
// so that operator tools read the same data as the server.
func OpenStore(ctx context.Context, cfg *config.Config, log *slog.Logger) (store.Store, error) {
	if cfg.Mongo.URI != "" {
		st, err := mongo.Open(ctx, cfg.Mongo.URI, cfg.Mongo.Database, cfg.Mongo.Timeout)
		if err != nil {
			return nil, fmt.Errorf("open MongoDB store (mongo.uri): %w", err)
		}
		log.Info("store: MongoDB", "database", cfg.Mongo.Database)
		return st, nil
	}
	st, err := bolt.Open(cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("open embedded store (data_dir): %w", err)
	}
	log.Info("store: embedded", "data_dir", cfg.DataDir)
	return st, nil
}

// Start binds the MQTT and HTTP listeners and serves in the background. A listener that
// cannot bind closes those bound before it, newest first, as New's cleanup stack does.
func (s *Server) Start() (err error) {
	var bound cleanupStack
	defer func() {
		if err != nil {
			_ = bound.unwind(context.Background())
		}
	}()
	if err := s.broker.Start(); err != nil {
		return err
	}
	bound.push(func(context.Context) error { return s.broker.Close() })
	ln, err := net.Listen("tcp", s.cfg.HTTP.Addr)
	if err != nil {
		return fmt.Errorf("listen HTTP on %s (http.addr): %w", s.cfg.HTTP.Addr, err)
	}
	s.httpLn = ln
	bound.push(func(context.Context) error { return ln.Close() })
	if err := s.startMetrics(); err != nil {
		return err
	}
	bound.push(s.stopMetrics)
	if s.cfg.Debug.PprofAddr != "" {
		if s.pprof, err = startPprof(s.cfg.Debug.PprofAddr, s.log); err != nil {
			return err
		}
	}
	sctx, stopSweeps := context.WithCancel(context.Background())
	s.stopSweeps, s.sweepsDone = stopSweeps, make(chan struct{})
	go func() { defer close(s.sweepsDone); s.svc.RunSweeps(sctx, s.cfg.API.SweepInterval) }()
	fctx, stop := context.WithCancel(context.Background())
	s.stopFaye, s.fayeDone = stop, make(chan struct{})
	go func() { defer close(s.fayeDone); s.faye.Run(fctx) }()
	if s.node != nil {
		cctx, stop := context.WithCancel(context.Background())
		s.stopCluster, s.clusterDone = stop, make(chan struct{})
		go func() { defer close(s.clusterDone); s.node.Run(cctx, s.bridge.Inject) }()
		if err := s.node.ServeFaye(cctx, s.faye.ServeForwarded); err != nil {
			s.log.Error("cluster: forwarded Faye requests will not be served", "err", err.Error())
		}
	}
	s.httpAccept = accept.New(ln, "http", s.log)
	go func() {
		err := s.app.Listener(limitPerIP(s.httpAccept, s.cfg.Limits.ConnectionsPerIP))
		// fasthttp takes a closed listener for a shutdown and returns nil: the death is ours to tell.
		if dead := s.httpAccept.Err(); dead != nil {
			err = dead
		}
		s.served <- err
	}()
	wctx, stopMQTTWatch := context.WithCancel(context.Background())
	s.stopMQTTWatch = stopMQTTWatch
	go func() {
		select {
		case <-s.broker.Dead():
			s.served <- s.broker.Ready()
		case <-wctx.Done():
		}
	}()
	s.log.Info("mqtt listening", "addr", s.broker.Addr().String())
	s.log.Info("http listening", "addr", ln.Addr().String())
	if s.cfg.Web.Enabled {
		web.Announce(s.log, ln.Addr(), s.demo)
	}
	return nil
}

// Stats are live counts, for leak checks.
type Stats struct {
	FayeSessions   int // Faye clients the server knows
	MQTTClients    int // MQTT clients and kept sessions the broker knows
	ManagersOnDuty int // across all organisations
}

// Stats returns the node's live counts.
func (s *Server) Stats() Stats {
	return Stats{FayeSessions: s.faye.Sessions(), MQTTClients: s.broker.Clients(), ManagersOnDuty: s.duties.Count()}
}

// HTTPAddr is the bound HTTP address.
func (s *Server) HTTPAddr() net.Addr { return s.httpLn.Addr() }

// MQTTAddr is the bound MQTT address.
func (s *Server) MQTTAddr() net.Addr { return s.broker.Addr() }

// Served reports the end of serving: nil after Shutdown, an error if the HTTP server failed
// or the HTTP or MQTT listener died (stopped accepting other than by Shutdown).
func (s *Server) Served() <-chan error { return s.served }

// Shutdown stops accepting, lets in-flight requests finish within ctx, disconnects MQTT
// clients and closes the store. The order, each step for the sake of those after it:
//
//  1. the watch on the MQTT listener ends: its closing below is no failure;
//  2. the Faye engine answers held long-polls and closes streams, so that they do not hold up
//     the HTTP shutdown;
//  3. the cluster loop ends: nothing more is injected from the other nodes;
//  4. the pprof server closes;
//  5. HTTP stops accepting and lets in-flight requests finish within ctx, and the events they
//     queued are published;
//  6. the metrics listener closes;
//  7. the broker disconnects the MQTT clients;
//  8. the desk sweeps end, then the chat service's assignments under way, which both write to
//     the store;
//  9. the cluster node says goodbye, taking its managers off duty on every node, and leaves NATS;
//  10. the store closes.
func (s *Server) Shutdown(ctx context.Context) error {
	var errs []error
	if s.stopMQTTWatch != nil {
		s.stopMQTTWatch()
	}
	if s.stopFaye != nil {
		s.stopFaye()
		<-s.fayeDone
	}
	if s.stopCluster != nil {
		s.stopCluster()
		<-s.clusterDone
	}
	if s.pprof != nil {
		_ = s.pprof.Close()
	}
	if err := s.app.ShutdownWithContext(ctx); err != nil {
		errs = append(errs, fmt.Errorf("stop HTTP: %w", err))
	}
	s.svc.Flush()
	if err := s.stopMetrics(ctx); err != nil {
		errs = append(errs, err)
	}
	if err := s.broker.Close(); err != nil {
		errs = append(errs, fmt.Errorf("stop broker: %w", err))
	}
	if s.stopSweeps != nil {
		s.stopSweeps()
		<-s.sweepsDone
	}
	s.svc.Stop()
	if s.node != nil {
		s.node.Close()
	}
	if err := s.store.Close(ctx); err != nil {
		errs = append(errs, fmt.Errorf("close store: %w", err))
	}
	return errors.Join(errs...)
}
