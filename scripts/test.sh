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

# Each fuzz target runs briefly on top of its committed corpus (testdata/fuzz); run one for
# longer with: go test ./PKG -run '^$' -fuzz NAME -fuzztime 10m
fuzztime=${FUZZTIME:-10s}
for target in channel:FuzzTopicMapping auth:FuzzVerify api:FuzzDecodeParams; do
  pkg=${target%%:*} name=${target##*:}
  echo "== fuzz $name ($fuzztime)"
  go test "./$pkg" -run '^$' -fuzz "^$name\$" -fuzztime "$fuzztime"
done
