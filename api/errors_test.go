package api

import (
	"io"
	"log/slog"
	"net/http/httptest"
	"testing"

	"github.com/gofiber/fiber/v2"
)

// TestNotFoundIsNosniff: a path no route matches is answered by the error handler, which must
// forbid sniffing too.
func TestNotFoundIsNosniff(t *testing.T) {
	app := fiber.New(fiber.Config{ErrorHandler: ErrorHandler(slog.New(slog.NewTextHandler(io.Discard, nil)))})
	app.Get("/known", func(c *fiber.Ctx) error { return c.SendString("ok") })
	resp, err := app.Test(httptest.NewRequest("GET", "/nowhere", nil))
	if err != nil {
		t.Fatalf("request /nowhere: %v", err)
	}
	if resp.StatusCode != fiber.StatusNotFound {
		t.Fatalf("status %d, want 404", resp.StatusCode)
	}
	if got := resp.Header.Get(fiber.HeaderXContentTypeOptions); got != "nosniff" {
		t.Fatalf("X-Content-Type-Options = %q, want nosniff", got)
	}
}
