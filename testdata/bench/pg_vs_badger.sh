#!/bin/bash
# pg_vs_badger.sh: the issue 14 benchmarks of BENCHMARKS.md ("Issue 14:
# PostgreSQL vs Badger"), in one run so the ratios compare like with like
# on a noisy machine:
#   - server CPU per authentication (hardbound's utime+stime from /proc,
#     and the PostgreSQL server's processes' for the PostgreSQL node),
#     one node on Badger and one on PostgreSQL, alternately, ROUNDS times;
#   - ACME device-attest-01 and SCEP issuances/s with one node on Badger,
#     one node on PostgreSQL and three nodes on one PostgreSQL (one
#     `bench enroll` per node, at once; the rate is all issuances over the
#     wall time of the three).
#
# usage: HB=./hb testdata/bench/pg_vs_badger.sh WORKDIR
# knobs: ROUNDS (3), AUTHS (10000), ENROLLS (300 per protocol and set-up),
#        CONC (8), PG_BIN (/usr/lib/postgresql/<newest>/bin), CPU_SETUPS
#        (badger postgres badger-sync postgres-sync: -sync runs the node
#        with radius.audit_sync), SKIP_ENROLL=1
#
# PostgreSQL runs with its defaults (fsync and synchronous_commit on), as
# Badger syncs its writes: both pay a flush per commit. Everything listens
# on 127.0.0.1.
set -euo pipefail
W=${1:?usage: $0 WORKDIR}
HB=${HB:-hb}
ROUNDS=${ROUNDS:-3}
AUTHS=${AUTHS:-10000}
ENROLLS=${ENROLLS:-300}
CONC=${CONC:-8}
PG_BIN=${PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)}
PGPORT=${PGPORT:-25432}
mkdir -p "$W"
W=$(cd "$W" && pwd)
HB=$(command -v "$HB" || echo "$HB")
HB=$(cd "$(dirname "$HB")" && pwd)/$(basename "$HB")

pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	pg stop >/dev/null 2>&1 || true
}
trap cleanup EXIT

# pg runs a PostgreSQL program (as the postgres user under root: initdb
# refuses root).
pgrun() {
	if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
pg() {
	case $1 in
	init)
		mkdir -p "$W/pg" && { [ "$(id -u)" != 0 ] || chown postgres "$W/pg"; }
		pgrun "$PG_BIN/initdb" -D "$W/pg/data" -U hardbound --auth=trust -E UTF8 >/dev/null
		pgrun "$PG_BIN/pg_ctl" -D "$W/pg/data" -l "$W/pg/log" -w \
			-o "-h 127.0.0.1 -p $PGPORT -k $W/pg -c max_connections=200" start >/dev/null ;;
	stop) pgrun "$PG_BIN/pg_ctl" -D "$W/pg/data" -m fast stop ;;
	db) pgrun "$PG_BIN/psql" -h 127.0.0.1 -p "$PGPORT" -U hardbound -d postgres -qc "CREATE DATABASE $2" ;;
	esac
}

# pgcpu: utime+stime (clock ticks) of every process of the PostgreSQL
# server, the postmaster's children included.
pgcpu() {
	local pm t=0 p
	pm=$(head -1 "$W/pg/data/postmaster.pid")
	for p in $pm $(ps -o pid= --ppid "$pm"); do
		t=$((t + $(awk '{print $14+$15}' /proc/"$p"/stat 2>/dev/null || echo 0)))
	done
	# children that exited meanwhile are counted by the kernel into the
	# postmaster's cutime+cstime
	echo $((t + $(awk '{print $16+$17}' /proc/"$pm"/stat)))
}
cpu() { awk '{print $14+$15}' /proc/"$1"/stat; }

# node NAME K BACKEND [DB] starts node K (ports 2K...) and sets PID;
# BACKEND badger-sync or postgres-sync adds radius.audit_sync: true.
node() {
	local name=$1 k=$2 backend=${3%-sync} db=${4:-} sync=false
	[ "$3" = "$backend" ] || sync=true
	local d="$W/$name"
	mkdir -p "$d"
	{
		echo "log: {level: warn}"
		echo "radius: {auth_addr: 127.0.0.1:2${k}120, acct_addr: 127.0.0.1:2${k}130, radsec: {addr: 127.0.0.1:2${k}083}, audit_sync: $sync}"
		echo "enroll:"
		echo "  https_addr: 127.0.0.1:2${k}443"
		echo "  http_addr: 127.0.0.1:2${k}080"
		# The defaults answer a benchmark with 429 after ~20 issuances.
		echo "  rate_limits:"
		echo "    per_ip: {every: 1us, burst: 1000000}"
		echo "    per_device: {every: 1us, burst: 1000}"
		echo "    per_profile: {every: 1us, burst: 1000000}"
		# SCEP's keys are unattested: SCEP issues under a profile that
		# admits them (it issues only what authentication would admit).
		echo "profiles: [{name: default}, {name: migration, formats: [apple, tpm, android-key, none]}]"
		echo "admin: {addr: 127.0.0.1:2${k}943}"
		echo "metrics: {addr: 127.0.0.1:2${k}812}"
		if [ "$backend" = postgres ]; then
			echo "host=127.0.0.1 port=$PGPORT user=hardbound dbname=$db" >"$d/dsn"
			chmod 600 "$d/dsn"
			echo "store: {backend: postgres, postgres: {dsn_file: $d/dsn}}"
		fi
	} >"$d/hb.yaml"
	"$HB" serve --dev --config "$d/hb.yaml" --data-dir "$d/data" >"$d/out.log" 2>"$d/err.log" &
	PID=$!
	pids+=("$PID")
	for _ in $(seq 300); do
		curl -sf "http://127.0.0.1:2${k}812/metrics" >/dev/null && [ -s "$d/data/admin.token" ] && return 0
		kill -0 "$PID" 2>/dev/null || { cat "$d/err.log" >&2; return 1; }
		sleep 0.1
	done
	echo "node $name did not come up" >&2
	return 1
}
stopnode() { kill "$1"; wait "$1" 2>/dev/null || true; }
api() { # api K DIR: the admin client environment of node K
	export HARDBOUND_SERVER=https://127.0.0.1:2${1}943 HARDBOUND_TOKEN_FILE=$2/data/admin.token HARDBOUND_CA_FILE=$2/data/ca/root.crt
}

# seed NAME: copies node1's CA and audit checkpoint key into NAME's data
# dir (docs/ha.md: kept out of the database, the same on every node).
seed() {
	mkdir -p "$W/$2/data"
	cp -a "$W/$1/data/ca" "$W/$1/data/audit" "$W/$2/data/"
}

pg init
echo "# PostgreSQL $("$PG_BIN/postgres" --version | awk '{print $3}'), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"

# --- server CPU per authentication ---------------------------------------
echo "## CPU per authentication: TLS 1.3, concurrency $CONC, $AUTHS authentications after 1000 warm-up, 1000 devices"
for r in $(seq "$ROUNDS"); do
	for backend in ${CPU_SETUPS:-badger postgres badger-sync postgres-sync}; do
		name=cpu-$backend-$r
		db=cpu_${backend//-/_}_$r
		[ "${backend%-sync}" = badger ] || pg db "$db"
		node "$name" 1 "$backend" "$db"
		d=$W/$name
		api 1 "$d"
		"$HB" bench make-devices --n 1000 --out "$d/devs" >/dev/null
		"$HB" bench eaptls --server 127.0.0.1:21120 --secret-file "$d/data/radius.secret" --cert-dir "$d/devs" --tls 1.3 --count 1000 --concurrency "$CONC" >/dev/null
		c0=$(cpu "$PID")
		p0=0
		[ "${backend%-sync}" = badger ] || p0=$(pgcpu)
		"$HB" bench eaptls --server 127.0.0.1:21120 --secret-file "$d/data/radius.secret" --cert-dir "$d/devs" --tls 1.3 \
			--count "$AUTHS" --concurrency "$CONC" >"$d/eaptls.txt"
		c1=$(cpu "$PID")
		p1=0
		[ "${backend%-sync}" = badger ] || p1=$(pgcpu)
		tick=$(getconf CLK_TCK)
		printf 'round %s %-13s hardbound %s ms/auth  postgres %s ms/auth  %s\n' "$r" "$backend" \
			"$(echo "scale=3; ($c1-$c0)*1000/$tick/$AUTHS" | bc)" "$(echo "scale=3; ($p1-$p0)*1000/$tick/$AUTHS" | bc)" \
			"$(grep -E 'accepts|authentications' "$d/eaptls.txt" | tr -s ' ' | tr '\n' ' ')"
		stopnode "$PID"
	done
done

# --- issuances per second --------------------------------------------------
# enroll SETUP K...: one `bench enroll --protocol P` per listed node at
# once, ENROLLS/number-of-nodes each; prints the aggregate rate.
enroll() {
	local setup=$1 proto=$2
	shift 2
	local n=$# per=$((ENROLLS / $#)) t0 t1 k ok=0 i=0 jobs=()
	t0=$(date +%s.%N)
	for k in "$@"; do
		i=$((i + 1))
		(
			api "$k" "$W/$setup-n$k"
			"$HB" bench enroll --protocol "$proto" --profile migration --count "$per" --concurrency "$CONC" \
				--enroll-url "https://127.0.0.1:2${k}443" --data-dir "$W/$setup-n$k/data" --json >"$W/$setup-$proto-n$k.json"
		) &
		jobs+=($!)
	done
	for j in "${jobs[@]}"; do wait "$j" || ok=1; done
	t1=$(date +%s.%N)
	local issued p99 el
	issued=$(cat "$W/$setup"-"$proto"-n*.json | grep -o '"issued": [0-9]*' | awk '{s+=$2} END {print s}')
	# the timed phase of each `bench enroll` (SCEP's key generation and
	# challenge minting come before it): the rate is over the longest one
	el=$(cat "$W/$setup"-"$proto"-n*.json | grep -o '"elapsed_ns": [0-9]*' | awk '$2>m {m=$2} END {print m/1e9}')
	p99=$(cat "$W/$setup"-"$proto"-n*.json | grep -o '"p99_ns": [0-9]*' | awk '{printf "%.1f ", $2/1e6}')
	printf '%-16s %-5s %d node(s): %s issued, timed %.2fs: %.1f/s (wall %.2fs; p99 ms per node: %s) exit %d\n' "$setup" "$proto" "$n" \
		"$issued" "$el" "$(echo "$issued/$el" | bc -l)" "$(echo "$t1-$t0" | bc)" "$p99" "$ok"
}

[ -z "${SKIP_ENROLL:-}" ] || exit 0
echo "## Issuances/s: $ENROLLS per protocol and set-up, concurrency $CONC per node"
for r in $(seq "$ROUNDS"); do
	node "badger1-$r-n1" 1 badger
	b1=$PID
	enroll "badger1-$r" acme 1
	enroll "badger1-$r" scep 1
	stopnode "$b1"

	pg db "one_$r"
	node "pg1-$r-n1" 1 postgres "one_$r"
	p1=$PID
	enroll "pg1-$r" acme 1
	enroll "pg1-$r" scep 1
	stopnode "$p1"

	pg db "three_$r"
	node "pg3-$r-n1" 1 postgres "three_$r"
	n1=$PID
	seed "pg3-$r-n1" "pg3-$r-n2"
	seed "pg3-$r-n1" "pg3-$r-n3"
	node "pg3-$r-n2" 2 postgres "three_$r"
	n2=$PID
	node "pg3-$r-n3" 3 postgres "three_$r"
	n3=$PID
	enroll "pg3-$r" acme 1 2 3
	enroll "pg3-$r" scep 1 2 3
	stopnode "$n1"
	stopnode "$n2"
	stopnode "$n3"
done
