// Package auth turns a bearer token into an Identity. The same verifier serves REST, MQTT and
// Faye, so that every door accepts exactly the same tokens.
package auth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/convead/chat-server/channel"
	"github.com/convead/chat-server/ratelimit"
)

// Role is what a token's holder is to the chat.
type Role string

// The three roles of the chat, and the server-wide administrator.
const (
	Visitor Role = "visitor"
	Manager Role = "manager"
	Service Role = "service"
	// Admin is the server operator: a token of no organisation, signed by the server key
	// only, accepted by the administration API alone (VerifyAdmin) and never by a chat door,
	// so that it can set the keys of an organisation whose own signers are lost.
	Admin Role = "admin"
)

// Valid reports whether r is one of the chat's roles (Admin is not one: no door accepts it).
func (r Role) Valid() bool { return r == Visitor || r == Manager || r == Service }

// Identity is who made a request: a visitor or manager id, or a service name, in one organisation.
type Identity struct {
	Subject string
	Role    Role
	Org     string
}

// String is for logs: it names the identity without any secret.
func (id Identity) String() string { return string(id.Role) + ":" + id.Org + "/" + id.Subject }

// Key is a compact, unambiguous form of the identity ("role:org:subject"), for places that
// can only hold a string, such as a stored MQTT session.
func (id Identity) Key() string { return string(id.Role) + ":" + id.Org + ":" + id.Subject }

// ParseKey reverses Key; ok is false for anything Key cannot have produced.
func ParseKey(key string) (id Identity, ok bool) {
	parts := strings.Split(key, ":")
	if len(parts) != 3 {
		return Identity{}, false
	}
	id = Identity{Role: Role(parts[0]), Org: parts[1], Subject: parts[2]}
	return id, id.Role.Valid() && id.validate() == nil
}

// ErrInvalidToken wraps every reason a token is refused.
var ErrInvalidToken = errors.New("invalid token")

// MaxTokenBytes bounds the token size accepted before parsing.
const MaxTokenBytes = 4096

type claims struct {
	Role Role   `json:"role"`
	Org  string `json:"org"`
	jwt.RegisteredClaims
}

// Config says which tokens a Verifier accepts.
type Config struct {
	// Secret is the current HS256 key: it signs new tokens and checks tokens without a kid.
	Secret []byte
	// KeyID is the current key's id (the "kid" header); optional.
	KeyID string
	// Previous keys, by id, still accepted for tokens that name them in "kid": a rotation
	// keeps the old key here until the tokens it signed have expired.
	Previous map[string][]byte
	// Leeway is the clock skew tolerated on exp and nbf.
	Leeway time.Duration
	// Audience and Issuer, when set, must be the token's aud and iss (and go into new tokens).
	Audience, Issuer string
	// OrgKeys, when set, holds organisations' own keys: a token whose org has keys is checked
	// against those only, so that one organisation's key can never sign for another.
	OrgKeys *KeyCache
	// Log, when set, receives one info line per refused token (rate-limited), with the reason
	// and the claimed org, role and subject, never the token.
	Log *slog.Logger
	// LogPerMinute bounds those lines; 0 means DefaultLogPerMinute.
	LogPerMinute int
}

// DefaultLogPerMinute bounds refused-token log lines, so that a flood of bad tokens cannot
// flood the log.
const DefaultLogPerMinute = 60

// orgKeysTimeout bounds a store read for an organisation's keys on a cache miss.
const orgKeysTimeout = 2 * time.Second

// Verifier checks tokens: HS256 with the server key, or an organisation's own keys.
type Verifier struct {
	cfg    Config
	parser *jwt.Parser
	logs   *ratelimit.Limiter
	seen   *verified
}

// NewVerifier returns a verifier for cfg.
func NewVerifier(cfg Config) *Verifier {
	// The algorithms are pinned: "none" never reaches the key function, and the key function
	// checks that the token's alg is the one of the key it selects.
	methods := []string{HS256}
	if cfg.OrgKeys != nil {
		methods = []string{HS256, RS256, ES256}
	}
	opts := []jwt.ParserOption{jwt.WithValidMethods(methods), jwt.WithExpirationRequired(), jwt.WithLeeway(cfg.Leeway)}
	if cfg.Audience != "" {
		opts = append(opts, jwt.WithAudience(cfg.Audience))
	}
	if cfg.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(cfg.Issuer))
	}
	perMinute := cfg.LogPerMinute
	if perMinute <= 0 {
		perMinute = DefaultLogPerMinute
	}
	return &Verifier{cfg: cfg, parser: jwt.NewParser(opts...), logs: ratelimit.New(perMinute), seen: newVerified(cfg.OrgKeys)}
}

// Reasons a token is refused; every one also wraps ErrInvalidToken.
var (
	ErrExpired      = errors.New("expired")
	ErrUnknownKid   = errors.New("unknown kid")
	ErrAlgMismatch  = errors.New("alg does not match the key's alg")
	ErrBadSignature = errors.New("bad signature")
	ErrWrongOrgKey  = errors.New("not signed by a key of the token's organisation")
	ErrBadAudience  = errors.New("bad audience")
	ErrBadIssuer    = errors.New("bad issuer")
	ErrKeysUnknown  = errors.New("organisation keys unavailable")
)

// key picks the key that may verify t: the organisation's own key named by kid when the
// claimed org has keys (then *orgKeyed becomes true), else the server key named by kid.
func (v *Verifier) key(t *jwt.Token, use *keyUse) (any, error) {
	kid, _ := t.Header["kid"].(string)
	alg := t.Method.Alg()
	if v.cfg.OrgKeys != nil {
		c, _ := t.Claims.(*claims)
		if c != nil && c.Org != "" {
			// The claim is not verified yet: a malformed one must not reach the store.
			if !channel.ValidID(c.Org) {
				return nil, errors.New("org must be 1-64 characters of [A-Za-z0-9_-]")
			}
			ctx, cancel := context.WithTimeout(context.Background(), orgKeysTimeout)
			keys, until, err := v.cfg.OrgKeys.keys(ctx, c.Org)
			cancel()
			if err != nil {
				return nil, fmt.Errorf("%w: %w", ErrKeysUnknown, err)
			}
			use.keysUntil = until
			if len(keys) > 0 {
				use.orgKeyed = true
				k, ok := keys[kid]
				switch {
				case !ok:
					return nil, fmt.Errorf("%w %q for organisation %s", ErrUnknownKid, clip(kid), c.Org)
				case k.alg != alg:
					return nil, fmt.Errorf("%w: token %s, key %s", ErrAlgMismatch, alg, k.alg)
				}
				return k.key, nil
			}
		}
	}
	if alg != HS256 {
		return nil, fmt.Errorf("%w: the server key is HS256, token %s", ErrAlgMismatch, alg)
	}
	switch {
	case kid == "" || kid == v.cfg.KeyID:
		return v.cfg.Secret, nil
	case v.cfg.Previous[kid] != nil:
		return v.cfg.Previous[kid], nil
	}
	return nil, fmt.Errorf("%w %q for the server key", ErrUnknownKid, clip(kid))
}

// reason turns the JWT library's error into one of ours, so that logs and the CLI say why.
func reason(err error, orgKeyed bool) error {
	switch {
	case errors.Is(err, ErrUnknownKid), errors.Is(err, ErrAlgMismatch), errors.Is(err, ErrKeysUnknown):
		return err
	case errors.Is(err, jwt.ErrTokenExpired):
		return fmt.Errorf("%w: %w", ErrExpired, err)
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return fmt.Errorf("%w: %w", ErrBadAudience, err)
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return fmt.Errorf("%w: %w", ErrBadIssuer, err)
	case errors.Is(err, jwt.ErrTokenSignatureInvalid) && orgKeyed:
		return fmt.Errorf("%w: %w", ErrWrongOrgKey, err)
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return fmt.Errorf("%w: %w", ErrBadSignature, err)
	}
	return err
}

// Verify returns the identity a valid token carries. Errors wrap ErrInvalidToken and never
// quote the token. Admin tokens are refused: only VerifyAdmin accepts them.
func (v *Verifier) Verify(token string) (Identity, error) {
	id, _, err := v.VerifyExpiry(token)
	return id, err
}

// ErrAdminToken refuses an admin token at a door that is not the administration API.
var ErrAdminToken = errors.New("an admin token is accepted only by the administration API")

// VerifyAdmin is Verify that also accepts an admin token, for the administration API.
func (v *Verifier) VerifyAdmin(token string) (Identity, error) {
	id, _, err := v.verify(token, true)
	return id, err
}

// VerifyExpiry is Verify that also says until when the identity holds (exp plus the leeway),
// for connections that must end when their token does.
func (v *Verifier) VerifyExpiry(token string) (Identity, time.Time, error) {
	return v.verify(token, false)
}

func (v *Verifier) verify(token string, allowAdmin bool) (Identity, time.Time, error) {
	if len(token) > MaxTokenBytes {
		return Identity{}, time.Time{}, fmt.Errorf("%w: longer than %d bytes", ErrInvalidToken, MaxTokenBytes)
	}
	now, epoch := v.seen.now(), v.cfg.OrgKeys.epoch()
	if id, exp, ok := v.seen.get(token, now, epoch); ok && (allowAdmin || id.Role != Admin) {
		return id, exp, nil
	}
	id, exp, use, err := v.check(token, allowAdmin)
	if err == nil {
		v.seen.put(token, id, exp, now, use.keysUntil, epoch)
	}
	return id, exp, err
}

// keyUse is what the key function learnt: whether the token's organisation has keys of its
// own, and until when the org key cache trusts what it answered (zero: it was not asked).
type keyUse struct {
	orgKeyed  bool
	keysUntil time.Time
}

// check verifies a token in full: signature and key choice, expiry, audience, issuer, claims.
func (v *Verifier) check(token string, allowAdmin bool) (Identity, time.Time, keyUse, error) {
	var c claims
	var use keyUse
	_, err := v.parser.ParseWithClaims(token, &c, func(t *jwt.Token) (any, error) { return v.key(t, &use) })
	id := Identity{Subject: c.Subject, Role: c.Role, Org: c.Org}
	if err != nil {
		err = fmt.Errorf("%w: %w", ErrInvalidToken, reason(err, use.orgKeyed))
		v.refused(id, err)
		return Identity{}, time.Time{}, use, err
	}
	if id.Role == Admin && !allowAdmin {
		err := fmt.Errorf("%w: %w", ErrInvalidToken, ErrAdminToken)
		v.refused(id, err)
		return Identity{}, time.Time{}, use, err
	}
	if err := id.validate(); err != nil {
		v.refused(id, err)
		return Identity{}, time.Time{}, use, err
	}
	return id, c.ExpiresAt.Time.Add(v.cfg.Leeway), use, nil
}

// refused logs a refused token's reason and claims (unverified, so only for the record).
func (v *Verifier) refused(id Identity, err error) {
	if v.cfg.Log == nil || !v.logs.Allow("refused", time.Now()) {
		return
	}
	v.cfg.Log.Info("token refused", "reason", err.Error(), "org", clip(id.Org), "role", clip(string(id.Role)), "sub", clip(id.Subject))
}

// clip bounds an unverified claim in a log line.
func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

// Issue signs a token for id with the current key, its id, audience and issuer.
func (v *Verifier) Issue(id Identity, ttl time.Duration, now time.Time) (string, error) {
	return issue(v.cfg.Secret, v.cfg.KeyID, v.cfg.Audience, v.cfg.Issuer, id, ttl, now)
}

func (id Identity) validate() error {
	switch {
	case id.Role == Admin && id.Org != "":
		// An org claim would send the token to that organisation's keys.
		return fmt.Errorf("%w: an admin token has no org", ErrInvalidToken)
	case id.Role == Admin:
		if !channel.ValidID(id.Subject) {
			return fmt.Errorf("%w: sub must be 1-64 characters of [A-Za-z0-9_-]", ErrInvalidToken)
		}
		return nil
	case !id.Role.Valid():
		return fmt.Errorf("%w: role %q is not visitor, manager or service", ErrInvalidToken, id.Role)
	case !channel.ValidID(id.Subject):
		return fmt.Errorf("%w: sub must be 1-64 characters of [A-Za-z0-9_-]", ErrInvalidToken)
	case !channel.ValidID(id.Org):
		return fmt.Errorf("%w: org must be 1-64 characters of [A-Za-z0-9_-]", ErrInvalidToken)
	}
	return nil
}

// Issue signs a token for id that expires after ttl with a bare secret (no kid, aud or iss).
func Issue(secret []byte, id Identity, ttl time.Duration, now time.Time) (string, error) {
	return issue(secret, "", "", "", id, ttl, now)
}

func issue(secret []byte, kid, aud, iss string, id Identity, ttl time.Duration, now time.Time) (string, error) {
	if err := id.validate(); err != nil {
		return "", err
	}
	if ttl <= 0 {
		return "", fmt.Errorf("%w: ttl must be positive, got %s", ErrInvalidToken, ttl)
	}
	c := claims{Role: id.Role, Org: id.Org, RegisteredClaims: jwt.RegisteredClaims{
		Subject:   id.Subject,
		Issuer:    iss,
		IssuedAt:  jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
	}}
	if aud != "" {
		c.Audience = jwt.ClaimStrings{aud}
	}
	t := jwt.NewWithClaims(jwt.SigningMethodHS256, c)
	if kid != "" {
		t.Header["kid"] = kid
	}
	return t.SignedString(secret)
}
