package auth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
)

// jwk is the part of a JSON Web Key (RFC 7517) that names an RS256 or ES256 public key.
type jwk struct {
	Kid string `json:"kid"`
	Kty string `json:"kty"`
	Alg string `json:"alg"`
	Use string `json:"use"`
	N   string `json:"n"`
	E   string `json:"e"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Y   string `json:"y"`
	D   string `json:"d"`
}

// ParseJWKS turns a JWKS document ({"keys":[…]}) into organisation keys with PEM public keys,
// so that an organisation can publish its verification keys in the usual form and the store
// keeps one shape. Only RSA and P-256 public keys are accepted: a symmetric ("oct") or private
// key in a document meant to be public is refused rather than stored.
func ParseJWKS(doc []byte) ([]OrgKey, error) {
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(doc, &set); err != nil {
		return nil, fmt.Errorf("JWKS: %w", err)
	}
	if len(set.Keys) == 0 {
		return nil, errors.New("JWKS: no keys")
	}
	out := make([]OrgKey, 0, len(set.Keys))
	seen := map[string]bool{}
	for i, raw := range set.Keys {
		var k jwk
		if err := json.Unmarshal(raw, &k); err != nil {
			return nil, fmt.Errorf("JWKS key %d: %w", i, err)
		}
		ok, err := k.orgKey()
		if err != nil {
			return nil, fmt.Errorf("JWKS key %d (kid %q): %w", i, clip(k.Kid), err)
		}
		if seen[ok.Kid] {
			return nil, fmt.Errorf("JWKS: kid %q appears twice", clip(ok.Kid))
		}
		seen[ok.Kid] = true
		out = append(out, ok)
	}
	return out, nil
}

func (k jwk) orgKey() (OrgKey, error) {
	if k.Kid == "" {
		return OrgKey{}, errors.New("kid is required")
	}
	if k.D != "" {
		return OrgKey{}, errors.New("a private key: publish only the public key")
	}
	if k.Use != "" && k.Use != "sig" {
		return OrgKey{}, fmt.Errorf("use %q is not sig", k.Use)
	}
	var pub any
	var alg string
	switch k.Kty {
	case "RSA":
		alg = RS256
		n, err := b64(k.N)
		if err != nil {
			return OrgKey{}, fmt.Errorf("n: %w", err)
		}
		e, err := b64(k.E)
		if err != nil || len(e) == 0 || len(e) > 4 {
			return OrgKey{}, errors.New("e must be a small base64url integer")
		}
		pub = &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}
	case "EC":
		alg = ES256
		if k.Crv != "P-256" {
			return OrgKey{}, fmt.Errorf("crv %q is not P-256", k.Crv)
		}
		x, errX := b64(k.X)
		y, errY := b64(k.Y)
		if errX != nil || errY != nil || len(x) != 32 || len(y) != 32 {
			return OrgKey{}, errors.New("x and y must be 32-byte base64url coordinates")
		}
		p, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append(append([]byte{4}, x...), y...))
		if err != nil {
			return OrgKey{}, fmt.Errorf("EC point: %w", err)
		}
		pub = p
	default:
		return OrgKey{}, fmt.Errorf("kty %q is not RSA or EC", k.Kty)
	}
	if k.Alg != "" && k.Alg != alg {
		return OrgKey{}, fmt.Errorf("alg %q does not fit kty %s (%s)", k.Alg, k.Kty, alg)
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return OrgKey{}, fmt.Errorf("encode public key: %w", err)
	}
	ok := OrgKey{Kid: k.Kid, Alg: alg, PublicKey: string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))}
	if err := ValidateOrgKey(ok); err != nil {
		return OrgKey{}, err
	}
	return ok, nil
}

func b64(s string) ([]byte, error) { return base64.RawURLEncoding.DecodeString(s) }
