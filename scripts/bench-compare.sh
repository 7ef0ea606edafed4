#!/usr/bin/env bash
# Side-by-side benchmark: the same load scenarios (cmd/chat-bench), on this machine, in one
# run, against the reference Faye server (npm faye 1.4.3, NodeAdapter, default options),
# Mosquitto (when installed) and this server, one after the other, each server started fresh
# per scenario and measured from /proc/<pid>. Writes BENCHMARKS.md at the repository root.
#
#   scripts/bench-compare.sh             default sizes (about 10 minutes)
#   SMALL=1 scripts/bench-compare.sh     tiny sizes: checks that everything works (a minute)
#
# Sizes (environment): IDLE_N, IDLE2_N, FANOUT_N, FANOUT_RATE, PAIRS_P, IDLE_MQTT_N, FANOUT_MQTT_N,
# CHAT_P, CHAT_RATE, HELD_N, DURATION. OUT=path writes the report elsewhere than BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ -n "${SMALL:-}" ]]; then
	: "${IDLE_N:=200}" "${IDLE2_N:=100}" "${FANOUT_N:=50}" "${PAIRS_P:=20}" "${IDLE_MQTT_N:=200}" "${FANOUT_MQTT_N:=50}"
	: "${CHAT_P:=20}" "${CHAT_RATE:=500}" "${HELD_N:=500}" "${DURATION:=2s}"
fi
: "${IDLE_N:=5000}" "${IDLE2_N:=2000}" "${FANOUT_N:=1000}" "${FANOUT_RATE:=66}" "${PAIRS_P:=500}" "${IDLE_MQTT_N:=5000}"
: "${FANOUT_MQTT_N:=1000}" "${CHAT_P:=500}" "${CHAT_RATE:=5000}" "${HELD_N:=10000}" "${DURATION:=10s}" "${OUT:=BENCHMARKS.md}"

# Every server and the load generator hold thousands of sockets (Go raises its own soft limit;
# Node and Mosquitto inherit this one).
ulimit -n "$(ulimit -Hn)"

work=$(mktemp -d)
server_pid=""
stop_server() {
	if [[ -n "$server_pid" ]]; then
		kill -TERM "$server_pid" 2>/dev/null || true
		wait "$server_pid" 2>/dev/null || true
		server_pid=""
	fi
}
trap 'stop_server; rm -rf "$work"' EXIT

echo "== building" >&2
go build -o "$work/chat-server" ./cmd/chat-server
go build -o "$work/chat-bench" ./cmd/chat-bench
(cd e2e/node && npm ci --silent --no-audit --no-fund)
bench="$work/chat-bench"
secret="bench-secret-$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')"

# wait_line FILE PATTERN: until the server logs PATTERN (10 s at most).
wait_line() {
	for _ in $(seq 100); do
		grep -q "$2" "$1" 2>/dev/null && return 0
		kill -0 "$server_pid" 2>/dev/null || { cat "$1" >&2; return 1; }
		sleep 0.1
	done
	echo "timed out waiting for $2 in $1" >&2
	cat "$1" >&2
	return 1
}

# Each start_* sets server_pid and the address flags of chat-bench in target.
start_faye() {
	node e2e/node/faye-reference.mjs 0 >"$work/faye.log" 2>&1 &
	server_pid=$!
	wait_line "$work/faye.log" '^listening'
	target=(-http "127.0.0.1:$(awk '/^listening/ {print $2}' "$work/faye.log")" -pid "$server_pid")
}

ours_env=(CHAT_HTTP_ADDR=127.0.0.1:0 CHAT_MQTT_ADDR=127.0.0.1:0 CHAT_LIMITS_CONNECTIONS_PER_IP=0
	CHAT_LIMITS_HANDSHAKES_PER_MINUTE_PER_IP=0 CHAT_LIMITS_POSTS_PER_MINUTE=0 CHAT_LIMITS_OPENS_PER_MINUTE_PER_IP=0
	CHAT_LIMITS_MQTT_CONNECTS_PER_MINUTE_PER_IP=0)
start_ours() {
	rm -rf "$work/data"
	mkdir "$work/data"
	env "${ours_env[@]}" CHAT_DATA_DIR="$work/data" CHAT_AUTH_JWT_SECRET="$secret" "$work/chat-server" >"$work/ours.log" 2>&1 &
	server_pid=$!
	wait_line "$work/ours.log" '"chat server ready"'
	addr() { grep "\"$1 listening\"" "$work/ours.log" | sed 's/.*"addr":"\([^"]*\)".*/\1/'; }
	target=(-http "$(addr http)" -mqtt "$(addr mqtt)" -pid "$server_pid" -secret "$secret")
}

start_mosquitto() {
	local port
	port=$("$bench" port)
	printf 'listener %s 127.0.0.1\nallow_anonymous true\n' "$port" >"$work/mosquitto.conf"
	"$mosquitto" -c "$work/mosquitto.conf" >"$work/mosquitto.log" 2>&1 &
	server_pid=$!
	for _ in $(seq 100); do
		(exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
		sleep 0.1
	done
	target=(-mqtt "127.0.0.1:$port" -pid "$server_pid")
}

# measure SHAPE LABEL ARGS...: start the server LABEL, run chat-bench ARGS against it, stop it.
results="$work/results.jsonl"
commands="$work/commands.txt"
measure() {
	local shape=$1 label=$2
	shift 2
	"start_$label"
	echo "== $shape: $label" >&2
	local cmd=("$@" -shape "$shape" -label "$label" "${target[@]}")
	printf 'chat-bench %s\n' "${cmd[*]}" | sed -E 's/-pid [0-9]+/-pid PID/; s/(-http|-mqtt) 127\.0\.0\.1:[0-9]+/\1 127.0.0.1:PORT/g; s/-secret [^ ]+/-secret SECRET/' >>"$commands"
	if ! "$bench" "${cmd[@]}" | tee -a "$results"; then
		echo "$shape against $label failed" | tee -a "$results" >&2
	fi
	stop_server
}

mosquitto=$(command -v mosquitto || true)
[[ -z "$mosquitto" && -x /usr/sbin/mosquitto ]] && mosquitto=/usr/sbin/mosquitto
started=$(date -u '+%Y-%m-%d %H:%M UTC')
commit="$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- . ":(exclude)$OUT" 2>/dev/null || echo ' (with local changes)')"

# Each shape runs against Faye and then at once against ours: a ratio compares runs seconds
# apart, not minutes (the pace of a shared VM drifts by a third within minutes).
for label in faye ours; do measure idle-faye $label idle "$IDLE_N"; done
for label in faye ours; do measure idle2-faye $label idle "$IDLE2_N"; done
for label in faye ours; do measure fanout-faye $label fanout "$FANOUT_N" -duration "$DURATION"; done
for label in faye ours; do measure fanout-faye-rate $label fanout "$FANOUT_N" -rate "$FANOUT_RATE" -duration "$DURATION"; done
for label in faye ours; do measure pairs-faye $label pairs "$PAIRS_P" -duration "$DURATION"; done
for label in faye ours; do measure held-faye $label idle "$HELD_N" -settle 1s; done
for label in mosquitto ours; do
	if [[ $label == mosquitto && -z "$mosquitto" ]]; then
		echo "mosquitto not installed: MQTT rows without a reference" >&2
		continue
	fi
	measure idle-mqtt $label idle "$IDLE_MQTT_N" -proto mqtt
	measure fanout-mqtt $label fanout "$FANOUT_MQTT_N" -proto mqtt -duration "$DURATION"
done
measure chat-max ours chat "$CHAT_P" -window 256 -duration "$DURATION"
measure chat ours chat "$CHAT_P" -rate "$CHAT_RATE" -window 256 -duration "$DURATION"

echo "== writing $OUT" >&2
mem_gib=$(awk '/^MemTotal/ {printf "%.1f", $2/1048576}' /proc/meminfo)
faye_version=$(node -p "require('./e2e/node/node_modules/faye/package.json').version")
mosquitto_version="mosquitto not installed"
[[ -n "$mosquitto" ]] && mosquitto_version=$({ "$mosquitto" -h 2>/dev/null || true; } | head -1)
{
	echo "# Benchmarks"
	echo
	if [[ -n "${SMALL:-}" ]]; then
		echo "> **Smoke run with tiny sizes (SMALL=1), on a machine busy with other work: these figures"
		echo "> only show that the comparison runs end to end. They are not the measurements.**"
		echo
	fi
	echo "The same scenarios, run by \`cmd/chat-bench\` on one machine in one run, against the reference"
	echo "Faye server (npm \`faye\` $faye_version, \`NodeAdapter\` with default options, on loopback), Mosquitto,"
	echo "and this server, one after the other; every server is started fresh for each scenario, and"
	echo "its CPU (utime+stime) and resident memory are read from \`/proc/<pid>\`. CPU seconds per"
	echo "delivery stay comparable although the load generator shares the cores."
	echo
	echo "- Date: $started, commit \`$commit\`"
	echo "- Machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(nproc) cores, $mem_gib GiB, Linux $(uname -r)"
	echo "- $(go version | cut -d' ' -f3), Node $(node --version), faye $faye_version, $mosquitto_version"
	echo "- Sizes: IDLE_N=$IDLE_N IDLE2_N=$IDLE2_N FANOUT_N=$FANOUT_N FANOUT_RATE=$FANOUT_RATE PAIRS_P=$PAIRS_P IDLE_MQTT_N=$IDLE_MQTT_N FANOUT_MQTT_N=$FANOUT_MQTT_N CHAT_P=$CHAT_P CHAT_RATE=$CHAT_RATE HELD_N=$HELD_N DURATION=$DURATION"
	echo
	echo "Rerun: \`${SMALL:+SMALL=1 }scripts/bench-compare.sh\` (builds both binaries, runs \`npm ci\` in \`e2e/node\`)."
	echo
	echo "## Results"
	echo
	"$bench" report "$results"
	echo
	echo "Latency is measured from a send timestamp in the payload to its receipt, on the one"
	echo "monotonic clock of the load generator; losses are messages expected and never received."
	echo "The fan-out and pairs publishers run flat out with a bounded window of messages in flight"
	echo "(fan-out: 20; pairs: 4 per client), or open loop at the set rate."
	echo
	echo "## How each scenario runs"
	echo
	echo "- **idle N / held N**: N websocket clients handshake, connect and subscribe to one channel and"
	echo "  are held; server RSS before and after gives bytes per client; then one message is"
	echo "  published to all of them and the receipts counted. MQTT: N clients, each subscribed to a topic."
	echo "- **fanout N**: N subscribers of one channel, one publisher."
	echo "- **pairs P**: 2P clients; each subscribes to its own channel and publishes to its peer's."
	echo "- **chat P** (this server only): P conversations opened through the REST API; each visitor"
	echo "  receives over Faye (websocket, \`/conversations/C\`), each manager over MQTT"
	echo "  (\`orgs/O/conversations/C\`, 50 conversations per manager); visitors and managers post"
	echo "  through \`POST /chat/conversation/C\` (stored with fsync before the reply), with at most 256"
	echo "  in flight: flat out (chat-max: the posts/s stored), then offered open loop at CHAT_RATE"
	echo "  posts/s (chat: the delivery p99 at that rate)."
	echo
	echo "On this server the Faye and MQTT bench clients are services of the organisation \`bench\`"
	echo "(JWT in \`ext.token\` of the handshake, or as the MQTT password), whose ACL allows any channel"
	echo "of the organisation; the chat scenario uses visitor and manager tokens. The reference"
	echo "servers are open. The payload is the same everywhere: \`{\"bench_t\":<ns>,\"seq\":<n>,\"pad\":\"xx…\"}\`"
	echo "(100 bytes)."
	echo
	echo "This server runs with the per-address limits off, since all the load comes from one address:"
	echo
	echo '```sh'
	echo "${ours_env[*]} CHAT_DATA_DIR=<fresh dir> CHAT_AUTH_JWT_SECRET=<secret> chat-server"
	echo "node e2e/node/faye-reference.mjs 0"
	echo "mosquitto -c <file: listener PORT 127.0.0.1, allow_anonymous true>"
	echo '```'
	echo
	echo "The commands run, in order:"
	echo
	echo '```sh'
	cat "$commands"
	echo '```'
} >"$OUT"
echo "wrote $OUT" >&2
