package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/convead/chat-server/server"
)

// errRefused makes token verify exit 1 after it has said why.
var errRefused = errors.New("token refused")

// tokenVerify checks a token with the server's configuration and store, so that an operator
// can tell why a client is turned away without reading the server's logs.
func tokenVerify(c *cli, fs *flag.FlagSet, args []string) error {
	path := configFlag(fs)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err}
	}
	if fs.NArg() != 1 {
		return usageError{errors.New("token verify takes exactly one TOKEN")}
	}
	tok := strings.TrimSpace(fs.Arg(0))
	cfg, secret, err := c.loadWithSecret(*path)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := server.OpenStore(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		return fmt.Errorf("%w (the embedded store cannot be opened while the server runs)", err)
	}
	defer st.Close(context.Background())
	v, err := server.Verifier(cfg, secret, server.OrgKeyCache(st), nil)
	if err != nil {
		return err
	}
	// The unverified header and claims only describe the token; the verdict is Verify's.
	var claims jwt.MapClaims
	if t, _, err := jwt.NewParser().ParseUnverified(tok, &claims); err == nil {
		fmt.Fprintf(c.stdout, "header: alg=%v kid=%v\nclaims: org=%v role=%v sub=%v exp=%v aud=%v iss=%v\n",
			show(t.Header["alg"]), show(t.Header["kid"]), show(claims["org"]), show(claims["role"]), show(claims["sub"]),
			expiry(claims), show(claims["aud"]), show(claims["iss"]))
	}
	id, until, err := v.VerifyExpiry(tok)
	if err != nil {
		fmt.Fprintf(c.stdout, "refused: %v\n", err)
		return errRefused
	}
	fmt.Fprintf(c.stdout, "accepted: %s until %s\n", id, until.UTC().Format(time.RFC3339))
	return nil
}

func expiry(c jwt.MapClaims) string {
	exp, err := c.GetExpirationTime()
	if err != nil || exp == nil {
		return "(none)"
	}
	return exp.UTC().Format(time.RFC3339)
}

// show prints an unverified claim, "-" when absent, clipped so that a hostile token cannot
// flood the terminal.
func show(v any) string {
	if v == nil {
		return "-"
	}
	s := fmt.Sprint(v)
	if len(s) > 80 {
		s = s[:80] + "…"
	}
	return s
}
