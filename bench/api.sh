#!/usr/bin/env bash
# HTTP API injection against SMTP injection, in the same run (issue 13).
#
# N messages of about SIZE bytes go into sluice on loopback from CLIENTS
# concurrent clients, once over SMTP (smtp-source) and once over the HTTP
# API (cmd/apiload: POST /v1/messages, keep-alive, the structured form
# with a SIZE-byte text body, every answer must be 202), each into a fresh
# sluice that delivers to smtp-sink. The runs alternate, ROUNDS times
# each. Printed per run and as means: accepted msg/s (N / injector wall
# time), delivered msg/s (N / time until the sink counted N), peak RSS
# (VmHWM of the fresh sluice process), and the ratios api/smtp.
#
# Run as root (smtp-sink -u): bench/api.sh
# Environment: N=20000 CLIENTS=20 SIZE=2048 ROUNDS=2 TIMEOUT=600
set -euo pipefail

BENCH_REPO=$(cd "$(dirname "$0")/.." && pwd)
. "$BENCH_REPO/bench/lib/common.sh"

N=${N:-20000}
CLIENTS=${CLIENTS:-20}
SIZE=${SIZE:-2048}
ROUNDS=${ROUNDS:-2}
TIMEOUT=${TIMEOUT:-600}

need smtp-sink smtp-source ss awk sed
[ "$(id -u)" = 0 ] || die "run as root: smtp-sink -u needs it"

WORK=$(mktemp -d /tmp/sluice-api.XXXXXX)
[ "${KEEP:-0}" = 1 ] && echo "work dir kept: $WORK" >&2 || bench_on_exit "rm -rf $WORK"
BENCH_BIN=$WORK/bin
mkdir -p "$BENCH_BIN"
go_bin sluice
go_bin apiload

# One token for every run.
"$BENCH_BIN/sluice" token new >"$WORK/token.out" 2>/dev/null
head -n 1 "$WORK/token.out" >"$WORK/token"
HASH_LINE=$(sed -n 2p "$WORK/token.out")

SLUICE_PID=
sluice_hwm() { awk '/^VmHWM:/ { print $2 }' "/proc/$SLUICE_PID/status" 2>/dev/null || echo 0; }

# start_sluice DIR: a fresh sluice (the bench/throughput.toml defaults)
# with listen.api and the bench user; sets SMTP_PORT, API_PORT.
start_sluice() {
	local dir=$1
	mkdir -p "$dir"
	SMTP_PORT=$(free_port) API_PORT=$(free_port)
	sed -e "s|^data_dir = .*|data_dir = \"$dir/data\"|" \
		-e "s|^smtp = .*|smtp = \"127.0.0.1:$SMTP_PORT\"\napi = \"127.0.0.1:$API_PORT\"|" \
		-e "s|^host = .*|host = \"127.0.0.1:$SINK_PORT\"|" \
		"$BENCH_REPO/bench/throughput.toml" >"$dir/sluice.toml"
	printf '\n[[access.user]]\nname = "bench"\n%s\n' "$HASH_LINE" >>"$dir/sluice.toml"
	"$BENCH_BIN/sluice" serve --config "$dir/sluice.toml" >"$dir/log" 2>&1 &
	SLUICE_PID=$!
	bench_on_exit "kill_pid $SLUICE_PID"
	wait_port "$SMTP_PORT"
	wait_port "$API_PORT"
}

# run MODE ROUND: one run; sets ACC, DEL (msg/s) and RSS (MB).
run() {
	local mode=$1 round=$2 name="$1-$2" t0 now src tacc="" tdel="" peak=0 rss i=0
	start_sink "$name"
	start_sluice "$WORK/$name"
	t0=$(now_s)
	if [ "$mode" = smtp ]; then
		smtp-source -s "$CLIENTS" -l "$SIZE" -m "$N" -f bench@sender.test \
			-t user@dest.test "127.0.0.1:$SMTP_PORT" >"$WORK/$name.inject" 2>&1 &
	else
		"$BENCH_BIN/apiload" -url "http://127.0.0.1:$API_PORT/v1/messages" -token-file "$WORK/token" \
			-n "$N" -c "$CLIENTS" -size "$SIZE" >"$WORK/$name.inject" 2>&1 &
	fi
	src=$!
	bench_on_exit "kill_pid $src"
	while :; do
		now=$(now_s)
		if [ -z "$tacc" ] && ! kill -0 "$src" 2>/dev/null; then
			wait "$src" || { cat "$WORK/$name.inject" >&2; die "$name: the injector failed"; }
			tacc=$(awk -v a="$now" -v b="$t0" 'BEGIN { print a - b }')
		fi
		if [ -z "$tdel" ] && [ "$(sink_count)" -ge "$N" ]; then
			tdel=$(awk -v a="$now" -v b="$t0" 'BEGIN { print a - b }')
		fi
		[ -n "$tacc" ] && [ -n "$tdel" ] && break
		if ((i % 5 == 0)); then
			rss=$(sluice_hwm)
			((rss > peak)) && peak=$rss
		fi
		i=$((i + 1))
		awk -v a="$now" -v b="$t0" -v t="$TIMEOUT" 'BEGIN { exit !(a - b > t) }' &&
			die "$name: only $(sink_count)/$N delivered after ${TIMEOUT}s"
		sleep 0.1
	done
	rss=$(sluice_hwm)
	((rss > peak)) && peak=$rss
	ACC=$(fdiv "$N" "$tacc" 0) DEL=$(fdiv "$N" "$tdel" 0) RSS=$(fdiv "$peak" 1024 1)
	kill_pid "$SLUICE_PID"
	kill_pid "$SINK_PID"
	printf '%-8s round %d: accepted %6s msg/s, delivered %6s msg/s, peak RSS %6s MB\n' "$mode" "$round" "$ACC" "$DEL" "$RSS"
}

declare -A SUM_ACC SUM_DEL MAX_RSS
for mode in smtp api; do SUM_ACC[$mode]=0 SUM_DEL[$mode]=0 MAX_RSS[$mode]=0; done
echo "api vs smtp: $N messages of $SIZE bytes, $CLIENTS clients -> sluice -> smtp-sink, loopback, fsync on ($(nproc) CPUs), $ROUNDS rounds each, alternating"
for ((r = 1; r <= ROUNDS; r++)); do
	for mode in smtp api; do
		run "$mode" "$r"
		SUM_ACC[$mode]=$(awk -v a="${SUM_ACC[$mode]}" -v b="$ACC" 'BEGIN { print a + b }')
		SUM_DEL[$mode]=$(awk -v a="${SUM_DEL[$mode]}" -v b="$DEL" 'BEGIN { print a + b }')
		MAX_RSS[$mode]=$(awk -v a="${MAX_RSS[$mode]}" -v b="$RSS" 'BEGIN { print (b > a) ? b : a }')
	done
done
mean() { fdiv "$1" "$ROUNDS" 0; }
S_ACC=$(mean "${SUM_ACC[smtp]}") A_ACC=$(mean "${SUM_ACC[api]}")
S_DEL=$(mean "${SUM_DEL[smtp]}") A_DEL=$(mean "${SUM_DEL[api]}")
printf '%-22s %10s %10s %10s\n' "" smtp api api/smtp
printf '%-22s %10s %10s %10s\n' "accepted msg/s" "$S_ACC" "$A_ACC" "$(fdiv "$A_ACC" "$S_ACC" 2)"
printf '%-22s %10s %10s %10s\n' "delivered msg/s" "$S_DEL" "$A_DEL" "$(fdiv "$A_DEL" "$S_DEL" 2)"
printf '%-22s %10s %10s %10s\n' "peak RSS MB (max)" "${MAX_RSS[smtp]}" "${MAX_RSS[api]}" "$(fdiv "${MAX_RSS[api]}" "${MAX_RSS[smtp]}" 2)"
echo "accepted: N / the injector's wall time (smtp-source; apiload, which waits for every 202); delivered: N / time until smtp-sink counted N."
echo "peak RSS: VmHWM of a fresh sluice per run."
