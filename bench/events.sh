#!/usr/bin/env bash
# Delivery throughput with webhooks on against off (issue 13).
#
# 20 smtp-source clients inject N 2 KB messages into sluice on loopback;
# sluice delivers them to smtp-sink. The same run is made without event
# sinks ("off": no event is stored) and with one [[events.webhook]]
# ("on") pointing at cmd/hooksink, a receiver that verifies every
# signature and answers each POST after DELAY (a slow application). The
# runs alternate, ROUNDS times each. Printed: delivered msg/s of each
# run and their mean, the ratio on/off (target >= 0.90), and the event
# lag of the "on" runs (arrival at the receiver minus the event's time;
# target p99 <= 5 s) once the receiver has all 2N events (accepted +
# delivered).
#
# Run as root (smtp-sink -u): bench/events.sh
# Environment: N=20000 CLIENTS=20 SIZE=2048 ROUNDS=2 DELAY=50ms TIMEOUT=600
set -euo pipefail

BENCH_REPO=$(cd "$(dirname "$0")/.." && pwd)
. "$BENCH_REPO/bench/lib/common.sh"

N=${N:-20000}
CLIENTS=${CLIENTS:-20}
SIZE=${SIZE:-2048}
ROUNDS=${ROUNDS:-2}
DELAY=${DELAY:-50ms}
TIMEOUT=${TIMEOUT:-600}

need smtp-sink smtp-source ss awk sed curl
[ "$(id -u)" = 0 ] || die "run as root: smtp-sink -u needs it"

bench_workdir events
go_bin sluice
go_bin hooksink

# deliver NAME SMTP_PORT: inject N messages, wait until the sink has them;
# sets DEL_S (seconds from the first injection to the last delivery).
deliver() {
	local name=$1 port=$2 t0 now src
	t0=$(now_s)
	smtp-source -s "$CLIENTS" -l "$SIZE" -m "$N" -f bench@sender.test \
		-t user@dest.test "127.0.0.1:$port" >"$WORK/$name.source" 2>&1 &
	src=$!
	bench_on_exit "kill_pid $src"
	while [ "$(sink_count)" -lt "$N" ]; do
		now=$(now_s)
		awk -v a="$now" -v b="$t0" -v t="$TIMEOUT" 'BEGIN { exit !(a - b > t) }' &&
			die "$name: only $(sink_count)/$N delivered after ${TIMEOUT}s"
		sleep 0.1
	done
	now=$(now_s)
	DEL_S=$(awk -v a="$now" -v b="$t0" 'BEGIN { print a - b }')
	wait "$src" || { cat "$WORK/$name.source" >&2; die "$name: smtp-source failed"; }
}

# run MODE ROUND: one run; prints "MODE msg/s" and, for on, the lag stats.
run() {
	local mode=$1 round=$2 name="$1-$2" dir port hport spid hpid=
	dir=$WORK/$name
	mkdir -p "$dir"
	start_sink "$name"
	port=$(free_port)
	sed -e "s|^data_dir = .*|data_dir = \"$dir/data\"|" \
		-e "s|^smtp = .*|smtp = \"127.0.0.1:$port\"|" \
		-e "s|^host = .*|host = \"127.0.0.1:$SINK_PORT\"|" \
		"$BENCH_REPO/bench/throughput.toml" >"$dir/sluice.toml"
	if [ "$mode" = on ]; then
		hport=$(free_port)
		head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$dir/hook.secret"
		"$BENCH_BIN/hooksink" -addr "127.0.0.1:$hport" -secret-file "$dir/hook.secret" -delay "$DELAY" >"$dir/hooksink.log" 2>&1 &
		hpid=$!
		bench_on_exit "kill_pid $hpid"
		wait_port "$hport"
		cat >>"$dir/sluice.toml" <<EOT

[[events.webhook]]
url = "http://127.0.0.1:$hport/hook"
secret_file = "$dir/hook.secret"
EOT
	fi
	"$BENCH_BIN/sluice" serve --config "$dir/sluice.toml" >"$dir/log" 2>&1 &
	spid=$!
	bench_on_exit "kill_pid $spid"
	wait_port "$port"
	deliver "$name" "$port"
	local rate
	rate=$(fdiv "$N" "$DEL_S" 0)
	echo "$mode $rate" >>"$WORK/rates"
	if [ "$mode" = on ]; then
		local t0 ev=0
		t0=$(now_s)
		while :; do
			ev=$(curl -s "http://127.0.0.1:$hport/stats" | sed -n 's/.*"events":\([0-9]*\).*/\1/p')
			[ "${ev:-0}" -ge $((2 * N)) ] && break
			awk -v a="$(now_s)" -v b="$t0" -v t="$TIMEOUT" 'BEGIN { exit !(a - b > t) }' &&
				die "$name: the receiver has only $ev of $((2 * N)) events after ${TIMEOUT}s"
			sleep 0.2
		done
		curl -s "http://127.0.0.1:$hport/stats" >"$dir/stats.json"
		echo "$name $(cat "$dir/stats.json")" >>"$WORK/lags"
	fi
	kill_pid "$spid"
	[ -n "$hpid" ] && kill_pid "$hpid"
	kill_pid "$SINK_PID"
}

for r in $(seq "$ROUNDS"); do
	run off "$r"
	run on "$r"
done

mean() { awk -v m="$1" '$1 == m { s += $2; n++ } END { if (n) printf "%.0f\n", s / n; else print "-" }' "$WORK/rates"; }
each() { awk -v m="$1" '$1 == m { printf "%s%s", sep, $2; sep = " " } END { print "" }' "$WORK/rates"; }
OFF=$(mean off) ON=$(mean on)
echo "events: $N messages of $SIZE bytes, $CLIENTS smtp-source clients -> sluice -> smtp-sink, loopback, fsync on ($(nproc) CPUs), $ROUNDS rounds alternating"
printf '%-44s %10s %s\n' "delivered msg/s, webhooks off (no event stored)" "$OFF" "(runs: $(each off))"
printf '%-44s %10s %s\n' "delivered msg/s, webhook on (receiver ${DELAY}/POST)" "$ON" "(runs: $(each on))"
printf '%-44s %10s %s\n' "on/off" "$(fdiv "$ON" "$OFF" 3)" "(target >= 0.90)"
while read -r name json; do
	p50=$(echo "$json" | sed -n 's/.*"lag_p50_seconds":\([0-9.e-]*\).*/\1/p')
	p99=$(echo "$json" | sed -n 's/.*"lag_p99_seconds":\([0-9.e-]*\).*/\1/p')
	mx=$(echo "$json" | sed -n 's/.*"lag_max_seconds":\([0-9.e-]*\).*/\1/p')
	posts=$(echo "$json" | sed -n 's/.*"posts":\([0-9]*\).*/\1/p')
	bad=$(echo "$json" | sed -n 's/.*"bad_signatures":\([0-9]*\).*/\1/p')
	evs=$(echo "$json" | sed -n 's/.*"events":\([0-9]*\).*/\1/p')
	printf '%-44s p50 %.3f s, p99 %.3f s, max %.3f s (target p99 <= 5 s); %s events in %s POSTs, %s bad signatures\n' \
		"event lag, $name" "$p50" "$p99" "$mx" "$evs" "$posts" "$bad"
done <"$WORK/lags"
