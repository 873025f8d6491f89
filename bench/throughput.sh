#!/usr/bin/env bash
# Throughput of sluice, and of Postfix side by side when it is installed.
#
# 20 smtp-source clients inject N 2 KB messages into the relay on loopback;
# the relay delivers them to smtp-sink on loopback. fsync stays on (the
# default of both). Printed per relay: accepted msg/s (N / smtp-source wall
# time), delivered msg/s (N / time until the sink counted N messages), peak
# RSS, and fsyncs per message from a separate smaller run under strace.
#
# Run as root by hand (not in CI): bench/throughput.sh
# Environment: N=20000 CLIENTS=20 SIZE=2048 STRACE_N=2000 TIMEOUT=900
#              NO_POSTFIX=1 (skip Postfix) NO_SLUICE=1 (skip sluice)
set -euo pipefail

BENCH_REPO=$(cd "$(dirname "$0")/.." && pwd)
. "$BENCH_REPO/bench/lib/common.sh"
. "$BENCH_REPO/bench/lib/postfix.sh"

N=${N:-20000}
CLIENTS=${CLIENTS:-20}
SIZE=${SIZE:-2048}
STRACE_N=${STRACE_N:-2000}
TIMEOUT=${TIMEOUT:-900}

need smtp-sink smtp-source strace ss awk sed pgrep
[ "$(id -u)" = 0 ] || die "run as root: smtp-sink -u and the Postfix instance need it"

bench_workdir throughput

# load NAME PORT COUNT RSSFN: inject COUNT messages into 127.0.0.1:PORT and
# wait until the sink has them all. Sets ACC_S, DEL_S (seconds) and
# PEAK_KB (the largest value RSSFN printed while sampling).
load() {
	local name=$1 port=$2 count=$3 rssfn=$4
	local t0 tacc="" tdel="" src now rss i=0
	PEAK_KB=0
	t0=$(now_s)
	smtp-source -s "$CLIENTS" -l "$SIZE" -m "$count" -f bench@sender.test \
		-t user@dest.test "127.0.0.1:$port" >"$WORK/$name.source" 2>&1 &
	src=$!
	bench_on_exit "kill_pid $src"
	while :; do
		now=$(now_s)
		if [ -z "$tacc" ] && ! kill -0 "$src" 2>/dev/null; then
			wait "$src" || { cat "$WORK/$name.source" >&2; die "$name: smtp-source failed"; }
			tacc=$(awk -v a="$now" -v b="$t0" 'BEGIN { print a - b }')
		fi
		if [ "$(sink_count)" -ge "$count" ]; then
			tdel=$(awk -v a="$now" -v b="$t0" 'BEGIN { print a - b }')
			[ -n "$tacc" ] && break
		fi
		if ((i % 5 == 0)); then
			rss=$($rssfn)
			((rss > PEAK_KB)) && PEAK_KB=$rss
		fi
		i=$((i + 1))
		awk -v a="$now" -v b="$t0" -v t="$TIMEOUT" 'BEGIN { exit !(a - b > t) }' &&
			die "$name: only $(sink_count)/$count delivered after ${TIMEOUT}s"
		sleep 0.1
	done
	rss=$($rssfn)
	((rss > PEAK_KB)) && PEAK_KB=$rss
	ACC_S=$tacc DEL_S=$tdel
}

# --- sluice --------------------------------------------------------------

sluice_config() { # DIR SMTP_PORT SINK_PORT
	mkdir -p "$1"
	sed -e "s|^data_dir = .*|data_dir = \"$1/data\"|" \
		-e "s|^smtp = .*|smtp = \"127.0.0.1:$2\"|" \
		-e "s|^host = .*|host = \"127.0.0.1:$3\"|" \
		"$BENCH_REPO/bench/throughput.toml" >"$1/sluice.toml"
}

SLUICE_PID=
sluice_hwm() { awk '/^VmHWM:/ { print $2 }' "/proc/$SLUICE_PID/status" 2>/dev/null || echo 0; }

run_sluice() {
	go_bin sluice
	local port dir
	# Main run.
	start_sink sluice
	port=$(free_port) dir=$WORK/sluice
	sluice_config "$dir" "$port" "$SINK_PORT"
	"$BENCH_BIN/sluice" serve --config "$dir/sluice.toml" >"$dir/log" 2>&1 &
	SLUICE_PID=$!
	bench_on_exit "kill_pid $SLUICE_PID"
	wait_port "$port"
	load sluice "$port" "$N" sluice_hwm
	S_ACC=$(fdiv "$N" "$ACC_S" 0) S_DEL=$(fdiv "$N" "$DEL_S" 0)
	S_RSS=$(fdiv "$PEAK_KB" 1024 1)
	kill_pid "$SLUICE_PID"
	kill_pid "$SINK_PID"

	# fsync count: a smaller run under strace, which slows it down.
	start_sink sluice-strace
	port=$(free_port) dir=$WORK/sluice-strace
	sluice_config "$dir" "$port" "$SINK_PORT"
	strace -f -c -e trace=fsync,fdatasync -o "$dir/strace" \
		"$BENCH_BIN/sluice" serve --config "$dir/sluice.toml" >"$dir/log" 2>&1 &
	local st=$!
	bench_on_exit "kill_pid $st"
	wait_port "$port"
	SLUICE_PID=$(pgrep -P "$st" | head -n 1)
	load sluice-strace "$port" "$STRACE_N" sluice_hwm
	kill -TERM "$SLUICE_PID"
	wait "$st" || true
	S_FSYNC=$(fdiv "$(fsyncs "$dir/strace")" "$STRACE_N" 2)
	kill_pid "$SINK_PID"
}

# --- Postfix -------------------------------------------------------------

PF_DIR=
pf_rss() { pf_rss_kb "$PF_DIR"; }

run_postfix() {
	local port
	start_sink postfix
	port=$(free_port) PF_DIR=$WORK/postfix
	pf_create "$PF_DIR" "$port" "$SINK_PORT"
	pf_start "$PF_DIR"
	wait_port "$port"
	load postfix "$port" "$N" pf_rss
	P_ACC=$(fdiv "$N" "$ACC_S" 0) P_DEL=$(fdiv "$N" "$DEL_S" 0)
	P_RSS=$(fdiv "$PEAK_KB" 1024 1)
	pf_stop "$PF_DIR"
	kill_pid "$SINK_PID"

	# fsync count: master in the foreground under strace -f, so that every
	# Postfix process it forks is traced.
	start_sink postfix-strace
	port=$(free_port) PF_DIR=$WORK/postfix-strace
	pf_create "$PF_DIR" "$port" "$SINK_PORT"
	pf_allow_dir "$PF_DIR"
	strace -f -c -e trace=fsync,fdatasync -o "$PF_DIR/strace" \
		"$PF_BIN" -c "$PF_DIR/conf" start-fg >"$PF_DIR/start.log" 2>&1 &
	local st=$!
	bench_on_exit "pf_stop $PF_DIR"
	bench_on_exit "kill_pid $st"
	wait_port "$port"
	load postfix-strace "$port" "$STRACE_N" pf_rss
	"$PF_BIN" -c "$PF_DIR/conf" stop >/dev/null 2>&1 || true
	wait "$st" || true
	P_FSYNC=$(fdiv "$(fsyncs "$PF_DIR/strace")" "$STRACE_N" 2)
	kill_pid "$SINK_PID"
}

S_ACC=- S_DEL=- S_RSS=- S_FSYNC=-
P_ACC=- P_DEL=- P_RSS=- P_FSYNC=-
if [ "${NO_SLUICE:-0}" != 1 ]; then run_sluice; fi
if pf_available; then run_postfix; else echo "postfix not installed or NO_POSTFIX=1: sluice only" >&2; fi

ratio() { if [ "$1" = - ] || [ "$2" = - ]; then echo -; else fdiv "$1" "$2" 2; fi; }

echo "throughput: $N messages of $SIZE bytes, $CLIENTS smtp-source clients -> relay -> smtp-sink, loopback, fsync on ($(nproc) CPUs)"
printf '%-34s %10s %10s %12s %8s\n' "" sluice postfix sluice/pf target
printf '%-34s %10s %10s %12s %8s\n' "accepted msg/s" "$S_ACC" "$P_ACC" "$(ratio "$S_ACC" "$P_ACC")" ""
printf '%-34s %10s %10s %12s %8s\n' "delivered msg/s" "$S_DEL" "$P_DEL" "$(ratio "$S_DEL" "$P_DEL")" ">=2x"
printf '%-34s %10s %10s %12s %8s\n' "peak RSS MB" "$S_RSS" "$P_RSS" "" "<150"
printf '%-34s %10s %10s %12s %8s\n' "fsyncs/msg (strace, $STRACE_N msgs)" "$S_FSYNC" "$P_FSYNC" "" ""
echo "peak RSS: sluice = VmHWM of its process; postfix = peak of the summed Pss of its processes, sampled every 0.5 s."
echo "fsyncs/msg: fsync+fdatasync calls of a separate $STRACE_N-message run under strace -c -f (all processes), divided by $STRACE_N."
