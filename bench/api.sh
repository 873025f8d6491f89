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
. "$BENCH_REPO/bench/lib/sluice.sh"

N=${N:-20000}
CLIENTS=${CLIENTS:-20}
SIZE=${SIZE:-2048}
ROUNDS=${ROUNDS:-2}
TIMEOUT=${TIMEOUT:-600}

need smtp-sink smtp-source ss awk sed
[ "$(id -u)" = 0 ] || die "run as root: smtp-sink -u needs it"

bench_workdir api
go_bin sluice
go_bin apiload

api_token

# run MODE ROUND: one run; sets ACC, DEL (msg/s) and RSS (MB).
run() {
	local mode=$1 round=$2 name="$1-$2" t0
	start_sink "$name"
	start_api_sluice "$WORK/$name"
	t0=$(now_s)
	if [ "$mode" = smtp ]; then
		smtp-source -s "$CLIENTS" -l "$SIZE" -m "$N" -f bench@sender.test \
			-t user@dest.test "127.0.0.1:$SMTP_PORT" >"$WORK/$name.inject" 2>&1 &
	else
		"$BENCH_BIN/apiload" -url "http://127.0.0.1:$API_PORT/v1/messages" -token-file "$WORK/token" \
			-n "$N" -c "$CLIENTS" -size "$SIZE" >"$WORK/$name.inject" 2>&1 &
	fi
	measure "$name" "$N" $! "$t0"
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
