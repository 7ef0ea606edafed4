// Package client holds the server's own Faye-compatible browser client, a readable ES2017
// script that defines window.Faye with Faye.Client like the official bundle. The faye package
// serves it at <mount>/client.js when no official bundle is configured; other pages of the
// server (e.g. a console) load it from there.
package client

import _ "embed"

//go:embed client.js
var script string

// Script returns the client's source. It is a string so that no caller can change it.
func Script() string { return script }
