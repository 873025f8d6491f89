# A fresh sluice for side-by-side runs against smtp-sink, reached over
# SMTP and the HTTP API, and the measure of one injected load: what
# bench/api.sh and bench/lint-throughput.sh share. Sourced after
# common.sh; needs WORK, BENCH_BIN (with sluice built by go_bin) and,
# for measure, TIMEOUT.

SLUICE_PID=
# sluice_hwm: the peak resident memory (VmHWM, kB) of $SLUICE_PID.
sluice_hwm() { awk '/^VmHWM:/ { print $2 }' "/proc/$SLUICE_PID/status" 2>/dev/null || echo 0; }

# api_token: one API token for every run: the token in $WORK/token, the
# config line of its hash in HASH_LINE.
api_token() {
	"$BENCH_BIN/sluice" token new >"$WORK/token.out" 2>/dev/null
	head -n 1 "$WORK/token.out" >"$WORK/token"
	HASH_LINE=$(sed -n 2p "$WORK/token.out")
}

# start_api_sluice DIR [LINE...]: a fresh sluice (bench/throughput.toml:
# the embedded defaults, fsync on) delivering to the sink on SINK_PORT,
# with listen.api and the bench user of api_token, then each LINE
# appended to its config, and listen.http (its /metrics); sets SMTP_PORT,
# API_PORT, HTTP_PORT and SLUICE_PID.
start_api_sluice() {
	local dir=$1
	shift
	mkdir -p "$dir"
	SMTP_PORT=$(free_port) API_PORT=$(free_port) HTTP_PORT=$(free_port)
	sed -e "s|^data_dir = .*|data_dir = \"$dir/data\"|" \
		-e "s|^smtp = .*|smtp = \"127.0.0.1:$SMTP_PORT\"\napi = \"127.0.0.1:$API_PORT\"|" \
		-e "s|^http = .*|http = \"127.0.0.1:$HTTP_PORT\"|" \
		-e "s|^host = .*|host = \"127.0.0.1:$SINK_PORT\"|" \
		"$BENCH_REPO/bench/throughput.toml" >"$dir/sluice.toml"
	printf '\n[[access.user]]\nname = "bench"\n%s\n' "$HASH_LINE" >>"$dir/sluice.toml"
	(($# == 0)) || printf '%s\n' "$@" >>"$dir/sluice.toml"
	"$BENCH_BIN/sluice" serve --config "$dir/sluice.toml" >"$dir/log" 2>&1 &
	SLUICE_PID=$!
	bench_on_exit "kill_pid $SLUICE_PID"
	wait_port "$SMTP_PORT"
	wait_port "$API_PORT"
	wait_port "$HTTP_PORT"
}

# measure NAME COUNT PID T0: a load of COUNT messages injected since T0
# by the background process PID (its output in $WORK/NAME.inject), until
# PID has exited, which must be with status 0, and the sink has counted
# COUNT; every fifth poll (0.5 s) samples sluice_hwm. Fails after TIMEOUT
# seconds. Sets ACC (COUNT / the injector's wall time), DEL (COUNT / the
# time until the sink counted them), both in msg/s, and RSS (the peak,
# MB).
measure() {
	local name=$1 count=$2 src=$3 t0=$4 now tacc="" tdel="" peak=0 rss i=0
	bench_on_exit "kill_pid $src"
	while :; do
		now=$(now_s)
		if [ -z "$tacc" ] && ! kill -0 "$src" 2>/dev/null; then
			wait "$src" || { cat "$WORK/$name.inject" >&2; die "$name: the injector failed"; }
			tacc=$(awk -v a="$now" -v b="$t0" 'BEGIN { print a - b }')
		fi
		if [ -z "$tdel" ] && [ "$(sink_count)" -ge "$count" ]; then
			tdel=$(awk -v a="$now" -v b="$t0" 'BEGIN { print a - b }')
		fi
		[ -n "$tacc" ] && [ -n "$tdel" ] && break
		if ((i % 5 == 0)); then
			rss=$(sluice_hwm)
			((rss > peak)) && peak=$rss
		fi
		i=$((i + 1))
		awk -v a="$now" -v b="$t0" -v t="$TIMEOUT" 'BEGIN { exit !(a - b > t) }' &&
			die "$name: only $(sink_count)/$count delivered after ${TIMEOUT}s"
		sleep 0.1
	done
	rss=$(sluice_hwm)
	((rss > peak)) && peak=$rss
	ACC=$(fdiv "$count" "$tacc" 0) DEL=$(fdiv "$count" "$tdel" 0) RSS=$(fdiv "$peak" 1024 1)
}
