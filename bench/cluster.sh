#!/usr/bin/env bash
# Cluster mode (issue 15): three sluice nodes, each injected with 700
# messages (2,100 in all, one recipient each), deliver their own mail to
# one fake MX (cmd/fakemx) that allows 3 sessions and 100 messages a
# second; ideal time 21 s. Side by side, one after the other:
#   cluster      the three nodes share one Redis ([cluster], defaults)
#   independent  the same three nodes without [cluster]
#   postfix      one Postfix instance sending all 2,100 (when installed)
#   kill-9       cluster mode; one node is killed with SIGKILL after 500
#                deliveries and restarted 5 s later on its data: its slots
#                come free within lease_ttl, nothing is lost
#   redis-restart  cluster mode; redis-server is killed after 500
#                deliveries and restarted empty 3 s later
# and the cost of the shared state: Redis round trips per delivered
# message (from sluice_cluster_redis_round_trips_total), and one node
# alone sending 2,100 to an unlimited sink with cluster mode on and off.
# Every delivery figure comes from the fake MX's stats. The table goes to
# stdout and to bench/cluster-last-run.txt.
#
# Run as root by hand (not in CI): bench/cluster.sh
# Needs: go, redis-server, curl, jq, ss; Postfix for its column.
# Environment: EACH=700 CAP=180 (seconds per setup) NO_POSTFIX=1
#              SETUPS="cluster independent postfix kill-9 redis-restart single"
set -euo pipefail

BENCH_REPO=$(cd "$(dirname "$0")/.." && pwd)
. "$BENCH_REPO/bench/lib/common.sh"
. "$BENCH_REPO/bench/lib/postfix.sh"

EACH=${EACH:-700}
CAP=${CAP:-180}
SETUPS=${SETUPS:-cluster independent postfix kill-9 redis-restart single}
OUT=${OUT:-$BENCH_REPO/bench/cluster-last-run.txt}
TOTAL=$((3 * EACH))

need redis-server curl jq ss awk sed
[ "$(id -u)" = 0 ] || [ "${NO_POSTFIX:-0}" = 1 ] || die "run as root for the Postfix instance (or NO_POSTFIX=1)"

WORK=$(mktemp -d /tmp/sluice-cluster.XXXXXX)
chmod 755 "$WORK"
[ "${KEEP:-0}" = 1 ] && echo "work dir kept: $WORK" >&2 || bench_on_exit "rm -rf $WORK"
BENCH_BIN=$WORK/bin
mkdir -p "$BENCH_BIN"
go_bin fakemx
go_bin sluice-inject
go_bin sluice

REDIS_PID=
REDIS_PORT=
# redis_start: an empty redis-server on REDIS_PORT (picked once), no
# persistence.
redis_start() {
	[ -n "$REDIS_PORT" ] || REDIS_PORT=$(free_port)
	redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no \
		--loglevel warning >>"$WORK/redis.log" 2>&1 &
	REDIS_PID=$!
	bench_on_exit "kill_pid $REDIS_PID"
	wait_port "$REDIS_PORT"
}
redis_kill() { kill -9 "$REDIS_PID" 2>/dev/null || true; wait "$REDIS_PID" 2>/dev/null || true; }

MX_PID=
MX_HTTP=
MX_ADDR=
# mx_start DIR [flags...]: the fake MX with live stats.
mx_start() {
	local dir=$1
	shift
	mkdir -p "$dir"
	"$BENCH_BIN/fakemx" -addr 127.0.0.1:0 -http 127.0.0.1:0 "$@" >"$dir/mx.out" 2>"$dir/mx.err" &
	MX_PID=$!
	bench_on_exit "kill_pid $MX_PID"
	for _ in $(seq 400); do [ "$(wc -l <"$dir/mx.out")" -ge 2 ] && break; sleep 0.05; done
	MX_ADDR=$(sed -n 1p "$dir/mx.out")
	MX_HTTP=$(sed -n 's/^http //p' "$dir/mx.out")
	[ -n "$MX_ADDR" ] && [ -n "$MX_HTTP" ] || { cat "$dir/mx.err" >&2; die "fake MX did not start"; }
}
mx_stat() { curl -fsS "http://$MX_HTTP/stats" | jq -r ".stats.$1" 2>/dev/null || echo 0; }
mx_done() { curl -fsS "http://$MX_HTTP/stats" | jq '.stats.delivered - .stats.duplicates' 2>/dev/null || echo 0; }

# node_config DIR SMTP HTTP MXADDR NODE CLUSTER(0|1)
node_config() {
	local dir=$1 smtp=$2 http=$3 mx=$4 node=$5 cl=$6
	mkdir -p "$dir"
	cat >"$dir/sluice.toml" <<EOF
# bench/cluster.sh: the embedded defaults (max_concurrency 20, no rate cap,
# fsync on) with the time constants of bench/throttle scaled down.
hostname = "$node.bench.test"
data_dir = "$dir/data"

[listen]
smtp = "127.0.0.1:$smtp"
http = "127.0.0.1:$http"

[[delivery.route]]
domain = "dest.test"
host = "$mx"
tls = "none"

[policy]
retry_base = "1s"
retry_max = "10s"
greylist_default = "6s"

[auth]
mode = "off"

[log]
level = "${LOGLEVEL:-info}"
EOF
	if [ "$cl" = 1 ]; then
		cat >>"$dir/sluice.toml" <<EOF

[cluster]
redis = "redis://127.0.0.1:$REDIS_PORT/0"
node_id = "$node"
prefix = "bench:$(basename "$(dirname "$dir")"):"
EOF
	fi
}

declare -A NODE_PID NODE_SMTP NODE_HTTP NODE_DIR
# node_start I: start node I of its config.
node_start() {
	local i=$1
	"$BENCH_BIN/sluice" serve --config "${NODE_DIR[$i]}/sluice.toml" >>"${NODE_DIR[$i]}/relay.log" 2>&1 &
	NODE_PID[$i]=$!
	bench_on_exit "kill_pid ${NODE_PID[$i]}"
	wait_port "${NODE_SMTP[$i]}" 30
}
node_hwm() { awk '/^VmHWM:/ { print $2 }' "/proc/${NODE_PID[$1]}/status" 2>/dev/null || echo 0; }
node_trips() {
	curl -fsS "http://127.0.0.1:${NODE_HTTP[$1]}/metrics" 2>/dev/null |
		awk '/^sluice_cluster_redis_round_trips_total/ { print $2; found=1 } END { if (!found) print 0 }'
}

# persec STATS T0: deliveries per second since T0 (epoch seconds), from
# the fake MX's per-recipient delivery times, on one line.
persec() {
	jq -r '.stats.recipients[] | .delivered | select(startswith("0001") | not) |
		capture("^(?<s>[^.Z+]+)(?<f>\\.[0-9]+)?") | ((.s + "Z") | fromdateiso8601) + ((.f // "0") | tonumber)' "$1" |
		awk -v t0="$2" '{ s = int($1 - t0); c[s]++; if (s > m) m = s } END { for (i = 0; i <= m; i++) printf "%d ", c[i] + 0; print "" }'
}

# RESULT_* of the last run
RES_TIME= RES_DELIV= RES_REFUSED= RES_RSS= RES_DUP= RES_TRIPS= RES_MAXC= RES_NOTE=

# fleet SETUP CLUSTER(0|1) MXFLAGS...: three nodes, EACH messages each.
fleet() {
	local setup=$1 cl=$2
	shift 2
	local dir=$WORK/$setup
	mx_start "$dir" "$@"
	local i
	for i in 1 2 3; do
		NODE_DIR[$i]=$dir/node$i
		NODE_SMTP[$i]=$(free_port)
		NODE_HTTP[$i]=$(free_port)
		node_config "${NODE_DIR[$i]}" "${NODE_SMTP[$i]}" "${NODE_HTTP[$i]}" "$MX_ADDR" "node$i" "$cl"
		node_start "$i"
	done
	local t0 inj=() peak=0 h done_n event_done=0 killed_at="" restarted=0
	t0=$(now_s)
	for i in 1 2 3; do
		"$BENCH_BIN/sluice-inject" -addr "127.0.0.1:${NODE_SMTP[$i]}" -n "$EACH" -c 10 -size 2048 \
			-from "bench$i@sender.test" -to "user%d.n$i@dest.test" -runid "n$i" -deadline "${CAP}s" \
			>"$dir/inject$i.out" 2>"$dir/inject$i.err" &
		inj+=($!)
	done
	for p in "${inj[@]}"; do bench_on_exit "kill_pid $p"; done
	while :; do
		done_n=$(mx_done)
		for i in 1 2 3; do
			h=$(node_hwm "$i")
			((h > peak)) && peak=$h
		done
		case $setup in
		kill-9)
			if [ -z "$killed_at" ] && [ "${done_n:-0}" -ge 500 ]; then
				kill -9 "${NODE_PID[2]}"
				wait "${NODE_PID[2]}" 2>/dev/null || true
				killed_at=$(now_s)
			fi
			if [ -n "$killed_at" ] && [ "$restarted" = 0 ] &&
				awk -v a="$(now_s)" -v b="$killed_at" 'BEGIN { exit !(a - b > 5) }'; then
				# Its injector retries what was not acknowledged.
				node_start 2
				restarted=1
			fi
			;;
		redis-restart)
			if [ -z "$killed_at" ] && [ "${done_n:-0}" -ge 500 ]; then
				redis_kill
				killed_at=$(now_s)
			fi
			if [ -n "$killed_at" ] && [ "$restarted" = 0 ] &&
				awk -v a="$(now_s)" -v b="$killed_at" 'BEGIN { exit !(a - b > 3) }'; then
				redis_start
				restarted=1
			fi
			;;
		esac
		[ "${done_n:-0}" -ge "$TOTAL" ] && break
		awk -v a="$(now_s)" -v b="$t0" -v c="$CAP" 'BEGIN { exit !(a - b > c) }' && break
		sleep 0.2
	done
	RES_TIME=$(awk -v a="$(now_s)" -v b="$t0" 'BEGIN { printf "%.1f", a - b }')
	RES_DELIV=$(mx_done)
	RES_REFUSED=$(mx_stat refused_421)
	RES_DUP=$(mx_stat duplicates)
	RES_MAXC=$(mx_stat max_concurrent)
	RES_RSS=$((peak / 1024))
	local trips=0 t
	for i in 1 2 3; do
		t=$(node_trips "$i")
		trips=$(awk -v a="$trips" -v b="$t" 'BEGIN { print a + b }')
	done
	RES_TRIPS=$trips
	# The fake MX's stats (every recipient's delivery time: the per-second
	# counts in PERSEC) are kept in the work dir.
	curl -fsS "http://$MX_HTTP/stats" >"$dir/mx-stats.json" 2>/dev/null || true
	persec "$dir/mx-stats.json" "$t0" >"$dir/persec.txt" || true
	for i in 1 2 3; do kill_pid "${NODE_PID[$i]}"; done
	kill_pid "$MX_PID"
}

# pf_fleet: one Postfix instance sending all TOTAL.
pf_fleet() {
	local dir=$WORK/postfix
	mx_start "$dir" -sessions 3 -rate 100
	local port
	port=$(free_port)
	pf_create "$dir/pf" "$port" "${MX_ADDR##*:}" "minimal_backoff_time = 1s" "maximal_backoff_time = 10s" "queue_run_delay = 1s"
	pf_start "$dir/pf"
	wait_port "$port"
	local t0 peak=0 h
	t0=$(now_s)
	"$BENCH_BIN/sluice-inject" -addr "127.0.0.1:$port" -n "$TOTAL" -c 20 -size 2048 -from bench@sender.test \
		-to 'user%d@dest.test' -deadline "${CAP}s" >"$dir/inject.out" 2>"$dir/inject.err" &
	local inj=$!
	bench_on_exit "kill_pid $inj"
	while :; do
		h=$(pf_rss_kb "$dir/pf")
		((h > peak)) && peak=$h
		[ "$(mx_done)" -ge "$TOTAL" ] && break
		awk -v a="$(now_s)" -v b="$t0" -v c="$CAP" 'BEGIN { exit !(a - b > c) }' && break
		sleep 0.2
	done
	RES_TIME=$(awk -v a="$(now_s)" -v b="$t0" 'BEGIN { printf "%.1f", a - b }')
	RES_DELIV=$(mx_done) RES_REFUSED=$(mx_stat refused_421) RES_DUP=$(mx_stat duplicates) RES_MAXC=$(mx_stat max_concurrent)
	RES_RSS=$((peak / 1024)) RES_TRIPS=0
	pf_stop "$dir/pf"
	kill_pid "$MX_PID"
}

# single CLUSTER(0|1): one node alone, TOTAL messages, unlimited sink;
# prints delivered msg/s.
single() {
	local cl=$1 dir=$WORK/single-$1
	mx_start "$dir"
	NODE_DIR[1]=$dir/node1 NODE_SMTP[1]=$(free_port) NODE_HTTP[1]=$(free_port)
	node_config "${NODE_DIR[1]}" "${NODE_SMTP[1]}" "${NODE_HTTP[1]}" "$MX_ADDR" "solo" "$cl"
	node_start 1
	local t0
	t0=$(now_s)
	"$BENCH_BIN/sluice-inject" -addr "127.0.0.1:${NODE_SMTP[1]}" -n "$TOTAL" -c 20 -size 2048 -from bench@sender.test \
		-to 'user%d@dest.test' -deadline "${CAP}s" >"$dir/inject.out" 2>"$dir/inject.err"
	while [ "$(mx_done)" -lt "$TOTAL" ]; do
		awk -v a="$(now_s)" -v b="$t0" -v c="$CAP" 'BEGIN { exit !(a - b > c) }' && break
		sleep 0.1
	done
	local secs
	secs=$(awk -v a="$(now_s)" -v b="$t0" 'BEGIN { print a - b }')
	RES_TRIPS=$(node_trips 1)
	RES_TIME=$(fdiv "$(mx_done)" "$secs" 0)
	kill_pid "${NODE_PID[1]}"
	kill_pid "$MX_PID"
}

row() { # NAME
	printf '%-14s %9s %8s %6s %9s %8s %5s %5s %8s\n' "$1" "$RES_DELIV/$TOTAL" "$RES_TIME" \
		"$(fdiv "$RES_TIME" 21 2)" "$RES_REFUSED" "$(fdiv "$RES_REFUSED" "$RES_DELIV" 3)" "$RES_MAXC" "$RES_DUP" "$RES_RSS"
	if [ "$RES_TRIPS" != 0 ]; then
		RT_NOTES+=("$1: $(fdiv "$RES_TRIPS" "$RES_DELIV" 2) Redis round trips per delivered message ($RES_TRIPS in all, heartbeats included)")
	fi
}

main() {
	# main runs in the pipeline's subshell, which does not inherit the
	# EXIT trap: its own stops what it started.
	trap bench_cleanup EXIT
	RT_NOTES=()
	echo "cluster mode, $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs, $(redis-server --version | awk '{print $3}'), Postfix $(postconf -dh mail_version 2>/dev/null || echo absent)"
	echo "3 nodes x $EACH messages (one recipient each) -> one fake MX: -sessions 3 -rate 100 (per 1 s window); ideal $((TOTAL / 100)) s"
	echo "sluice: defaults (learned limits, max_concurrency 20, no rate cap), retry_base 1s, retry_max 10s; [cluster] defaults (lease_ttl 15s, heartbeat 2s)"
	echo
	printf '%-14s %9s %8s %6s %9s %8s %5s %5s %8s\n' setup delivered "time(s)" xideal "421s" "421/del" maxc dup "rss(MB)"
	local s
	for s in $SETUPS; do
		echo "running $s..." >&2
		case $s in
		cluster) redis_start; fleet cluster 1 -sessions 3 -rate 100; redis_kill; row cluster ;;
		independent) fleet independent 0 -sessions 3 -rate 100; row independent ;;
		postfix) if pf_available; then pf_fleet; row "postfix (1x)"; fi ;;
		kill-9) redis_start; fleet kill-9 1 -sessions 3 -rate 100; redis_kill; row kill-9 ;;
		redis-restart) redis_start; fleet redis-restart 1 -sessions 3 -rate 100; redis_kill; row redis-restart ;;
		single)
			# On and off alternate, SINGLE_REPS times each (the machine
			# may be shared): the medians are compared.
			local ons=() offs=() trips=0 r
			for ((r = 0; r < ${SINGLE_REPS:-3}; r++)); do
				redis_start
				single 1
				ons+=("$RES_TIME")
				trips=$RES_TRIPS
				redis_kill
				single 0
				offs+=("$RES_TIME")
			done
			local on off
			on=$(printf '%s\n' "${ons[@]}" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }')
			off=$(printf '%s\n' "${offs[@]}" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }')
			SINGLE_NOTE="one node alone, $TOTAL messages to an unlimited fake MX, median of ${SINGLE_REPS:-3} alternating runs: $on msg/s with cluster mode (${ons[*]}), $off msg/s without (${offs[*]}): $(fdiv "$on" "$off" 2)x; $(fdiv "$trips" "$TOTAL" 2) round trips per message"
			;;
		esac
	done
	echo
	echo "targets (cluster): time <= 1.3x ideal ($(fdiv $((TOTAL * 13)) 1000 1) s), <= 0.05 421s per delivery; independent nodes expected several times more 421s"
	echo "rss: the largest node's peak (VmHWM); Postfix: summed Pss of its processes"
	local n
	for n in "${RT_NOTES[@]}"; do echo "$n"; done
	[ -n "${SINGLE_NOTE:-}" ] && echo "$SINGLE_NOTE"
	return 0
}

main | tee "$OUT"
