# Shared helpers of the bench scripts: tool checks, loopback ports, a
# cleanup stack run by one EXIT trap, and waiting for a listener.
# Sourced, never run. Everything listens on 127.0.0.1 only.

# The cleanup stack: each entry is a command line, run in reverse order on
# exit so that a process is stopped before the directory it writes to is
# removed.
BENCH_CLEANUP=()
bench_on_exit() { BENCH_CLEANUP+=("$1"); }
bench_cleanup() {
	local i
	for ((i = ${#BENCH_CLEANUP[@]} - 1; i >= 0; i--)); do
		eval "${BENCH_CLEANUP[i]}" >/dev/null 2>&1 || true
	done
	BENCH_CLEANUP=()
}
trap bench_cleanup EXIT
trap 'exit 130' INT TERM

die() { echo "bench: $*" >&2; exit 1; }

# need TOOL...: fail clearly when a tool is missing.
need() {
	local t
	for t in "$@"; do
		command -v "$t" >/dev/null 2>&1 || die "missing tool: $t (install it, e.g. apt-get install postfix strace jq)"
	done
}

# kill_pid PID: stop one process we started, then reap it.
kill_pid() {
	local pid=$1
	[ -n "$pid" ] || return 0
	kill "$pid" 2>/dev/null || return 0
	for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
	kill -9 "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}

# free_port: a TCP port on 127.0.0.1 that nothing listens on now. Ports
# come from a range outside the kernel's ephemeral range so that outbound
# connections do not take them in the meantime.
free_port() {
	local p
	for _ in $(seq 200); do
		p=$((20000 + RANDOM % 12000))
		if ! ss -Htln "sport = :$p" 2>/dev/null | grep -q .; then
			echo "$p"
			return 0
		fi
	done
	die "no free port found"
}

# wait_port PORT [SECONDS]: until something accepts on 127.0.0.1:PORT.
wait_port() {
	local port=$1 secs=${2:-20} i
	for ((i = 0; i < secs * 10; i++)); do
		if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
			return 0
		fi
		sleep 0.1
	done
	die "nothing listens on 127.0.0.1:$port after ${secs}s"
}

# now_s: wall clock in seconds with nanoseconds, for intervals.
now_s() { date +%s.%N; }

# fdiv A B [DECIMALS]: A/B as a decimal, "-" when B is 0.
fdiv() { awk -v a="$1" -v b="$2" -v d="${3:-1}" 'BEGIN { if (b == 0) print "-"; else printf "%.*f\n", d, a / b }'; }

# start_sink NAME [smtp-sink option...]: a fresh smtp-sink with its own
# message counter, on SINK_AT when set (a port to reuse), else on a free
# port; its output goes to $WORK/NAME.sink. Sets SINK_PORT, SINK_OUT and
# SINK_PID. -c prints "sess=.. quit=.. msg=N" after every final dot,
# which is cheaper than dumping every message to a file.
start_sink() {
	local name=$1
	shift
	SINK_PORT=${SINK_AT:-$(free_port)}
	SINK_OUT=$WORK/$name.sink
	smtp-sink -u root "$@" -c "127.0.0.1:$SINK_PORT" 1024 >"$SINK_OUT" 2>"$SINK_OUT.err" &
	SINK_PID=$!
	bench_on_exit "kill_pid $SINK_PID"
	wait_port "$SINK_PORT"
}

# sink_count [OUT]: messages counted by the sink writing OUT (default
# $SINK_OUT).
sink_count() {
	local n
	n=$(tail -c 200 "${1:-$SINK_OUT}" | tr '\r' '\n' | sed -n 's/.*m[e]*sg=\([0-9]*\).*/\1/p' | tail -n 1)
	echo "${n:-0}"
}

# fsyncs FILE: fsync + fdatasync calls in an `strace -c` summary.
fsyncs() { awk '$NF == "fsync" || $NF == "fdatasync" { n += $4 } END { print n + 0 }' "$1"; }

# bench_workdir NAME: a fresh work directory, WORK=/tmp/sluice-NAME.XXXXXX,
# removed on exit unless KEEP=1, and BENCH_BIN=$WORK/bin for go_bin.
bench_workdir() {
	WORK=$(mktemp -d "/tmp/sluice-$1.XXXXXX")
	if [ "${KEEP:-0}" = 1 ]; then
		echo "work dir kept: $WORK" >&2
	else
		bench_on_exit "rm -rf $WORK"
	fi
	BENCH_BIN=$WORK/bin
	mkdir -p "$BENCH_BIN"
}

# go_bin NAME: build ./cmd/NAME of the repository into $BENCH_BIN.
go_bin() {
	local name=$1
	need go
	(cd "$BENCH_REPO" && go build -o "$BENCH_BIN/$name" "./cmd/$name") ||
		die "cannot build ./cmd/$name (see the compiler output above)"
}
