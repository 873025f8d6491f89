#!/usr/bin/env bash
# Throughput of sluice with the content lint off and in warn mode (issue
# 16: warn must stay within 5 % of off), in the same run.
#
# Two loads, each into a fresh sluice (bench/throughput.toml: the embedded
# defaults, fsync on) that delivers to smtp-sink on loopback:
#   smtp2k      N messages of 2 KB from 20 smtp-source clients (the
#               bench/throughput.sh load);
#   news50k     N/2 newsletters of about 50 KB (text and HTML parts, a link
#               and an image per paragraph, one-click unsubscribe: clean
#               for lint, so every check runs and none logs) posted to the
#               HTTP API by cmd/apiload -newsletter from 20 clients.
# lint.mode off and warn alternate, ROUNDS times each. Printed per run and
# as means: accepted msg/s (messages / injector wall time), delivered
# msg/s (messages / time until the sink counted them), sluice CPU per
# message, peak RSS (VmHWM of the fresh sluice), and warn/off; for warn,
# the share of messages linted (sluice_lint_checked_total on listen.http:
# warn mode lints within lint.warn_budget; WARN_BUDGET sets it, default
# the config's default, 2%).
#
# Run as root (smtp-sink -u): bench/lint-throughput.sh
# Environment: N=20000 CLIENTS=20 ROUNDS=2 TIMEOUT=600 WARN_BUDGET= (e.g. 100%)
#   LOADS="smtp2k news50k" MODES="off warn" (the order of a round: MODES="warn
#   off" checks that warn/off does not come from running second)
set -euo pipefail

BENCH_REPO=$(cd "$(dirname "$0")/.." && pwd)
. "$BENCH_REPO/bench/lib/common.sh"
. "$BENCH_REPO/bench/lib/sluice.sh"

N=${N:-20000}
CLIENTS=${CLIENTS:-20}
ROUNDS=${ROUNDS:-2}
TIMEOUT=${TIMEOUT:-600}
WARN_BUDGET=${WARN_BUDGET:-}
LOADS=${LOADS:-smtp2k news50k}
MODES=${MODES:-off warn}

need smtp-sink smtp-source ss awk sed curl
[ "$(id -u)" = 0 ] || die "run as root: smtp-sink -u needs it"

bench_workdir lint
go_bin sluice
go_bin apiload

api_token

# sluice_cpu_ms: CPU time (user + system) the sluice process used so far,
# in ms: unlike msg/s it hardly moves with the load of other processes.
sluice_cpu_ms() {
	awk -v hz="$(getconf CLK_TCK)" '{ sub(/^.*\) /, ""); print ($12 + $13) * 1000 / hz }' "/proc/$SLUICE_PID/stat" 2>/dev/null || echo 0
}

# run LOAD MODE ROUND: one run, into a fresh sluice with lint.mode MODE;
# sets ACC, DEL (msg/s), RSS (MB), CPU (ms/msg) and FINDINGS.
run() {
	local load=$1 mode=$2 round=$3 name="$1-$2-$3" t0 count
	start_sink "$name"
	start_api_sluice "$WORK/$name" "" "[lint]" "mode = \"$mode\"" ${WARN_BUDGET:+"warn_budget = \"$WARN_BUDGET\""}
	t0=$(now_s)
	if [ "$load" = smtp2k ]; then
		count=$N
		smtp-source -s "$CLIENTS" -l 2048 -m "$count" -f bench@sender.test \
			-t user@dest.test "127.0.0.1:$SMTP_PORT" >"$WORK/$name.inject" 2>&1 &
	else
		count=$((N / 2))
		"$BENCH_BIN/apiload" -url "http://127.0.0.1:$API_PORT/v1/messages" -token-file "$WORK/token" \
			-n "$count" -c "$CLIENTS" -size 51200 -newsletter -from news@sender.test >"$WORK/$name.inject" 2>&1 &
	fi
	measure "$name" "$count" $! "$t0"
	CPU=$(fdiv "$(sluice_cpu_ms)" "$count" 3)
	FINDINGS=$(grep -c 'msg="lint: finding"' "$WORK/$name/log" || true)
	LINTED=-
	if [ "$mode" != off ]; then
		LINTED=$(curl -fsS "http://127.0.0.1:$HTTP_PORT/metrics" | awk -v n="$count" '/^sluice_lint_checked_total / { printf "%.1f%%", 100 * $2 / n }')
	fi
	kill_pid "$SLUICE_PID"
	kill_pid "$SINK_PID"
	printf '%-8s %-5s round %d: %6d msgs, accepted %6s msg/s, delivered %6s msg/s, sluice CPU %6s ms/msg, peak RSS %6s MB, lint log lines %s, linted %s\n' \
		"$load" "$mode" "$round" "$count" "$ACC" "$DEL" "$CPU" "$RSS" "$FINDINGS" "$LINTED"
}

declare -A SUM_ACC SUM_DEL SUM_CPU MAX_RSS
for k in smtp2k-off smtp2k-warn news50k-off news50k-warn; do SUM_ACC[$k]=0 SUM_DEL[$k]=0 SUM_CPU[$k]=0 MAX_RSS[$k]=0; done
echo "lint off vs warn (lint.warn_budget ${WARN_BUDGET:-2% (default)}): smtp2k = $N x 2 KB over SMTP (smtp-source), news50k = $((N / 2)) x ~50 KB newsletters over the HTTP API (apiload -newsletter); $CLIENTS clients -> sluice -> smtp-sink, loopback, fsync on ($(nproc) CPUs), $ROUNDS rounds each, alternating"
for ((r = 1; r <= ROUNDS; r++)); do
	for load in $LOADS; do
		for mode in $MODES; do
			run "$load" "$mode" "$r"
			k=$load-$mode
			SUM_ACC[$k]=$(awk -v a="${SUM_ACC[$k]}" -v b="$ACC" 'BEGIN { print a + b }')
			SUM_DEL[$k]=$(awk -v a="${SUM_DEL[$k]}" -v b="$DEL" 'BEGIN { print a + b }')
			SUM_CPU[$k]=$(awk -v a="${SUM_CPU[$k]}" -v b="$CPU" 'BEGIN { print a + b }')
			MAX_RSS[$k]=$(awk -v a="${MAX_RSS[$k]}" -v b="$RSS" 'BEGIN { print (b > a) ? b : a }')
		done
	done
done
mean() { fdiv "$1" "$ROUNDS" 0; }
printf '%-26s %10s %10s %10s\n' "" off warn warn/off
for load in $LOADS; do
	for what in accepted delivered; do
		if [ "$what" = accepted ]; then o=$(mean "${SUM_ACC[$load-off]}") w=$(mean "${SUM_ACC[$load-warn]}"); else o=$(mean "${SUM_DEL[$load-off]}") w=$(mean "${SUM_DEL[$load-warn]}"); fi
		printf '%-26s %10s %10s %10s\n' "$load $what msg/s" "$o" "$w" "$(fdiv "$w" "$o" 3)"
	done
	o=$(fdiv "${SUM_CPU[$load-off]}" "$ROUNDS" 3) w=$(fdiv "${SUM_CPU[$load-warn]}" "$ROUNDS" 3)
	printf '%-26s %10s %10s %10s\n' "$load sluice CPU ms/msg" "$o" "$w" "$(fdiv "$w" "$o" 3)"
	printf '%-26s %10s %10s %10s\n' "$load peak RSS MB (max)" "${MAX_RSS[$load-off]}" "${MAX_RSS[$load-warn]}" "$(fdiv "${MAX_RSS[$load-warn]}" "${MAX_RSS[$load-off]}" 3)"
done
echo "accepted: messages / the injector's wall time; delivered: messages / time until smtp-sink counted them. sluice CPU: user + system time of the sluice process / messages. peak RSS: VmHWM of a fresh sluice per run."
