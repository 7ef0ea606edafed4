// Package auth turns a bearer token into an Identity. The same verifier serves REST, MQTT and
// (later) Faye, so that every door accepts exactly the same tokens.
package auth

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/convead/chat-server/channel"
)

// Role is what a token's holder is to the chat.
type Role string

// The three roles of SPEC §6.
const (
	Visitor Role = "visitor"
	Manager Role = "manager"
	Service Role = "service"
)

// Valid reports whether r is one of the known roles.
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
	return id, id.validate() == nil
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
}

// Verifier checks HS256 tokens.
type Verifier struct {
	cfg    Config
	parser *jwt.Parser
}

// NewVerifier returns a verifier for cfg.
func NewVerifier(cfg Config) *Verifier {
	// The algorithm is pinned: "none" and asymmetric algorithms never reach the key function.
	opts := []jwt.ParserOption{jwt.WithValidMethods([]string{"HS256"}), jwt.WithExpirationRequired(), jwt.WithLeeway(cfg.Leeway)}
	if cfg.Audience != "" {
		opts = append(opts, jwt.WithAudience(cfg.Audience))
	}
	if cfg.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(cfg.Issuer))
	}
	return &Verifier{cfg: cfg, parser: jwt.NewParser(opts...)}
}

// key picks the key a token names in its kid header.
func (v *Verifier) key(t *jwt.Token) (any, error) {
	kid, _ := t.Header["kid"].(string)
	switch {
	case kid == "" || kid == v.cfg.KeyID:
		return v.cfg.Secret, nil
	case v.cfg.Previous[kid] != nil:
		return v.cfg.Previous[kid], nil
	}
	return nil, errors.New("unknown key id")
}

// Verify returns the identity a valid token carries. Errors wrap ErrInvalidToken and never
// quote the token.
func (v *Verifier) Verify(token string) (Identity, error) {
	id, _, err := v.VerifyExpiry(token)
	return id, err
}

// VerifyExpiry is Verify that also says until when the identity holds (exp plus the leeway),
// for connections that must end when their token does.
func (v *Verifier) VerifyExpiry(token string) (Identity, time.Time, error) {
	if len(token) > MaxTokenBytes {
		return Identity{}, time.Time{}, fmt.Errorf("%w: longer than %d bytes", ErrInvalidToken, MaxTokenBytes)
	}
	var c claims
	_, err := v.parser.ParseWithClaims(token, &c, v.key)
	if err != nil {
		return Identity{}, time.Time{}, fmt.Errorf("%w: %v", ErrInvalidToken, err)
	}
	id := Identity{Subject: c.Subject, Role: c.Role, Org: c.Org}
	if err := id.validate(); err != nil {
		return Identity{}, time.Time{}, err
	}
	return id, c.ExpiresAt.Time.Add(v.cfg.Leeway), nil
}

// Issue signs a token for id with the current key, its id, audience and issuer.
func (v *Verifier) Issue(id Identity, ttl time.Duration, now time.Time) (string, error) {
	return issue(v.cfg.Secret, v.cfg.KeyID, v.cfg.Audience, v.cfg.Issuer, id, ttl, now)
}

func (id Identity) validate() error {
	switch {
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
