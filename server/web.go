package server

import (
	"context"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/convead/chat-server/auth"
	"github.com/convead/chat-server/chat"
	"github.com/convead/chat-server/config"
	"github.com/convead/chat-server/web"
)

// setupWeb mounts the console and demo pages (web.enabled) and sets up the demo organisation
// (config.DemoOn), whose tokens Start prints.
func setupWeb(ctx context.Context, app *fiber.App, cfg *config.Config, svc *chat.Service, issuer *auth.Verifier) (*web.Demo, error) {
	if !cfg.Web.Enabled {
		return nil, nil
	}
	if err := web.Register(app, web.Config{FayeMount: cfg.Faye.Mount}); err != nil {
		return nil, err
	}
	if !cfg.DemoOn() {
		return nil, nil
	}
	return web.SetupDemo(ctx, svc, issuer, time.Now())
}
