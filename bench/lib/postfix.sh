# A throw-away Postfix instance for side-by-side runs: its own config
# directory, queue directory and data directory under a temp dir, listening
# on 127.0.0.1:PORT only and relaying everything to one loopback host.
# Sourced after common.sh. The system instance in /etc/postfix is not
# started; if the default main.cf must list our config directory in
# alternate_config_directories (postfix(1) refuses an unlisted one), the
# original main.cf is restored on exit.

PF_BIN=${PF_BIN:-/usr/sbin/postfix}

pf_available() { [ -x "$PF_BIN" ] && [ "${NO_POSTFIX:-0}" != 1 ]; }

# pf_create DIR LISTEN_PORT RELAY_PORT [main.cf line...]: write the instance.
pf_create() {
	local dir=$1 listen=$2 relay=$3
	shift 3
	mkdir -p "$dir/conf" "$dir/queue" "$dir/data"
	# Postfix daemons run as the postfix user: every parent must be
	# searchable (mktemp -d makes 0700 directories).
	chmod 755 "$dir" "$(dirname "$dir")"
	chown postfix "$dir/data"
	cat >"$dir/conf/main.cf" <<EOM
compatibility_level = 3.6
queue_directory = $dir/queue
data_directory = $dir/data
maillog_file_prefixes = $dir
maillog_file = $dir/maillog
syslog_name = postfix-bench
myhostname = postfix-bench.localhost
mydomain = localhost
myorigin = \$myhostname
mydestination =
local_recipient_maps =
local_transport = error:5.1.1 no local delivery in the bench
alias_maps =
alias_database =
biff = no
inet_interfaces = loopback-only
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject
smtpd_recipient_restrictions =
smtpd_tls_security_level = none
smtp_tls_security_level = none
relayhost = [127.0.0.1]:$relay
default_destination_concurrency_limit = 20
smtp_destination_concurrency_limit = 20
EOM
	local kv
	for kv in "$@"; do echo "$kv" >>"$dir/conf/main.cf"; done
	# chroot is off: the queue lives in a temp dir, not /var/spool/postfix.
	cat >"$dir/conf/master.cf" <<EOM
127.0.0.1:$listen inet n - n - - smtpd
pickup    unix  n - n 60 1 pickup
cleanup   unix  n - n - 0 cleanup
qmgr      unix  n - n 300 1 qmgr
rewrite   unix  - - n - - trivial-rewrite
bounce    unix  - - n - 0 bounce
defer     unix  - - n - 0 bounce
trace     unix  - - n - 0 bounce
verify    unix  - - n - 1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n - - proxymap
proxywrite unix - - n - 1 proxymap
smtp      unix  - - n - - smtp
relay     unix  - - n - - smtp
showq     unix  n - n - - showq
error     unix  - - n - - error
retry     unix  - - n - - error
discard   unix  - - n - - discard
local     unix  - n n - - local
anvil     unix  - - n - 1 anvil
scache    unix  - - n - 1 scache
postlog   unix-dgram n - n - 1 postlogd
EOM
}

# pf_allow_dir DIR: list DIR/conf in the default main.cf if postfix(1)
# wants it, restoring the original on exit.
pf_allow_dir() {
	local conf=$1/conf cur
	cur=$(postconf -h alternate_config_directories 2>/dev/null)
	case " $cur " in *" $conf "*) return 0 ;; esac
	# A backup left by a run that was killed is the true original.
	if [ ! -e /etc/postfix/main.cf.bench-orig ]; then
		cp -p /etc/postfix/main.cf /etc/postfix/main.cf.bench-orig
	fi
	if [ -z "${PF_RESTORE_SET:-}" ]; then
		PF_RESTORE_SET=1
		bench_on_exit "mv -f /etc/postfix/main.cf.bench-orig /etc/postfix/main.cf"
	fi
	postconf -e "alternate_config_directories = ${cur:+$cur }$conf"
}

# pf_start DIR: start the instance; it is stopped on exit.
pf_start() {
	local dir=$1
	pf_allow_dir "$dir"
	bench_on_exit "pf_stop $dir"
	"$PF_BIN" -c "$dir/conf" start >"$dir/start.log" 2>&1 ||
		{ cat "$dir/start.log" "$dir/maillog" >&2; die "postfix -c $dir/conf start failed"; }
}

# pf_master_pid DIR
pf_master_pid() { sed -n '1s/ //gp' "$1/queue/pid/master.pid" 2>/dev/null; }

# pf_stop DIR: stop the instance and wait until its master has exited.
pf_stop() {
	local dir=$1 pid
	pid=$(pf_master_pid "$dir")
	"$PF_BIN" -c "$dir/conf" abort >/dev/null 2>&1 || true
	[ -n "$pid" ] || return 0
	for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
	kill -9 "$pid" 2>/dev/null || true
}

# pf_queued DIR: messages still in the instance's queue.
pf_queued() {
	find "$1/queue/maildrop" "$1/queue/incoming" "$1/queue/active" \
		"$1/queue/deferred" "$1/queue/hold" -type f 2>/dev/null | wc -l
}

# pf_rss_kb DIR: summed Pss of the instance's processes, in KB. Postfix
# is many processes sharing libraries; summing VmRSS would count the shared
# pages once per process, so the proportional set size is summed instead.
pf_rss_kb() {
	local dir=$1 pid total=0 v
	pid=$(pf_master_pid "$dir")
	[ -n "$pid" ] || { echo 0; return; }
	for p in $pid $(pgrep -P "$pid"); do
		v=$(awk '/^Pss:/ {print $2}' "/proc/$p/smaps_rollup" 2>/dev/null)
		total=$((total + ${v:-0}))
	done
	echo "$total"
}
