package config

import _ "embed"

// defaultYAML is the content of defaults.yaml: every key with its default value. It is embedded
// so that the server runs with its defaults from any working directory.
//
//go:embed defaults.yaml
var defaultYAML []byte
