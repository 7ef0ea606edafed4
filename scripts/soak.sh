#!/usr/bin/env bash
# The long soak: steady chat traffic with churning clients (400 visitor workers in 10
# shops, 40 MQTT managers) for a while, then checks that goroutines, heap, sessions, MQTT clients and duty
# entries return to where they started. CI runs the same test for 10 seconds.
#   scripts/soak.sh          # 10 minutes
#   scripts/soak.sh 30m
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-10m}
CHAT_SOAK_DURATION=$duration go test ./e2e -run '^TestSoak$' -count=1 -v -timeout 2h
