#!/usr/bin/env bash
# The whole test suite: what CI runs on a clean clone, and what a developer runs before pushing.
# Needs only Go (and, for the browser and Node suites, what this script installs).
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== go vet"
go vet ./...

echo "== gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
  echo "gofmt would change: $unformatted" >&2
  exit 1
fi

echo "== go test -race"
go test -race -count=1 -timeout 15m ./...

echo "== Node end-to-end suite (official faye client; its browser bundle and our own client in Chromium)"
# Chromium comes from Debian; playwright-core drives it (it downloads no browser of its own).
if [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "Chromium is missing: sudo apt-get install chromium" >&2
    exit 1
  fi
fi
bin_dir=$(mktemp -d)
trap 'rm -rf "$bin_dir"' EXIT
go build -o "$bin_dir/chat-server" ./cmd/chat-server
(cd e2e/node && npm ci --no-audit --no-fund --loglevel=error && CHAT_SERVER_BIN="$bin_dir/chat-server" npm test)

# Each fuzz target runs briefly on top of its committed corpus (testdata/fuzz); run one for
# longer with: go test ./PKG -run '^$' -fuzz NAME -fuzztime 10m
# The bound is a count of executions, not a duration: a time bound makes the fuzzing
# coordinator fail now and then with "context deadline exceeded" on a busy machine.
fuzztime=${FUZZTIME:-200000x}
for target in channel:FuzzTopicMapping channel:FuzzValidReference auth:FuzzVerify api:FuzzDecodeParams api:FuzzSplitObject faye/bayeux:FuzzDecodeBatch faye/bayeux:FuzzDecodeBatchReference faye/bayeux:FuzzEncodeBatchReference faye/bayeux:FuzzAppendJSONTextReference faye/wsframe:FuzzParse faye/wsframe:FuzzAssemble faye:FuzzOutputIsUTF8 cluster/subject:FuzzMapping; do
  pkg=${target%%:*} name=${target##*:}
  echo "== fuzz $name ($fuzztime)"
  go test "./$pkg" -run '^$' -fuzz "^$name\$" -fuzztime "$fuzztime"
done
