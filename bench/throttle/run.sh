#!/usr/bin/env bash
# Throttled receivers: sluice against the fake MX (cmd/fakemx), and Postfix
# side by side when it is installed, in ten scenarios. Both sides of a
# scenario run at the same time, each against its own fake MX, and send the
# same N messages, one recipient each (user%d@dest.test). Every figure comes
# from the fake MX's stats; the tables go to stdout and to
# bench/throttle/last-run.txt.
#
# Run as root by hand (not in CI): bench/throttle/run.sh
# Environment: N (messages; default per scenario: 300 for lowrate, 200 for
#              the unhinted greylist-10s/30s/60s, else 2000) CAP=300 (seconds
#              per side) NO_POSTFIX=1 NO_SLUICE=1
#              SCENARIOS="throttle lowrate greylist-hinted greylist-plain
#                greylist-10s greylist-30s greylist-60s outage shifting drop"
set -euo pipefail

BENCH_REPO=$(cd "$(dirname "$0")/../.." && pwd)
. "$BENCH_REPO/bench/lib/common.sh"
. "$BENCH_REPO/bench/lib/postfix.sh"

CAP=${CAP:-300}
SCENARIOS=${SCENARIOS:-throttle lowrate greylist-hinted greylist-plain greylist-10s greylist-30s greylist-60s outage shifting drop}

# n_of SCENARIO: the messages it sends (N overrides every scenario).
n_of() {
	case $1 in
	lowrate) echo "${N:-300}" ;;
	greylist-[0-9]*s) echo "${N:-200}" ;;
	*) echo "${N:-2000}" ;;
	esac
}
OUT=${OUT:-$BENCH_REPO/bench/throttle/last-run.txt}

need curl jq ss awk sed
[ "$(id -u)" = 0 ] || [ "${NO_POSTFIX:-0}" = 1 ] || die "run as root for the Postfix instance (or NO_POSTFIX=1)"

bench_workdir throttle
chmod 755 "$WORK"
go_bin fakemx
go_bin sluice-inject
(cd "$BENCH_REPO" && go build -o "$BENCH_BIN/report" ./bench/throttle/report) || die "cannot build the report tool"
if [ "${NO_SLUICE:-0}" != 1 ]; then go_bin sluice; fi

# Postfix's retry clock scaled like sluice's (1s, 10s, 1s); its
# destination concurrency stays at the default 20.
PF_SCALED=(
	"minimal_backoff_time = 1s"
	"maximal_backoff_time = 10s"
	"queue_run_delay = 1s"
	"default_destination_concurrency_limit = 20"
	"smtp_destination_concurrency_limit = 20"
)

# mx_args SCENARIO: the fake MX flags of a scenario, one per line.
mx_args() {
	case $1 in
	throttle) printf '%s\n' -sessions 3 -rate 100 ;;
	lowrate) printf '%s\n' -sessions 1 -rate 5 ;;
	greylist-hinted) printf '%s\n' -greylist 10s -greylist-text '451 4.7.1 Greylisted, try again in %d seconds' ;;
	greylist-plain) printf '%s\n' -greylist 10s ;;
	greylist-[0-9]*s) printf '%s\n' -greylist "${1#greylist-}" ;;
	outage) printf '%s\n' -outage 0s-15s ;;
	shifting) printf '%s\n' -sessions 3 -rate 100 -schedule 10s:1:20 -schedule 25s:3:100 ;;
	drop) printf '%s\n' -sessions 3 -rate 100 -schedule 10s:3:20 -schedule 25s:3:100 ;;
	*) die "unknown scenario $1" ;;
	esac
}

# side KIND SCENARIO DIR: one relay (sluice or postfix) against its own
# fake MX. Runs in a subshell with its own cleanup.
side() {
	local kind=$1 scen=$2 dir=$3 n
	n=$(n_of "$scen")
	BENCH_CLEANUP=()
	trap bench_cleanup EXIT
	trap 'exit 130' INT TERM
	mkdir -p "$dir"
	local args=()
	mapfile -t args < <(mx_args "$scen")

	"$BENCH_BIN/fakemx" -addr 127.0.0.1:0 -http 127.0.0.1:0 -stats "$dir/stats.json" \
		"${args[@]}" >"$dir/mx.out" 2>"$dir/mx.err" &
	local mx=$!
	bench_on_exit "kill_pid $mx"
	for _ in $(seq 100); do [ "$(wc -l <"$dir/mx.out")" -ge 2 ] && break; sleep 0.05; done
	local mx_start mxaddr http
	mx_start=$(now_s)
	mxaddr=$(sed -n 1p "$dir/mx.out")
	http=$(sed -n 's/^http //p' "$dir/mx.out")
	[ -n "$mxaddr" ] && [ -n "$http" ] || { cat "$dir/mx.err" >&2; die "$kind/$scen: fake MX did not start"; }

	local port
	port=$(free_port)
	if [ "$kind" = sluice ]; then
		sed -e "s|^data_dir = .*|data_dir = \"$dir/data\"|" \
			-e "s|^smtp = .*|smtp = \"127.0.0.1:$port\"|" \
			-e "s|^host = .*|host = \"$mxaddr\"|" \
			"$BENCH_REPO/bench/throttle/sluice.toml" >"$dir/sluice.toml"
		"$BENCH_BIN/sluice" serve --config "$dir/sluice.toml" >"$dir/relay.log" 2>&1 &
		local relay=$!
		bench_on_exit "kill_pid $relay"
	else
		pf_create "$dir/pf" "$port" "${mxaddr##*:}" "${PF_SCALED[@]}"
		pf_start "$dir/pf"
	fi
	wait_port "$port"

	local inject_start end
	inject_start=$(now_s)
	"$BENCH_BIN/sluice-inject" -addr "127.0.0.1:$port" -n "$n" -c 20 -size 2048 \
		-from bench@sender.test -to 'user%d@dest.test' -acked "$dir/acked" \
		-deadline "${CAP}s" >"$dir/inject.out" 2>"$dir/inject.err" ||
		echo "$kind/$scen: sluice-inject failed: $(tail -n 3 "$dir/inject.err")" >&2
	while :; do
		local got
		got=$(curl -fsS "http://$http/stats" | jq '.stats.delivered - .stats.duplicates' 2>/dev/null || echo 0)
		[ "${got:-0}" -ge "$n" ] && break
		awk -v a="$(now_s)" -v b="$inject_start" -v c="$CAP" 'BEGIN { exit !(a - b > c) }' && break
		sleep 0.5
	done
	end=$(now_s)
	kill -TERM "$mx"
	wait "$mx" || true
	printf 'mx_start=%s\ninject_start=%s\nend=%s\n' "$mx_start" "$inject_start" "$end" >"$dir/times"
	[ -s "$dir/stats.json" ] || die "$kind/$scen: the fake MX wrote no stats"
}

header() {
	echo "== $1: N=$(n_of "$1") messages, one recipient each; fake MX $(mx_args "$1" | while IFS= read -r a; do case $a in *" "*) printf "'%s' " "$a" ;; *) printf '%s ' "$a" ;; esac; done)"
	echo "   sluice: bench/throttle/sluice.toml (defaults; retry_base 1s, retry_max 10s, greylist_default 6s)"
	echo "   postfix: minimal_backoff_time 1s, maximal_backoff_time 10s, queue_run_delay 1s, destination concurrency 20; cap ${CAP}s per side"
}

# report_flags SCENARIO: the report tool's view of the same scenario.
report_flags() {
	case $1 in
	throttle) echo -sessions 3 -rate 100 ;;
	lowrate) echo -sessions 1 -rate 5 ;;
	greylist-hinted | greylist-plain) echo -greylist 10s ;;
	greylist-[0-9]*s) echo -greylist "${1#greylist-}" ;;
	outage) echo -outage 0s-15s ;;
	shifting) echo -sessions 3 -rate 100 -schedule 10s:1:20 -schedule 25s:3:100 ;;
	drop) echo -sessions 3 -rate 100 -schedule 10s:3:20 -schedule 25s:3:100 ;;
	esac
}

main() {
	echo "throttled receivers, $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs, Postfix $(postconf -dh mail_version 2>/dev/null || echo absent)"
	local scen pids
	for scen in $SCENARIOS; do
		echo "running $scen..." >&2
		pids=()
		local sdir="" pdir=""
		if [ "${NO_SLUICE:-0}" != 1 ]; then
			sdir=$WORK/$scen/sluice
			(side sluice "$scen" "$sdir") &
			pids+=($!)
		fi
		if pf_available; then
			pdir=$WORK/$scen/postfix
			(side postfix "$scen" "$pdir") &
			pids+=($!)
		fi
		local p ok=1
		for p in "${pids[@]}"; do bench_on_exit "kill_pid $p"; done
		for p in "${pids[@]}"; do wait "$p" || ok=0; done
		[ "$ok" = 1 ] || die "$scen: a side failed (KEEP=1 keeps $WORK for its logs)"
		echo
		header "$scen"
		# shellcheck disable=SC2046 # the flags are words on purpose
		"$BENCH_BIN/report" -scenario "$scen" -n "$(n_of "$scen")" $(report_flags "$scen") \
			-sluice "$sdir" -postfix "$pdir"
	done
}

main | tee "$OUT"
