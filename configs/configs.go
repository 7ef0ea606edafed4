// Package configs holds the default configuration file, embedded so that the server runs with
// its defaults from any working directory.
package configs

import _ "embed"

// Default is the content of chat-server.yaml: every key with its default value.
//
//go:embed chat-server.yaml
var Default []byte
