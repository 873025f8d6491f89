#!/usr/bin/env bash
# sluice at scale (issue 10): a backlog of deferred 2 KB messages grown
# from 0 to 1,000,000 to one destination that answers 421 at the greeting
# (cmd/fakemx -outage), then head-of-line blocking behind a dead and a
# slow destination, many destinations behind a slow DNS server, restart
# and shutdown with the backlog queued, and the drain of the backlog.
#
#   growth  rows at ROWS queued; per row: SMTP enqueue msg/s of the slab,
#           RssAnon, RSS and VmHWM, queue file and spool size, then over
#           IDLE idle seconds CPU % and write bytes/s (/proc/PID/stat and
#           io), over the next IDLE seconds fsyncs/s and pwrites/s (strace
#           -c -f -p, a window of its own since ptrace slows the process),
#           then the wall time of the read commands: status, queue
#           summary, queue list --limit 20, queue list --domain (a rare
#           domain) --limit 20, domains, /metrics, and the dashboard JSON
#           of listen.http (curl with the Host the host guard serves);
#           the worst of ADMIN_REPS calls
#   hol-dead  HOL_N messages to a healthy destination (smtp-sink) while
#           the backlog is paused, vs the same on an empty queue (measured
#           first); the median of HOL_RUNS runs
#   shutdown SIGTERM with the backlog queued: seconds to exit vs
#           shutdown_grace
#   restart start with the backlog queued: seconds until SMTP answers 220,
#           and until a message injected then is delivered (the backlog's
#           destination is still dead: that message is the first delivery)
#   crash   kill -9 with the backlog queued, then start: seconds until
#           SMTP answers 220 (bbolt rebuilds its freelist by walking the
#           file: the queue writes it at Close only)
#   hol-slow the backlog's receiver becomes slow (fakemx -sessions 2 -rate
#           20); once it takes mail, HOL_N messages to the healthy
#           destination as above
#   drain   the receiver becomes healthy (smtp-sink on the same port):
#           msg/s from the first delivery to the last, peak RSS sampled
#           during the drain, the queue file before and after, and lost =
#           messages acknowledged at enqueue minus those counted by the
#           receivers
#   many    on a fresh relay: MANY_DOMAINS domains × MANY_PER messages,
#           MX and A from cmd/fakedns answering after DNS_DELAY, every
#           domain on one smtp-sink through delivery.port and
#           delivery.resolver (one destination per domain, "MX 10 mx.D");
#           throughput vs the same number of messages to one domain, and
#           time to the first delivery
# Every figure is printed beside its target with PASS or FAIL; the whole
# output goes to OUT (bench/scale-last-run.txt for a full run).
#
# FILL=smtp (default) injects the whole backlog over SMTP (sluice-inject,
# CLIENTS connections, full speed). FILL=import builds each slab offline
# with `sluice queue import` of a generated stream (bench/scale/genqueue:
# deferred messages due within RETRY_MAX) with the relay stopped, then
# measures the SMTP enqueue rate on ENQ_SAMPLE messages at that size: the
# enqueue figure is always real SMTP.
#
# SMALL=1 is the quick check: rows at 10,000 and 100,000, 10 s idle
# windows, 1,000 domains × 10 in the many-destinations run (the same
# targets; the Go test TestScaleSmallAdminReads runs its admin part in
# ./test.sh).
#
# Run as root by hand (not in CI): bench/scale.sh, or SMALL=1 bench/scale.sh
# Environment: ROWS="10000 100000 250000 500000 1000000" SIZE=2048
#   CLIENTS=20 IDLE=30 SETTLE=10 ADMIN_REPS=3 HOL_N=1000 HOL_RUNS=3
#   MANY_DOMAINS=10000 MANY_PER=10 DNS_DELAY=20ms GRACE=10s RETRY_MAX=30s
#   FILL=smtp|import ENQ_SAMPLE=10000 DRAIN_TIMEOUT=1800 HOL_TIMEOUT=600
#   STOP_CAP=120 (seconds after SIGTERM before a SIGKILL)
#   SCENARIOS="growth hol-dead shutdown restart crash hol-slow drain many"
#   OUT=FILE KEEP=1
set -euo pipefail

BENCH_REPO=$(cd "$(dirname "$0")/.." && pwd)
. "$BENCH_REPO/bench/lib/common.sh"

SMALL=${SMALL:-0}
if [ "$SMALL" = 1 ]; then
	ROWS=${ROWS:-10000 100000}
	IDLE=${IDLE:-10}
	MANY_DOMAINS=${MANY_DOMAINS:-1000}
	OUT=${OUT:-}
else
	ROWS=${ROWS:-10000 100000 250000 500000 1000000}
	IDLE=${IDLE:-30}
	MANY_DOMAINS=${MANY_DOMAINS:-10000}
	OUT=${OUT-$BENCH_REPO/bench/scale-last-run.txt}
fi
SIZE=${SIZE:-2048}
CLIENTS=${CLIENTS:-20}
SETTLE=${SETTLE:-10}
ADMIN_REPS=${ADMIN_REPS:-3}
HOL_N=${HOL_N:-1000}
HOL_RUNS=${HOL_RUNS:-3}
MANY_PER=${MANY_PER:-10}
DNS_DELAY=${DNS_DELAY:-20ms}
GRACE=${GRACE:-10s}
RETRY_MAX=${RETRY_MAX:-30s}
FILL=${FILL:-smtp}
ENQ_SAMPLE=${ENQ_SAMPLE:-10000}
DRAIN_TIMEOUT=${DRAIN_TIMEOUT:-1800}
HOL_TIMEOUT=${HOL_TIMEOUT:-600}
STOP_CAP=${STOP_CAP:-120}
SCENARIOS=${SCENARIOS:-growth hol-dead shutdown restart crash hol-slow drain many}

need smtp-sink strace curl jq ss awk sed sort
[ "$(id -u)" = 0 ] || die "run as root: smtp-sink -u and strace -p need it"
case $FILL in smtp | import) ;; *) die "FILL=$FILL: want smtp or import" ;; esac

bench_workdir scale
TICK=$(getconf CLK_TCK)

has() { case " $SCENARIOS " in *" $1 "*) return 0 ;; esac; return 1; }
log() { echo "scale: $*" >&2; }

# --- time ------------------------------------------------------------------

# t_now: seconds since the epoch with microseconds (bash's own clock: no
# fork, so short intervals are not inflated).
t_now() { echo "$EPOCHREALTIME"; }
# t_since T0 [DECIMALS]: seconds since T0.
t_since() { awk -v a="$EPOCHREALTIME" -v b="$1" -v d="${2:-3}" 'BEGIN { printf "%.*f\n", d, a - b }'; }
# t_over T0 LIMIT: true once more than LIMIT seconds have passed since T0.
t_over() { awk -v a="$EPOCHREALTIME" -v b="$1" -v l="$2" 'BEGIN { exit !(a - b > l) }'; }
# secs DURATION: a Go duration of whole seconds or milliseconds in seconds.
secs() { case $1 in *ms) fdiv "${1%ms}" 1000 3 ;; *s) echo "${1%s}" ;; *m) echo $((${1%m} * 60)) ;; *) die "duration $1: want s, ms or m" ;; esac; }

# median FILE-OF-NUMBERS
median() { sort -g "$1" | awk '{ v[NR] = $1 } END { if (NR == 0) print "-"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# --- targets ---------------------------------------------------------------

RESULTS=$WORK/targets
: >"$RESULTS"
# target NAME FIGURE OP LIMIT [NOTE]: record "FIGURE OP LIMIT" as PASS or
# FAIL ("-" as a figure: not measured).
target() {
	local name=$1 fig=$2 op=$3 lim=$4 note=${5:-} verdict
	if [ "$fig" = - ] || [ -z "$fig" ] || [ "$lim" = - ]; then
		verdict=n/a
	elif awk -v f="$fig" -v l="$lim" -v op="$op" 'BEGIN { exit !((op == "<=" && f <= l) || (op == ">=" && f >= l)) }'; then
		verdict=PASS
	else
		verdict=FAIL
	fi
	printf '%-44s %14s   %-16s %-5s %s\n' "$name" "$fig" "$op $lim" "$verdict" "$note" >>"$RESULTS"
}

# --- processes -------------------------------------------------------------

build() {
	go_bin sluice
	go_bin sluice-inject
	go_bin fakemx
	(cd "$BENCH_REPO" && go build -o "$BENCH_BIN/genqueue" ./bench/scale/genqueue) || die "cannot build bench/scale/genqueue"
	if [ -d "$BENCH_REPO/cmd/fakedns" ]; then go_bin fakedns; fi
}

# fakemx_start NAME PORT FLAG...: a fake MX on 127.0.0.1:PORT; sets
# MX_PID and MX_HTTP (its /stats address).
fakemx_start() {
	local name=$1 port=$2
	shift 2
	"$BENCH_BIN/fakemx" -addr "127.0.0.1:$port" -http 127.0.0.1:0 -stats "$WORK/$name.stats.json" "$@" \
		>"$WORK/$name.mx.out" 2>"$WORK/$name.mx.err" &
	MX_PID=$!
	bench_on_exit "kill_pid $MX_PID"
	for _ in $(seq 100); do [ "$(wc -l <"$WORK/$name.mx.out")" -ge 2 ] && break; sleep 0.05; done
	MX_HTTP=$(sed -n 's/^http //p' "$WORK/$name.mx.out")
	[ -n "$MX_HTTP" ] || { cat "$WORK/$name.mx.err" >&2; die "fakemx $name did not start"; }
}
mx_delivered() { curl -fsS "http://$MX_HTTP/stats" | jq '.stats.delivered - .stats.duplicates' 2>/dev/null || echo 0; }
# mx_stop STATS: SIGTERM, then MX_FINAL = the unique deliveries from its
# final stats. Not for $(...): wait needs the fake MX to be a child of
# the shell that waits, or jq reads the stats before they are written
# (a run counted 59 deliveries at the slow receiver as lost).
mx_stop() {
	local stats=$1
	kill -TERM "$MX_PID" 2>/dev/null || true
	wait "$MX_PID" 2>/dev/null || true
	MX_FINAL=$(jq '.stats.delivered - .stats.duplicates' "$stats" 2>/dev/null) || MX_FINAL=
	[ -n "$MX_FINAL" ] || die "fakemx left no stats in $stats"
}

# sluice_config DIR SMTP_PORT HTTP_PORT EXTRA: the defaults but for the
# scaled retry clock (retry_max RETRY_MAX, so that a destination that
# opens is tried again within it) and shutdown_grace GRACE; listen.admin
# is the default unix socket in data_dir.
sluice_config() {
	local dir=$1 smtp=$2 http=$3 extra=$4
	mkdir -p "$dir"
	cat >"$dir/sluice.toml" <<EOF
hostname = "sluice-scale.test"
data_dir = "$dir/data"
shutdown_grace = "$GRACE"

[listen]
smtp = "127.0.0.1:$smtp"
http = "127.0.0.1:$http"

[policy]
retry_base = "1s"
retry_max = "$RETRY_MAX"

[auth]
mode = "off"
$extra
EOF
	"$BENCH_BIN/sluice" config check "$dir/sluice.toml" >"$dir/config-check.out" 2>&1 ||
		{ log "the bench config $dir/sluice.toml is refused: $(tail -n 2 "$dir/config-check.out")"; return 1; }
}

# relay_start DIR: sluice serve; sets RELAY_PID and RELAY_T0 (the time
# it was started). It is not waited for.
relay_start() {
	local dir=$1
	RELAY_T0=$(t_now)
	"$BENCH_BIN/sluice" serve --config "$dir/sluice.toml" >>"$dir/log" 2>&1 &
	RELAY_PID=$!
	bench_on_exit "kill_pid $RELAY_PID"
}
# relay_stop: SIGTERM and wait, at most STOP_CAP seconds, then SIGKILL
# (a relay that takes minutes to stop would hold up the whole run); sets
# STOP_S and STOP_KILLED.
relay_stop() {
	local t0 wd
	t0=$(t_now)
	kill -TERM "$RELAY_PID" 2>/dev/null || true
	(sleep "$STOP_CAP" && kill -9 "$RELAY_PID" 2>/dev/null && echo killed >"$WORK/stop.killed") &
	wd=$!
	wait "$RELAY_PID" 2>/dev/null || true
	STOP_S=$(t_since "$t0" 2)
	kill "$wd" 2>/dev/null || true
	wait "$wd" 2>/dev/null || true
	STOP_KILLED=0
	if [ -e "$WORK/stop.killed" ]; then
		STOP_KILLED=1
		rm -f "$WORK/stop.killed"
		log "sluice had not exited ${STOP_CAP}s after SIGTERM: killed"
	fi
}

# smtp_ready PORT: one connect that reads a 220 greeting.
smtp_ready() {
	local line
	{ exec 3<>"/dev/tcp/127.0.0.1/$1"; } 2>/dev/null || return 1
	IFS= read -r -t 2 line <&3 || { exec 3<&-; return 1; }
	printf 'QUIT\r\n' >&3 2>/dev/null || true
	exec 3<&- 3>&-
	[[ $line == 220* ]]
}
# wait_smtp PORT SECS: until a 220 greeting; sets READY_S (seconds since
# RELAY_T0).
wait_smtp() {
	local port=$1 lim=$2
	until smtp_ready "$port"; do
		t_over "$RELAY_T0" "$lim" && die "no 220 on 127.0.0.1:$port after ${lim}s (see $WORK)"
		kill -0 "$RELAY_PID" 2>/dev/null || die "sluice exited at start-up: $(tail -n 5 "$MAIN/log")"
		sleep 0.02
	done
	READY_S=$(t_since "$RELAY_T0" 2)
}

# inject_start PORT N TO [EXTRA...]: sluice-inject in the background, N
# messages over SMTP at full speed; sets INJ_PID and INJ_OUT.
inject_start() {
	local port=$1 n=$2 to=$3
	shift 3
	INJ_OUT=$WORK/inject.$RANDOM.out
	"$BENCH_BIN/sluice-inject" -addr "127.0.0.1:$port" -n "$n" -c "$CLIENTS" -size "$SIZE" \
		-from bench@sender.test -to "$to" -deadline 4h "$@" >"$INJ_OUT" 2>"$INJ_OUT.err" &
	INJ_PID=$!
	bench_on_exit "kill_pid $INJ_PID"
}
# inject_wait: wait for it; sets INJ_ACKED.
inject_wait() {
	wait "$INJ_PID" || log "sluice-inject: $(tail -n 2 "$INJ_OUT.err")"
	INJ_ACKED=$(sed -n 's/.*acked=\([0-9]*\).*/\1/p' "$INJ_OUT")
	INJ_ACKED=${INJ_ACKED:-0}
}
# inject PORT N TO [EXTRA...]: inject_start and inject_wait; sets
# INJ_ACKED and INJ_RATE (acknowledged msg/s over the run).
inject() {
	local t0
	t0=$(t_now)
	inject_start "$@"
	inject_wait
	INJ_RATE=$(fdiv "$INJ_ACKED" "$(t_since "$t0")" 0)
}

# --- the relay's process ---------------------------------------------------

status_kb() { awk -v k="$1:" '$1 == k { print $2 }' "/proc/$RELAY_PID/status" 2>/dev/null || echo 0; }
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$RELAY_PID/stat"; }
write_bytes() { awk '$1 == "write_bytes:" { print $2 }' "/proc/$RELAY_PID/io"; }
mb() { fdiv "$1" 1024 1; }
file_bytes() { stat -c %s "$MAIN/data/queue.db" 2>/dev/null || echo 0; }
spool_bytes() { du -sb "$MAIN/data/spool" 2>/dev/null | awk '{ print $1 }' || echo 0; }
# open_count: recipients not final, from `sluice status --json`.
open_count() {
	"$BENCH_BIN/sluice" status --json --config "$MAIN/sluice.toml" 2>/dev/null |
		jq '(.queue.queued // 0) + (.queue.active // 0) + (.queue.held // 0)' 2>/dev/null || echo -
}

# idle_window: CPU %, write MB/s, then (a window of its own) fsyncs/s and
# pwrites/s. Sets IDLE_CPU IDLE_WMB IDLE_FSYNC IDLE_PWRITE.
idle_window() {
	local c0 w0 t0 c1 w1 el st=$WORK/strace.$RANDOM
	c0=$(cpu_ticks) w0=$(write_bytes) t0=$(t_now)
	sleep "$IDLE"
	c1=$(cpu_ticks) w1=$(write_bytes) el=$(t_since "$t0")
	IDLE_CPU=$(awk -v c="$((c1 - c0))" -v hz="$TICK" -v s="$el" 'BEGIN { printf "%.1f\n", c / hz / s * 100 }')
	IDLE_WMB=$(awk -v b="$((w1 - w0))" -v s="$el" 'BEGIN { printf "%.2f\n", b / s / 1048576 }')
	timeout -s INT "$IDLE" strace -f -c -e trace=fsync,fdatasync,pwrite64 -o "$st" -p "$RELAY_PID" 2>/dev/null || true
	IDLE_FSYNC=$(fdiv "$(fsyncs "$st")" "$IDLE" 2)
	IDLE_PWRITE=$(fdiv "$(awk '$NF == "pwrite64" { n += $4 } END { print n + 0 }' "$st")" "$IDLE" 1)
}

# admin_ms CMD...: the worst wall time (ms) of ADMIN_REPS runs of CMD,
# "err" if one failed.
admin_ms() {
	local i t0 worst=0 ms
	for ((i = 0; i < ADMIN_REPS; i++)); do
		t0=$(t_now)
		"$@" >/dev/null 2>&1 || { echo err; return; }
		ms=$(awk -v a="$EPOCHREALTIME" -v b="$t0" 'BEGIN { printf "%.0f\n", (a - b) * 1000 }')
		((ms > worst)) && worst=$ms
	done
	echo "$worst"
}
cli() { "$BENCH_BIN/sluice" "$@" --config "$MAIN/sluice.toml"; }
http_get() { curl -fsS -o /dev/null -H "Host: 127.0.0.1:$HTTP_PORT" "http://127.0.0.1:$HTTP_PORT$1"; }

# --- scenarios -------------------------------------------------------------

# hol NAME: HOL_RUNS runs of HOL_N messages to ok.test; sets HOL_MED
# (median seconds until the ok sink counted them).
hol() {
	local name=$1 r before t0 f=$WORK/hol.$1
	: >"$f"
	for ((r = 1; r <= HOL_RUNS; r++)); do
		before=$(sink_count "$OK_OUT")
		t0=$(t_now)
		inject "$SMTP_PORT" "$HOL_N" "user%d@ok.test"
		while [ "$(sink_count "$OK_OUT")" -lt $((before + HOL_N)) ]; do
			if t_over "$t0" "$HOL_TIMEOUT"; then
				log "$name run $r: $(($(sink_count "$OK_OUT") - before))/$HOL_N delivered after ${HOL_TIMEOUT}s"
				echo "$HOL_TIMEOUT" >>"$f"
				continue 2
			fi
			sleep 0.05
		done
		t_since "$t0" 2 >>"$f"
		log "$name run $r: $(tail -n 1 "$f") s"
	done
	HOL_MED=$(median "$f")
}

# hol_limit BASE: the head-of-line target, max(1.2 × BASE, BASE + 0.3).
hol_limit() { awk -v b="$1" 'BEGIN { x = b * 1.2; y = b + 0.3; printf "%.2f\n", (x > y ? x : y) }'; }

ROW_TABLE=$WORK/rows
ADMIN_TABLE=$WORK/admin
ACKED_TOTAL=0

# fill_to N: grow the backlog to N messages to dest.test.
FILLED=0
fill_to() {
	local n=$1 slab=$(($1 - FILLED)) bulk
	if [ "$FILL" = import ] && [ "$slab" -gt "$ENQ_SAMPLE" ]; then
		bulk=$((slab - ENQ_SAMPLE))
		log "import of $bulk deferred messages (relay stopped)"
		relay_stop
		# -spread 0: received now, so that the IDs of a slab follow
		# those already queued as SMTP's do (IDs sort by arrival). With
		# received times scattered over two days, every slab inserted
		# into the middle of the message, recipient and body buckets,
		# splitting full pages: 3,093-3,282 bytes of file per message
		# at 1M, an artefact of the fill, not what arrival order writes.
		"$BENCH_BIN/genqueue" -n "$bulk" -first "$FILLED" -size "$SIZE" -to 'user%d@dest.test' \
			-spread 0 -due-after 1s -due "$RETRY_MAX" |
			"$BENCH_BIN/sluice" queue import --config "$MAIN/sluice.toml" >>"$MAIN/import.log" 2>&1 ||
			die "queue import failed: $(tail -n 3 "$MAIN/import.log")"
		ACKED_TOTAL=$((ACKED_TOTAL + bulk))
		relay_start "$MAIN"
		wait_smtp "$SMTP_PORT" 600
		slab=$ENQ_SAMPLE
	fi
	log "SMTP enqueue of $slab messages (to $n queued)"
	inject "$SMTP_PORT" "$slab" "user%d@dest.test"
	ACKED_TOTAL=$((ACKED_TOTAL + INJ_ACKED))
	[ "$INJ_ACKED" = "$slab" ] || log "only $INJ_ACKED of $slab acknowledged"
	FILLED=$n
}

row() {
	local n=$1 fb
	fill_to "$n"
	local rate=$INJ_RATE
	sleep "$SETTLE"
	log "row $n: idle windows of ${IDLE}s"
	idle_window
	fb=$(file_bytes)
	printf '%9s %9s %9s %9s %9s %9s %7s %9s %6s %7s %7s %8s\n' "$n" "$rate" \
		"$(mb "$(status_kb RssAnon)")" "$(mb "$(status_kb VmRSS)")" "$(mb "$(status_kb VmHWM)")" \
		"$(fdiv "$fb" 1048576 0)" "$(fdiv "$fb" "$n" 0)" "$(fdiv "$(spool_bytes)" 1048576 1)" \
		"$IDLE_CPU" "$IDLE_WMB" "$IDLE_FSYNC" "$IDLE_PWRITE" >>"$ROW_TABLE"
	log "row $n: admin reads"
	printf '%9s %8s %8s %8s %8s %8s %8s %8s\n' "$n" \
		"$(admin_ms cli status)" "$(admin_ms cli queue summary)" "$(admin_ms cli queue list --limit 20)" \
		"$(admin_ms cli queue list --domain rare.test --limit 20)" "$(admin_ms cli domains)" \
		"$(admin_ms http_get /metrics)" "$(admin_ms http_get /v1/dashboard)" >>"$ADMIN_TABLE"
	LAST_ROW=$n LAST_RATE=$rate LAST_FILE=$fb
	# The empty-queue rate is the first row's: its slab starts from an
	# empty queue, to the same destination (a run to a healthy one would
	# compete with its own deliveries).
	[ "$EMPTY_RATE" != - ] || EMPTY_RATE=$rate
}

# growth_targets: the targets of the last row.
growth_targets() {
	[ "$LAST_ROW" -gt 0 ] || return 0
	target "enqueue at $LAST_ROW vs empty queue" "$(fdiv "$LAST_RATE" "$EMPTY_RATE" 2)" ">=" 0.9 "$LAST_RATE vs $EMPTY_RATE msg/s"
	local anon q cpu fs a b c d e f g worst
	anon=$(awk -v r="$LAST_ROW" '$1 == r { print $3 }' "$ROW_TABLE")
	target "RssAnon at $LAST_ROW (MB)" "$anon" "<=" 256
	target "queue file per message at $LAST_ROW (B)" "$(fdiv "$LAST_FILE" "$LAST_ROW" 0)" "<=" 3072
	while read -r q cpu fs; do
		target "idle CPU % at $q" "$cpu" "<=" 1
		target "idle fsyncs/s at $q (commits)" "$fs" "<=" 1
	done < <(awk 'NR > 1 { print $1, $9, $11 }' "$ROW_TABLE")
	while read -r q a b c d e f g; do
		worst=$(printf '%s\n' "$a" "$b" "$c" "$d" "$e" "$f" "$g" | awk '$1 == "err" { e = 1 } $1 > m { m = $1 } END { print (e ? "err" : m) }')
		target "slowest admin read at $q (ms)" "$worst" "<=" 100
	done < <(awk 'NR > 1 { print $1, $2, $3, $4, $5, $6, $7, $8 }' "$ADMIN_TABLE")
}

# --- the main relay --------------------------------------------------------

main_relay() {
	MAIN=$WORK/main
	SMTP_PORT=$(free_port) HTTP_PORT=$(free_port) DEST_PORT=$(free_port)
	start_sink ok
	OK_OUT=$SINK_OUT OK_PID=$SINK_PID
	sluice_config "$MAIN" "$SMTP_PORT" "$HTTP_PORT" "
[[delivery.route]]
domain = \"dest.test\"
host = \"127.0.0.1:$DEST_PORT\"
tls = \"none\"

[[delivery.route]]
domain = \"ok.test\"
host = \"127.0.0.1:$SINK_PORT\"
tls = \"none\"

[[delivery.route]]
domain = \"rare.test\"
host = \"127.0.0.1:$DEST_PORT\"
tls = \"none\"" || die "the bench config is refused"
	# The backlog's receiver: 421 at the greeting, for good.
	fakemx_start dead "$DEST_PORT" -outage 0s-100000h
	DEAD_PID=$MX_PID
	relay_start "$MAIN"
	wait_smtp "$SMTP_PORT" 60
	# A few messages to another domain of the same dead receiver, so that
	# `queue list --domain rare.test` must find them among the backlog.
	inject "$SMTP_PORT" 5 "user%d@rare.test"
	ACKED_TOTAL=$INJ_ACKED

	EMPTY_HOL=-
	if has hol-dead || has hol-slow; then
		log "head of line on an empty queue"
		hol empty
		EMPTY_HOL=$HOL_MED
	fi
	EMPTY_RATE=-
	LAST_ROW=0
	if has growth; then
		printf '%9s %9s %9s %9s %9s %9s %7s %9s %6s %7s %7s %8s\n' queued "enq/s" "anon MB" "RSS MB" "HWM MB" \
			"file MB" "B/msg" "spool MB" "CPU %" "wr MB/s" "fsync/s" "pwrite/s" >"$ROW_TABLE"
		printf '%9s %8s %8s %8s %8s %8s %8s %8s\n' queued status summary "list 20" "list dom" domains metrics dash >"$ADMIN_TABLE"
		local n
		for n in $ROWS; do row "$n"; done
		growth_targets
	fi

	if has hol-dead && [ "$LAST_ROW" -gt 0 ]; then
		log "head of line behind the dead destination"
		hol dead
		DEAD_HOL=$HOL_MED
		target "head of line, dead destination (s, median)" "$DEAD_HOL" "<=" "$(hol_limit "$EMPTY_HOL")" "empty queue: ${EMPTY_HOL}s"
	fi
	if has shutdown; then
		log "SIGTERM with $LAST_ROW queued"
		relay_stop
		target "SIGTERM with $LAST_ROW queued (s to exit)" "$STOP_S" "<=" "$(($(secs "$GRACE") + 1))" "shutdown_grace $GRACE$([ "$STOP_KILLED" = 1 ] && echo ", SIGKILLed after ${STOP_CAP}s")"
	else
		relay_stop
	fi
	if has restart; then
		log "restart with $LAST_ROW queued"
		relay_start "$MAIN"
		wait_smtp "$SMTP_PORT" 600
		local before first=-
		before=$(sink_count "$OK_OUT")
		inject "$SMTP_PORT" 1 "first@ok.test"
		while [ "$(sink_count "$OK_OUT")" -le "$before" ]; do
			t_over "$RELAY_T0" 120 && break
			sleep 0.02
		done
		[ "$(sink_count "$OK_OUT")" -gt "$before" ] && first=$(t_since "$RELAY_T0" 2)
		target "restart with $LAST_ROW queued: SMTP 220 (s)" "$READY_S" "<=" 2
		target "restart: first delivery (s)" "$first" "<=" 5
	else
		relay_start "$MAIN"
		wait_smtp "$SMTP_PORT" 600
	fi

	if has crash; then
		# No target in the issue: the queue writes bbolt's freelist at
		# Close only (queue.Open), so after a crash bbolt rebuilds it by
		# walking the file's pages; this is what that costs.
		log "kill -9 with $LAST_ROW queued, then start"
		kill -9 "$RELAY_PID" 2>/dev/null || true
		wait "$RELAY_PID" 2>/dev/null || true
		relay_start "$MAIN"
		wait_smtp "$SMTP_PORT" 600
		target "start after kill -9 with $LAST_ROW queued: SMTP 220 (s)" "$READY_S" "<=" - "the freelist rebuilt by a walk of the file"
	fi

	local slow_delivered=0
	if has hol-slow && [ "$LAST_ROW" -gt 0 ]; then
		log "the backlog's receiver turns slow (2 sessions, 20 msg/s)"
		kill_pid "$DEAD_PID"
		fakemx_start slow "$DEST_PORT" -sessions 2 -rate 20
		local t0
		t0=$(t_now)
		until [ "$(mx_delivered)" -gt 0 ]; do
			t_over "$t0" $(($(secs "$RETRY_MAX") * 4 + 60)) && { log "the slow receiver got nothing"; break; }
			sleep 0.5
		done
		log "slow receiver taking mail after $(t_since "$t0" 1)s"
		hol slow
		SLOW_HOL=$HOL_MED
		target "head of line, slow destination (s, median)" "$SLOW_HOL" "<=" "$(hol_limit "$EMPTY_HOL")" "empty queue: ${EMPTY_HOL}s"
		mx_stop "$WORK/slow.stats.json"
		slow_delivered=$MX_FINAL
	else
		kill_pid "$DEAD_PID"
	fi

	if has drain; then
		drain "$slow_delivered"
	fi
	relay_stop
	kill_pid "$OK_PID"
}

drain() {
	local slow_delivered=$1 open t0 tfirst=- tlast=- peak=0 fmax f0 f1 got rss i=0 rate=- lost
	sleep 2
	open=$(open_count)
	[ "$open" != - ] || die "status --json: no queue counts"
	f0=$(file_bytes)
	fmax=$f0
	log "drain of $open open recipients"
	SINK_AT=$DEST_PORT start_sink drain
	local out=$SINK_OUT
	t0=$(t_now)
	while :; do
		got=$(sink_count "$out")
		[ "$tfirst" = - ] && [ "$got" -gt 0 ] && tfirst=$(t_since "$t0" 2)
		if [ "$got" -ge "$open" ]; then tlast=$(t_since "$t0" 2); break; fi
		t_over "$t0" "$DRAIN_TIMEOUT" && break
		if ((i % 10 == 0)); then
			rss=$(status_kb VmRSS)
			((rss > peak)) && peak=$rss
			f1=$(file_bytes)
			((f1 > fmax)) && fmax=$f1
		fi
		i=$((i + 1))
		sleep 0.1
	done
	got=$(sink_count "$out")
	if [ "$tlast" != - ]; then
		rate=$(awk -v n="$open" -v a="$tlast" -v b="$tfirst" 'BEGIN { printf "%.0f\n", (a - b > 0 ? n / (a - b) : 0) }')
	else
		rate="$(awk -v n="$got" -v a="$(t_since "$t0")" -v b="$tfirst" 'BEGIN { printf "%.0f\n", (a - b > 0 ? n / (a - b) : 0) }')"
		log "drain: only $got/$open after ${DRAIN_TIMEOUT}s"
	fi
	sleep 2
	got=$(sink_count "$out")
	f1=$(file_bytes)
	lost=$((ACKED_TOTAL - slow_delivered - got))
	((lost < 0)) && lost=0
	DRAIN_LINE="drain: $open open recipients; first delivery ${tfirst}s after the receiver opened (retry_max $RETRY_MAX), last ${tlast}s; ${got} counted at the sink (+${slow_delivered} earlier at the slow one) of $ACKED_TOTAL acknowledged; peak RSS $(mb "$peak") MB; queue file $(fdiv "$f0" 1048576 0) MB before, $(fdiv "$fmax" 1048576 0) MB at most during, $(fdiv "$f1" 1048576 0) MB after; open after: $(open_count)"
	target "drain msg/s (first to last delivery)" "$rate" ">=" 2000
	target "drain: lost (acknowledged - delivered)" "$([ "$tlast" != - ] && echo "$lost" || echo -)" "<=" 0
	target "drain: queue file growth (MB)" "$(fdiv "$((fmax - f0))" 1048576 1)" "<=" 0
	kill_pid "$SINK_PID"
}

# --- many destinations -------------------------------------------------------

many() {
	MANY_LINE=""
	if [ ! -x "$BENCH_BIN/fakedns" ]; then
		MANY_LINE="many destinations: skipped, cmd/fakedns is not in this tree"
		target "many destinations: throughput vs one" - ">=" 0.5 "skipped (no cmd/fakedns)"
		target "many destinations: first delivery (s)" - "<=" 1 "skipped"
		return
	fi
	local dir=$WORK/many smtp http dns n=$((MANY_DOMAINS * MANY_PER)) out
	smtp=$(free_port) http=$(free_port) dns=$(free_port)
	start_sink many
	out=$SINK_OUT
	"$BENCH_BIN/fakedns" -addr "127.0.0.1:$dns" -suffix many.test -delay "$DNS_DELAY" -a 127.0.0.1 \
		>"$WORK/fakedns.out" 2>"$WORK/fakedns.err" &
	local dns_pid=$!
	bench_on_exit "kill_pid $dns_pid"
	for _ in $(seq 100); do [ -s "$WORK/fakedns.out" ] && break; sleep 0.05; done
	[ -s "$WORK/fakedns.out" ] || die "fakedns did not start: $(tail -n 3 "$WORK/fakedns.err")"
	# fakedns answers "MX 10 mx.D" for each domain D: under the default
	# group_by = "mx" every domain is a destination of its own.
	sluice_config "$dir" "$smtp" "$http" "
[delivery]
port = $SINK_PORT
tls = \"none\"
resolver = \"127.0.0.1:$dns\"" || {
		MANY_LINE="many destinations: skipped, this tree refuses the config (delivery.resolver?)"
		target "many destinations: throughput vs one" - ">=" 0.5 "skipped (config refused)"
		target "many destinations: first delivery (s)" - "<=" 1 "skipped"
		kill_pid "$dns_pid"
		kill_pid "$SINK_PID"
		return
	}
	relay_start "$dir"
	wait_smtp "$smtp" 60
	local pass t0 tfirst tall base=0 rate
	for pass in one many; do
		local to="user%d@one.many.test" wrap=0 got
		[ "$pass" = many ] && to="user@d%d.many.test" wrap=$MANY_DOMAINS
		log "many destinations: $n messages, $pass"
		base=$(sink_count "$out") tfirst=- tall=-
		t0=$(t_now)
		inject_start "$smtp" "$n" "$to" -wrap "$wrap"
		while :; do
			got=$(($(sink_count "$out") - base))
			[ "$tfirst" = - ] && [ "$got" -gt 0 ] && tfirst=$(t_since "$t0" 2)
			if [ "$got" -ge "$n" ]; then tall=$(t_since "$t0" 2); break; fi
			t_over "$t0" "$DRAIN_TIMEOUT" && break
			sleep 0.05
		done
		inject_wait
		rate=$([ "$tall" != - ] && fdiv "$n" "$tall" 0 || echo -)
		if [ "$pass" = one ]; then
			ONE_RATE=$rate ONE_FIRST=$tfirst
		else
			MANY_RATE=$rate MANY_FIRST=$tfirst
		fi
	done
	kill -TERM "$RELAY_PID"
	wait "$RELAY_PID" || true
	kill_pid "$dns_pid"
	kill_pid "$SINK_PID"
	MANY_LINE="many destinations: $MANY_DOMAINS domains × $MANY_PER messages: $MANY_RATE msg/s, first delivery ${MANY_FIRST}s; one domain, $n messages: $ONE_RATE msg/s, first delivery ${ONE_FIRST}s (DNS answers after $DNS_DELAY)"
	target "many destinations: throughput vs one" "$([ "$MANY_RATE" != - ] && [ "$ONE_RATE" != - ] && fdiv "$MANY_RATE" "$ONE_RATE" 2 || echo -)" ">=" 0.5 "$MANY_RATE vs $ONE_RATE msg/s"
	target "many destinations: first delivery (s)" "$MANY_FIRST" "<=" 1
}

# --- report ----------------------------------------------------------------

main() {
	build
	local tree
	tree=$(git -C "$BENCH_REPO" rev-parse --short HEAD 2>/dev/null || echo "?")
	if ! git -C "$BENCH_REPO" diff --quiet HEAD 2>/dev/null; then tree="$tree+dirty"; fi
	DRAIN_LINE="" MANY_LINE=""
	main_relay
	if has many; then many; fi

	echo "scale, $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs, tree $tree$([ "$SMALL" = 1 ] && echo ", SMALL=1")"
	echo "backlog: $SIZE-byte messages to dest.test, whose receiver answers 421 at the greeting; FILL=$FILL; sluice defaults but retry_base 1s, retry_max $RETRY_MAX, shutdown_grace $GRACE"
	echo "enqueue on an empty queue: $EMPTY_RATE msg/s (the first row); $HOL_N messages to a healthy destination on an empty queue: ${EMPTY_HOL}s (median of $HOL_RUNS)"
	if has growth; then
		echo
		echo "growth (enqueue: SMTP, $CLIENTS clients; memory at the end of the row; CPU and writes over ${IDLE}s idle, fsyncs and pwrites over the next ${IDLE}s under strace)"
		cat "$ROW_TABLE"
		echo
		echo "admin reads, ms (worst of $ADMIN_REPS; CLI commands include the process start; 'list dom' = queue list --domain rare.test --limit 20, 5 messages among the backlog)"
		cat "$ADMIN_TABLE"
	fi
	echo
	[ -n "$DRAIN_LINE" ] && echo "$DRAIN_LINE"
	[ -n "$MANY_LINE" ] && echo "$MANY_LINE"
	echo
	echo "targets"
	cat "$RESULTS"
}

# tee by process substitution, not a pipe: main runs in this shell, so
# the EXIT trap knows every process it started.
if [ -n "$OUT" ]; then
	exec > >(tee "$OUT")
fi
main
