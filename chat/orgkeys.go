package chat

import (
	"context"
	"time"

	"github.com/convead/chat-server/auth"
	"github.com/convead/chat-server/channel"
	"github.com/convead/chat-server/store"
)

// MaxOrgKeys bounds an organisation's keys: enough for a rotation or two, and a bound on what
// one verification may have to consider.
const MaxOrgKeys = 10

// OrgKeyInfo is what the API says of an organisation key. It has no field for key material,
// so that a secret cannot be returned by mistake.
type OrgKeyInfo struct {
	Kid       string    `json:"kid"`
	Alg       string    `json:"alg"`
	CreatedAt time.Time `json:"created_at"`
}

func keyInfo(k store.OrgKey) OrgKeyInfo {
	return OrgKeyInfo{Kid: k.Kid, Alg: k.Alg, CreatedAt: k.CreatedAt}
}

var errOrgKeyNotFound = newErr(KindNotFound, "key_not_found", "no such key")

// PutOrgKey sets the key kid of org: an HS256 secret, or an RS256 or ES256 public key in PEM.
// From then on tokens of org are verified against its keys only.
func (s *Service) PutOrgKey(ctx context.Context, id auth.Identity, org, kid, alg, secret, publicKey string) (OrgKeyInfo, error) {
	if err := s.requireAdmin(id, org); err != nil {
		return OrgKeyInfo{}, err
	}
	if !channel.ValidID(kid) {
		return OrgKeyInfo{}, invalidID("kid")
	}
	k := auth.OrgKey{Kid: kid, Alg: alg, PublicKey: publicKey}
	switch alg {
	case auth.HS256:
		if publicKey != "" {
			return OrgKeyInfo{}, Invalid("invalid_key", "an HS256 key has a secret, not a public_key")
		}
		k.Secret = []byte(secret)
	case auth.RS256, auth.ES256:
		if secret != "" {
			return OrgKeyInfo{}, Invalid("invalid_key", "an %s key has a public_key, not a secret", alg)
		}
	}
	if err := auth.ValidateOrgKey(k); err != nil {
		return OrgKeyInfo{}, Invalid("invalid_key", "%v", err)
	}
	stored, err := s.putOrgKeys(ctx, id, org, []auth.OrgKey{k})
	if err != nil {
		return OrgKeyInfo{}, err
	}
	return stored[0], nil
}

// PutOrgJWKS sets the public keys of a JWKS document (RS256 and ES256 keys, by kid) on org,
// for an organisation that publishes its keys that way; keys of org it does not name stay.
func (s *Service) PutOrgJWKS(ctx context.Context, id auth.Identity, org string, doc []byte) ([]OrgKeyInfo, error) {
	if err := s.requireAdmin(id, org); err != nil {
		return nil, err
	}
	keys, err := auth.ParseJWKS(doc)
	if err != nil {
		return nil, Invalid("invalid_key", "%v", err)
	}
	for _, k := range keys {
		if !channel.ValidID(k.Kid) {
			return nil, invalidID("kid")
		}
	}
	return s.putOrgKeys(ctx, id, org, keys)
}

// putOrgKeys stores checked keys, keeping org within MaxOrgKeys.
func (s *Service) putOrgKeys(ctx context.Context, id auth.Identity, org string, keys []auth.OrgKey) ([]OrgKeyInfo, error) {
	existing, err := s.store.OrgKeys(ctx, org)
	if err != nil {
		return nil, storeErr(err, nil)
	}
	kids := map[string]bool{}
	for _, k := range existing {
		kids[k.Kid] = true
	}
	for _, k := range keys {
		kids[k.Kid] = true
	}
	if len(kids) > MaxOrgKeys {
		return nil, Invalid("too_many_keys", "an organisation has at most %d keys: delete one first", MaxOrgKeys)
	}
	out := make([]OrgKeyInfo, 0, len(keys))
	for _, k := range keys {
		stored, err := s.store.PutOrgKey(ctx, store.OrgKey{OrgID: org, Kid: k.Kid, Alg: k.Alg, Secret: k.Secret, PublicKey: k.PublicKey, CreatedAt: s.now()})
		if err != nil {
			return nil, storeErr(err, nil)
		}
		s.log.Info("organisation key set", "org", org, "kid", k.Kid, "alg", k.Alg, "by", id.String())
		out = append(out, keyInfo(stored))
	}
	return out, nil
}

// OrgKeys lists the keys of org, without their material.
func (s *Service) OrgKeys(ctx context.Context, id auth.Identity, org string) ([]OrgKeyInfo, error) {
	if err := s.requireAdmin(id, org); err != nil {
		return nil, err
	}
	keys, err := s.store.OrgKeys(ctx, org)
	if err != nil {
		return nil, storeErr(err, nil)
	}
	out := make([]OrgKeyInfo, len(keys))
	for i, k := range keys {
		out[i] = keyInfo(k)
	}
	return out, nil
}

// DeleteOrgKey removes the key kid of org; tokens naming it are refused from then on. Deleting
// the last key returns the organisation to the server key.
func (s *Service) DeleteOrgKey(ctx context.Context, id auth.Identity, org, kid string) error {
	if err := s.requireAdmin(id, org); err != nil {
		return err
	}
	if err := s.store.DeleteOrgKey(ctx, org, kid); err != nil {
		return storeErr(err, errOrgKeyNotFound)
	}
	s.log.Info("organisation key deleted", "org", org, "kid", kid, "by", id.String())
	return nil
}
