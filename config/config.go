// Package config loads the server's one typed configuration: the embedded defaults
// (defaults.yaml), then an optional file, then CHAT_* environment variables.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/convead/chat-server/channel"
)

// EnvPrefix starts every environment override: CHAT_ + the key in upper case, dots as underscores.
const EnvPrefix = "CHAT_"

// Config is the whole configuration. Field tags are the keys of the YAML file.
type Config struct {
	DataDir         string        `yaml:"data_dir"`
	HTTP            HTTP          `yaml:"http"`
	Metrics         Metrics       `yaml:"metrics"`
	MQTT            MQTT          `yaml:"mqtt"`
	Mongo           Mongo         `yaml:"mongo"`
	Faye            Faye          `yaml:"faye"`
	Auth            Auth          `yaml:"auth"`
	API             API           `yaml:"api"`
	Limits          Limits        `yaml:"limits"`
	Log             Log           `yaml:"log"`
	Web             Web           `yaml:"web"`
	Cluster         Cluster       `yaml:"cluster"`
	Debug           Debug         `yaml:"debug"`
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
}

// HTTP configures the HTTP server of the REST API.
type HTTP struct {
	Addr           string        `yaml:"addr"`
	AllowedOrigins []string      `yaml:"allowed_origins"`
	TrustedProxies []string      `yaml:"trusted_proxies"`
	ReadTimeout    time.Duration `yaml:"read_timeout"`
	WriteTimeout   time.Duration `yaml:"write_timeout"`
	IdleTimeout    time.Duration `yaml:"idle_timeout"`
}

// Metrics configures the Prometheus endpoint.
type Metrics struct {
	Enabled bool   `yaml:"enabled"`
	Path    string `yaml:"path"`
	// Addr serves the endpoint on its own listener; empty: on http.addr.
	Addr string `yaml:"addr"`
	// AllowedIPs are the networks (CIDR) or addresses that may scrape.
	AllowedIPs []string `yaml:"allowed_ips"`
}

// MQTT configures the embedded broker's TCP listener.
type MQTT struct {
	Addr           string        `yaml:"addr"`
	QueuePerClient int           `yaml:"queue_per_client"`
	WSPath         string        `yaml:"ws_path"`
	TLSCertFile    string        `yaml:"tls_cert_file"`
	TLSKeyFile     string        `yaml:"tls_key_file"`
	MaxPacketSize  int           `yaml:"max_packet_size"`
	ConnectTimeout time.Duration `yaml:"connect_timeout"`
}

// Faye configures the Bayeux endpoint.
type Faye struct {
	Mount        string        `yaml:"mount"`
	Timeout      time.Duration `yaml:"timeout"`
	IdleTimeout  time.Duration `yaml:"idle_timeout"`
	Ping         time.Duration `yaml:"ping"`
	ClientJSPath string        `yaml:"client_js_path"`
}

// Mongo selects the MongoDB store; an empty URI selects the embedded store.
type Mongo struct {
	URI      string        `yaml:"uri"`
	Database string        `yaml:"database"`
	Timeout  time.Duration `yaml:"timeout"`
}

// Auth configures token verification.
type Auth struct {
	JWTSecret       string        `yaml:"jwt_secret"`
	JWTKeyID        string        `yaml:"jwt_kid"`
	JWTPreviousKeys []string      `yaml:"jwt_previous_keys"`
	Audience        string        `yaml:"audience"`
	Issuer          string        `yaml:"issuer"`
	Leeway          time.Duration `yaml:"leeway"`
	AnonymousOrg    string        `yaml:"anonymous_org"`
}

// PreviousKeys parses auth.jwt_previous_keys ("kid:secret" entries).
func (a Auth) PreviousKeys() (map[string][]byte, error) {
	keys := map[string][]byte{}
	for _, entry := range a.JWTPreviousKeys {
		kid, secret, ok := strings.Cut(entry, ":")
		if !ok || kid == "" || len(secret) < 32 {
			return nil, fmt.Errorf("auth.jwt_previous_keys (%s): each entry is kid:secret with a secret of at least 32 characters", EnvName("auth.jwt_previous_keys"))
		}
		keys[kid] = []byte(secret)
	}
	return keys, nil
}

// API configures the REST API.
type API struct {
	MaxMessagesCount   int `yaml:"max_messages_count"`
	MessagesCountLimit int `yaml:"messages_count_limit"`
	// SweepInterval is how often each node hands pending conversations out, reassigns those of
	// managers off duty for their organisation's reassign_after, and applies retention.
	SweepInterval time.Duration `yaml:"sweep_interval"`
}

// Limits bounds what one request may carry.
type Limits struct {
	ContentChars      int `yaml:"content_chars"`
	HTTPBodyBytes     int `yaml:"http_body_bytes"`
	WSFrameBytes      int `yaml:"ws_frame_bytes"`
	BayeuxBatch       int `yaml:"bayeux_batch"`
	ChannelsPerClient int `yaml:"channels_per_client"`
	QueuePerClient    int `yaml:"queue_per_client"`

	SubscriptionsPerClient     int `yaml:"subscriptions_per_client"`
	ConnectionsPerIP           int `yaml:"connections_per_ip"`
	OpensPerMinutePerVisitor   int `yaml:"opens_per_minute_per_visitor"`
	OpensPerMinutePerIP        int `yaml:"opens_per_minute_per_ip"`
	PostsPerMinute             int `yaml:"posts_per_minute"`
	HandshakesPerMinutePerIP   int `yaml:"handshakes_per_minute_per_ip"`
	MQTTConnectsPerMinutePerIP int `yaml:"mqtt_connects_per_minute_per_ip"`
}

// Web configures the manager console and the visitor demo page served at /console and /demo.
type Web struct {
	Enabled bool `yaml:"enabled"`
	// Demo is auto, on or off: the demo organisation and its printed tokens (see DemoOn).
	Demo string `yaml:"demo"`
}

// DemoOn reports whether the demo organisation is set up and its tokens printed: web.demo on,
// or auto with the embedded store (MongoDB means a real deployment unless said otherwise).
func (c *Config) DemoOn() bool {
	return c.Web.Enabled && (c.Web.Demo == "on" || c.Web.Demo == "auto" && c.Mongo.URI == "")
}

// Cluster joins this node to others over NATS; an empty NATSURL runs a single node.
type Cluster struct {
	NATSURL       string        `yaml:"nats_url"`
	NodeName      string        `yaml:"node_name"`
	SubjectPrefix string        `yaml:"subject_prefix"`
	Heartbeat     time.Duration `yaml:"heartbeat"`
	NodeTimeout   time.Duration `yaml:"node_timeout"`
}

// Enabled reports whether the node runs in cluster mode.
func (c Cluster) Enabled() bool { return c.NATSURL != "" }

// validPrefix: one or more NATS tokens of [A-Za-z0-9_-], dot-separated.
func validPrefix(s string) bool {
	for _, tok := range strings.Split(s, ".") {
		if tok == "" {
			return false
		}
		for i := 0; i < len(tok); i++ {
			c := tok[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
				return false
			}
		}
	}
	return true
}

// Log configures log/slog output.
type Log struct {
	Level  string `yaml:"level"`
	Format string `yaml:"format"`
}

// Debug configures diagnostics that are off in production.
type Debug struct {
	// PprofAddr serves net/http/pprof on this loopback address; empty: off.
	PprofAddr string `yaml:"pprof_addr"`
}

// Load returns the defaults, overlaid with the file at path (when not empty), overlaid with the
// environment as given by lookup (os.LookupEnv in production), and validated.
func Load(path string, lookup func(string) (string, bool)) (*Config, error) {
	var c Config
	if err := decode(defaultYAML, &c); err != nil {
		return nil, fmt.Errorf("embedded defaults: %w", err)
	}
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("read config: %w", err)
		}
		if err := decode(b, &c); err != nil {
			return nil, fmt.Errorf("config %s: %w", path, err)
		}
	}
	if err := applyEnv(reflect.ValueOf(&c).Elem(), lookup); err != nil {
		return nil, err
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

func decode(b []byte, c *Config) error {
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	// An empty file is io.EOF: it changes nothing.
	if err := dec.Decode(c); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	return nil
}

// EnvName is the environment variable that overrides key.
func EnvName(key string) string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

func walk(t reflect.Type, prefix string, leaf func(key string, index []int), index []int) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		key := prefix + f.Tag.Get("yaml")
		idx := append(append([]int(nil), index...), i)
		if f.Type.Kind() == reflect.Struct {
			walk(f.Type, key+".", leaf, idx)
			continue
		}
		leaf(key, idx)
	}
}

func applyEnv(root reflect.Value, lookup func(string) (string, bool)) error {
	var err error
	walk(root.Type(), "", func(key string, index []int) {
		if err != nil {
			return
		}
		raw, ok := lookup(EnvName(key))
		if !ok {
			return
		}
		if e := setFromString(root.FieldByIndex(index), raw); e != nil {
			err = fmt.Errorf("environment %s=%q: %w", EnvName(key), raw, e)
		}
	}, nil)
	return err
}

var durationType = reflect.TypeOf(time.Duration(0))

func setFromString(v reflect.Value, raw string) error {
	switch {
	case v.Type() == durationType:
		d, err := time.ParseDuration(raw)
		if err != nil {
			return err
		}
		v.SetInt(int64(d))
	case v.Kind() == reflect.String:
		v.SetString(raw)
	case v.Kind() == reflect.Int:
		n, err := strconv.Atoi(raw)
		if err != nil {
			return err
		}
		v.SetInt(int64(n))
	case v.Kind() == reflect.Bool:
		b, err := strconv.ParseBool(raw)
		if err != nil {
			return err
		}
		v.SetBool(b)
	case v.Kind() == reflect.Slice && v.Type().Elem().Kind() == reflect.String:
		var items []string
		for _, s := range strings.Split(raw, ",") {
			if s = strings.TrimSpace(s); s != "" {
				items = append(items, s)
			}
		}
		v.Set(reflect.ValueOf(items))
	default:
		return fmt.Errorf("unsupported type %s", v.Type())
	}
	return nil
}

// Validate reports every setting that cannot work, each naming the key to change and its
// environment variable. Each section checks itself; a section that depends on another is given
// the values it needs.
func (c *Config) Validate() error {
	var p problems
	p.check(c.DataDir != "", "data_dir", "must not be empty")
	p.check(c.ShutdownTimeout > 0, "shutdown_timeout", "must be positive")
	errs := []error(p)
	for _, section := range [][]error{
		c.HTTP.validate(),
		c.MQTT.validate(c.Faye.Mount),
		c.Debug.validate(),
		c.Mongo.validate(),
		c.Auth.validate(),
		c.API.validate(),
		c.Limits.validate(),
		c.Faye.validate(),
		c.Log.validate(),
		c.Web.validate(),
		c.Cluster.validate(c.Mongo.URI, c.Auth.JWTSecret),
		c.Metrics.validate(c.Faye.Mount, c.MQTT.WSPath),
	} {
		errs = append(errs, section...)
	}
	return errors.Join(errs...)
}

// problems collects the settings that cannot work.
type problems []error

// check records the problem with key unless ok: "key (CHAT_KEY): what is wrong".
func (p *problems) check(ok bool, key, format string, args ...any) {
	if !ok {
		*p = append(*p, fmt.Errorf("%s (%s): %s", key, EnvName(key), fmt.Sprintf(format, args...)))
	}
}

func (h HTTP) validate() []error {
	var p problems
	p.check(h.Addr != "", "http.addr", "must not be empty")
	return p
}

// validate needs faye.mount: the MQTT websocket path shares the HTTP port with it.
func (m MQTT) validate(fayeMount string) []error {
	var p problems
	p.check(m.Addr != "", "mqtt.addr", "must not be empty")
	p.check((m.TLSCertFile == "") == (m.TLSKeyFile == ""), "mqtt.tls_cert_file", "set both mqtt.tls_cert_file and mqtt.tls_key_file, or neither")
	p.check(m.WSPath == "" || (strings.HasPrefix(m.WSPath, "/") && m.WSPath != fayeMount), "mqtt.ws_path", "must be a path such as /mqtt, other than faye.mount, or empty, got %q", m.WSPath)
	p.check(m.QueuePerClient > 0, "mqtt.queue_per_client", "must be positive, got %d", m.QueuePerClient)
	p.check(m.MaxPacketSize >= 128 && m.MaxPacketSize <= 268435460, "mqtt.max_packet_size", "must be between 128 bytes and MQTT's 268435460, got %d", m.MaxPacketSize)
	p.check(m.ConnectTimeout > 0, "mqtt.connect_timeout", "must be positive, got %s", m.ConnectTimeout)
	return p
}

func (d Debug) validate() []error {
	var p problems
	p.check(d.PprofAddr == "" || loopback(d.PprofAddr), "debug.pprof_addr", "must be a loopback address such as 127.0.0.1:6060, or empty, got %q", d.PprofAddr)
	return p
}

func (m Mongo) validate() []error {
	var p problems
	p.check(m.URI == "" || m.Database != "", "mongo.database", "must be set with mongo.uri")
	p.check(m.Timeout > 0, "mongo.timeout", "must be positive")
	return p
}

func (a Auth) validate() []error {
	var p problems
	p.check(a.JWTSecret == "" || len(a.JWTSecret) >= 32, "auth.jwt_secret", "must be at least 32 characters (or empty to generate one)")
	_, keysErr := a.PreviousKeys()
	p.check(keysErr == nil, "auth.jwt_previous_keys", "each entry is kid:secret with a secret of at least 32 characters")
	p.check(len(a.JWTPreviousKeys) == 0 || a.JWTKeyID != "", "auth.jwt_kid", "must be set when auth.jwt_previous_keys is: tokens name their key by kid")
	p.check(a.Leeway >= 0 && a.Leeway <= 5*time.Minute, "auth.leeway", "must be between 0 and 5m, got %s", a.Leeway)
	return p
}

func (a API) validate() []error {
	var p problems
	p.check(a.MaxMessagesCount > 0, "api.max_messages_count", "must be positive, got %d", a.MaxMessagesCount)
	p.check(a.MessagesCountLimit >= a.MaxMessagesCount, "api.messages_count_limit", "must be at least api.max_messages_count (%d), got %d", a.MaxMessagesCount, a.MessagesCountLimit)
	p.check(a.SweepInterval >= 100*time.Millisecond && a.SweepInterval <= time.Hour, "api.sweep_interval", "must be between 100ms and 1h, got %s", a.SweepInterval)
	return p
}

func (l Limits) validate() []error {
	var p problems
	p.check(l.ContentChars > 0, "limits.content_chars", "must be positive, got %d", l.ContentChars)
	p.check(l.HTTPBodyBytes >= 1024, "limits.http_body_bytes", "must be at least 1024, got %d", l.HTTPBodyBytes)
	p.check(l.WSFrameBytes >= 1024, "limits.ws_frame_bytes", "must be at least 1024, got %d", l.WSFrameBytes)
	p.check(l.BayeuxBatch > 0, "limits.bayeux_batch", "must be positive, got %d", l.BayeuxBatch)
	p.check(l.ChannelsPerClient > 0, "limits.channels_per_client", "must be positive, got %d", l.ChannelsPerClient)
	p.check(l.SubscriptionsPerClient > 0, "limits.subscriptions_per_client", "must be positive, got %d", l.SubscriptionsPerClient)
	for key, v := range map[string]int{
		"limits.connections_per_ip": l.ConnectionsPerIP, "limits.opens_per_minute_per_visitor": l.OpensPerMinutePerVisitor,
		"limits.opens_per_minute_per_ip": l.OpensPerMinutePerIP, "limits.posts_per_minute": l.PostsPerMinute,
		"limits.handshakes_per_minute_per_ip": l.HandshakesPerMinutePerIP, "limits.mqtt_connects_per_minute_per_ip": l.MQTTConnectsPerMinutePerIP,
	} {
		p.check(v >= 0, key, "must be 0 (off) or more, got %d", v)
	}
	p.check(l.QueuePerClient > 0, "limits.queue_per_client", "must be positive, got %d", l.QueuePerClient)
	return p
}

func (f Faye) validate() []error {
	var p problems
	p.check(strings.HasPrefix(f.Mount, "/") && len(f.Mount) > 1 && !strings.HasSuffix(f.Mount, "/"), "faye.mount", "must be a path such as /faye, got %q", f.Mount)
	p.check(f.Timeout >= time.Second, "faye.timeout", "must be at least 1s, got %s", f.Timeout)
	p.check(f.IdleTimeout > f.Timeout, "faye.idle_timeout", "must be longer than faye.timeout, got %s", f.IdleTimeout)
	p.check(f.Ping > 0 && f.Ping < f.Timeout, "faye.ping", "must be positive and shorter than faye.timeout, got %s", f.Ping)
	return p
}

func (l Log) validate() []error {
	var p problems
	switch l.Level {
	case "debug", "info", "warn", "error":
	default:
		p.check(false, "log.level", "must be debug, info, warn or error, got %q", l.Level)
	}
	p.check(l.Format == "json" || l.Format == "text", "log.format", "must be json or text, got %q", l.Format)
	return p
}

func (w Web) validate() []error {
	var p problems
	p.check(w.Demo == "auto" || w.Demo == "on" || w.Demo == "off", "web.demo", "must be auto, on or off, got %q", w.Demo)
	return p
}

// validate needs mongo.uri and auth.jwt_secret: every node of a cluster must share the store
// and the token secret.
func (c Cluster) validate(mongoURI, jwtSecret string) []error {
	if !c.Enabled() {
		return nil
	}
	var p problems
	p.check(mongoURI != "", "mongo.uri", "cluster mode (cluster.nats_url) needs a store all nodes share: set mongo.uri to a MongoDB replica set or sharded cluster; the embedded store belongs to one node")
	p.check(jwtSecret != "", "auth.jwt_secret", "cluster mode (cluster.nats_url) needs the same secret on every node: a generated one would be this node's alone")
	p.check(channel.ValidNodeName(c.NodeName), "cluster.node_name", "must be 1-32 characters of [a-z0-9-], unique per node, got %q", c.NodeName)
	p.check(validPrefix(c.SubjectPrefix), "cluster.subject_prefix", "must be NATS tokens of [A-Za-z0-9_-] separated by dots, got %q", c.SubjectPrefix)
	p.check(c.Heartbeat > 0, "cluster.heartbeat", "must be positive, got %s", c.Heartbeat)
	p.check(c.NodeTimeout > 2*c.Heartbeat, "cluster.node_timeout", "must be more than twice cluster.heartbeat, got %s", c.NodeTimeout)
	return p
}

// validate needs faye.mount and mqtt.ws_path: the endpoint shares the HTTP port with them.
func (m Metrics) validate(fayeMount, mqttWSPath string) []error {
	if !m.Enabled {
		return nil
	}
	var p problems
	p.check(strings.HasPrefix(m.Path, "/") && m.Path != fayeMount && !strings.HasPrefix(m.Path, fayeMount+"/") && m.Path != mqttWSPath,
		"metrics.path", "must be a path such as /metrics, outside faye.mount and other than mqtt.ws_path, got %q", m.Path)
	p.check(len(m.AllowedIPs) > 0, "metrics.allowed_ips", "must list who may scrape (e.g. 10.0.0.0/8; 0.0.0.0/0 and ::/0 for anyone), or set metrics.enabled false")
	for _, ip := range m.AllowedIPs {
		_, err := ParseNet(ip)
		p.check(err == nil, "metrics.allowed_ips", "%q is neither an address nor a network such as 10.0.0.0/8", ip)
	}
	return p
}

// ParseNet parses a network in CIDR notation, or a single address as a network of one.
func ParseNet(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		return p.Masked(), err
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// loopback reports whether addr is host:port with a loopback host.
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
