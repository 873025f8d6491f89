#!/usr/bin/env bash
# Memory of sluice with large messages: this tree, a baseline build of an
# older commit, and Postfix side by side when it is installed.
#
# Two scenarios, each for every relay:
#   one       1 message of SIZE bytes, in and out;
#   parallel  PARALLEL messages of SIZE bytes submitted at once by
#             PARALLEL smtp-source sessions, delivered over PARALLEL
#             connections to an smtp-sink that waits DATA_DELAY seconds
#             before answering DATA, so that every delivery is in flight
#             at the same time (a slow receiver).
# The relay's /proc/PID/status is sampled ten times a second. Printed per
# relay: peak RssAnon (anonymous memory: heap, stacks; what the body
# copies cost), VmHWM (peak of the whole resident set, file-backed pages
# such as bbolt's memory map included) and peak RssFile. For Postfix, a
# set of processes, the RssAnon and Pss of all of them are summed.
#
# sluice signs every message with an Ed25519 DKIM key (auth.mode "off":
# no DNS), as a relay in production does (DKIM=0 turns it off); Postfix
# has no DKIM signer of its own (that would be OpenDKIM, a milter), so its
# figures are without one.
#
# Run as root by hand (not in CI): bench/memory.sh
# Environment: SIZE=25165824 PARALLEL=40 DATA_DELAY=10 TIMEOUT=600 DKIM=1
#              BASE=77e9a90 (the baseline commit; BASE= skips it)
#              SCENARIOS="one parallel" NO_POSTFIX=1 NO_SLUICE=1 KEEP=1
set -euo pipefail

BENCH_REPO=$(cd "$(dirname "$0")/.." && pwd)
. "$BENCH_REPO/bench/lib/common.sh"
. "$BENCH_REPO/bench/lib/postfix.sh"

SIZE=${SIZE:-25165824}
PARALLEL=${PARALLEL:-40}
DATA_DELAY=${DATA_DELAY:-10}
TIMEOUT=${TIMEOUT:-600}
BASE=${BASE-77e9a90}
SCENARIOS=${SCENARIOS:-one parallel}
DKIM=${DKIM:-1}

need smtp-sink smtp-source ss awk sed pgrep tar
[ "$(id -u)" = 0 ] || die "run as root: smtp-sink -u and the Postfix instance need it"

bench_workdir memory

# --- sampling --------------------------------------------------------------

# sample_sluice PID OUT: ten times a second, "RssAnon RssFile VmHWM" (kB)
# of PID, until PID exits or the sampler is stopped.
sample_sluice() {
	local pid=$1 out=$2
	set +e # a process that exits between two reads must not stop the sampler
	while kill -0 "$pid" 2>/dev/null; do
		awk '/^RssAnon:/ { a = $2 } /^RssFile:/ { f = $2 } /^VmHWM:/ { h = $2 }
			END { if (h) print a, f, h }' "/proc/$pid/status" >>"$out" 2>/dev/null || true
		sleep 0.1
	done
}

# sample_postfix DIR OUT: ten times a second, the summed RssAnon and Pss
# (kB) of the instance's master and its children. (Their RssFile would
# count the shared libraries once per process: not sampled.)
sample_postfix() {
	local dir=$1 out=$2 pid pids
	set +e # the pid file appears late; processes come and go
	while :; do
		pid=$(pf_master_pid "$dir")
		[ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || { sleep 0.1; continue; }
		pids="$pid $(pgrep -P "$pid" | tr '\n' ' ')"
		(
			for p in $pids; do
				cat "/proc/$p/status" "/proc/$p/smaps_rollup" 2>/dev/null
			done
		) | awk '/^RssAnon:/ { a += $2 } /^Pss:/ { p += $2 } END { print a, 0, p }' >>"$out"
		sleep 0.1
	done
}

# peak FILE COLUMN: the largest value of a column of a sample file, in MB
# ("-" without samples).
peak() {
	[ -s "$1" ] || { echo -; return; }
	awk -v c="$2" '$c > m { m = $c } END { printf "%.1f\n", m / 1024 }' "$1"
}

# --- load ------------------------------------------------------------------

# load NAME PORT COUNT: COUNT messages of SIZE bytes, COUNT sessions at
# once, then wait until the sink has them all.
load() {
	local name=$1 port=$2 count=$3 t0
	t0=$(now_s)
	smtp-source -s "$count" -l "$SIZE" -m "$count" -f bench@sender.test \
		-t user@dest.test "127.0.0.1:$port" >"$WORK/$name.source" 2>&1 ||
		{ cat "$WORK/$name.source" >&2; die "$name: smtp-source failed"; }
	while [ "$(sink_count)" -lt "$count" ]; do
		awk -v a="$(now_s)" -v b="$t0" -v t="$TIMEOUT" 'BEGIN { exit !(a - b > t) }' &&
			die "$name: only $(sink_count)/$count delivered after ${TIMEOUT}s"
		sleep 0.2
	done
	LOAD_S=$(awk -v a="$(now_s)" -v b="$t0" 'BEGIN { printf "%.1f\n", a - b }')
}

scenario_count() { if [ "$1" = one ]; then echo 1; else echo "$PARALLEL"; fi; }

# --- sluice ----------------------------------------------------------------

sluice_config() { # DIR SMTP_PORT SINK_PORT KEY
	mkdir -p "$1"
	cat >"$1/sluice.toml" <<EOM
data_dir = "$1/data"

[listen]
smtp = "127.0.0.1:$2"
http = ""

[policy]
max_concurrency = $PARALLEL
initial_concurrency = 0

[auth]
mode = "off"
$(if [ "$DKIM" = 1 ]; then printf '\n[[auth.dkim]]\ndomain = "sender.test"\nselector = "bench"\nkey_file = "%s"\n' "$4"; fi)

[[delivery.route]]
domain = "dest.test"
host = "127.0.0.1:$3"
tls = "none"
EOM
}

# run_sluice LABEL BIN SCENARIO: one run; prints "LABEL SCENARIO anon hwm file secs".
run_sluice() {
	local label=$1 bin=$2 sc=$3 port dir count samples pid
	count=$(scenario_count "$sc")
	dir=$WORK/$label-$sc
	mkdir -p "$dir"
	"$bin" dkim keygen --domain sender.test --selector bench --type ed25519 --out "$dir/dkim.pem" >/dev/null
	start_sink "$label-$sc" -w "$DATA_DELAY"
	port=$(free_port)
	sluice_config "$dir" "$port" "$SINK_PORT" "$dir/dkim.pem"
	"$bin" serve --config "$dir/sluice.toml" >"$dir/log" 2>&1 &
	pid=$!
	bench_on_exit "kill_pid $pid"
	wait_port "$port"
	samples=$dir/samples
	sample_sluice "$pid" "$samples" &
	local sampler=$!
	load "$label-$sc" "$port" "$count"
	sleep 0.3
	kill "$sampler" 2>/dev/null || true
	wait "$sampler" 2>/dev/null || true
	echo "$label $sc $(peak "$samples" 1) $(peak "$samples" 3) $(peak "$samples" 2) $LOAD_S" >>"$WORK/results"
	kill_pid "$pid"
	kill_pid "$SINK_PID"
}

build_base() {
	[ -n "$BASE" ] || return 1
	git -C "$BENCH_REPO" cat-file -e "$BASE^{commit}" 2>/dev/null || { echo "baseline $BASE not in the repository: skipped" >&2; return 1; }
	mkdir -p "$WORK/base"
	git -C "$BENCH_REPO" archive "$BASE" | tar -x -C "$WORK/base"
	(cd "$WORK/base" && go build -o "$BENCH_BIN/sluice-base" ./cmd/sluice) || die "cannot build the baseline $BASE"
}

# --- Postfix ---------------------------------------------------------------

run_postfix() { # SCENARIO
	local sc=$1 port count samples sampler
	count=$(scenario_count "$sc")
	start_sink "postfix-$sc" -w "$DATA_DELAY"
	port=$(free_port)
	PF_DIR=$WORK/postfix-$sc
	pf_create "$PF_DIR" "$port" "$SINK_PORT" \
		"message_size_limit = $((SIZE + (1 << 20)))" \
		"default_destination_concurrency_limit = $PARALLEL" \
		"smtp_destination_concurrency_limit = $PARALLEL" \
		"initial_destination_concurrency = $PARALLEL" \
		"default_process_limit = $((3 * PARALLEL))"
	pf_start "$PF_DIR"
	wait_port "$port"
	samples=$PF_DIR/samples
	sample_postfix "$PF_DIR" "$samples" &
	sampler=$!
	bench_on_exit "kill $sampler"
	load "postfix-$sc" "$port" "$count"
	sleep 0.3
	kill "$sampler" 2>/dev/null || true
	wait "$sampler" 2>/dev/null || true
	# RssAnon summed, Pss summed (as the peak of the whole).
	echo "postfix $sc $(peak "$samples" 1) $(peak "$samples" 3) - $LOAD_S" >>"$WORK/results"
	pf_stop "$PF_DIR"
	kill_pid "$SINK_PID"
}

# --- main ------------------------------------------------------------------

: >"$WORK/results"
LABELS=()
if [ "${NO_SLUICE:-0}" != 1 ]; then
	go_bin sluice
	LABELS+=(sluice)
	if build_base; then LABELS+=(base); fi
fi
for sc in $SCENARIOS; do
	for l in "${LABELS[@]}"; do
		case $l in
		sluice) run_sluice sluice "$BENCH_BIN/sluice" "$sc" ;;
		base) run_sluice "sluice@$BASE" "$BENCH_BIN/sluice-base" "$sc" ;;
		esac
	done
	if pf_available; then run_postfix "$sc"; fi
done
pf_available || echo "postfix not installed or NO_POSTFIX=1: sluice only" >&2

echo "memory: messages of $SIZE bytes in and out, loopback, smtp-sink waits ${DATA_DELAY}s before answering DATA ($(nproc) CPUs)"
echo "scenarios: one = 1 message; parallel = $PARALLEL messages submitted at once, delivered over $PARALLEL connections"
printf '%-10s %-16s %14s %14s %14s %8s %10s\n' scenario relay "RssAnon MB" "VmHWM MB" "RssFile MB" "secs" target
while read -r label sc anon hwm file secs; do
	target=""
	if [ "$label" = sluice ]; then
		if [ "$sc" = one ]; then target="<80"; else target="<300"; fi
	fi
	printf '%-10s %-16s %14s %14s %14s %8s %10s\n' "$sc" "$label" "$anon" "$hwm" "$file" "$secs" "$target"
done <"$WORK/results"
echo "RssAnon: peak of the samples (10/s) of /proc/PID/status; VmHWM: the kernel's peak resident set (anonymous + file-backed)."
[ "$DKIM" = 1 ] || echo "DKIM=0: sluice does not sign."
echo "postfix: sums over its processes; the VmHWM column holds the peak of the summed Pss (no per-process VmHWM adds up); no DKIM signing."
echo "secs: from the start of the submission until the sink counted every message (includes the ${DATA_DELAY}s DATA delay)."
