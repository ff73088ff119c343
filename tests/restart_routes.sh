#!/bin/bash
# What routing.learn_file saves after a restart, measured: a 500-phone boot
# storm (`ctftp bench --server`) through a real `ctftp serve` in front of
# two in.tftpd sub-clusters (internal/fleet's signed files, phones found
# by fan-out), the gateway stopped and started again, the same storm
# again; the gateway's backend fetches and routing decisions are read from
# its /metrics after each storm. Needs root (in.tftpd chroots) and
# tftpd-hpa, curl; loopback ports 17001-17070. Run from the repository:
#   sudo bash tests/restart_routes.sh
# Not part of the test suite: it prints numbers, it asserts nothing.
set -eu
W=$(mktemp -d)
B=$W/ctftp
go build -o $B ./cmd/ctftp
# The fleet: --dir keeps what the side-by-side generates.
(cd $W && $B bench --side-by-side --phones 500 --concurrency 20 --in-flight 0 --quiet --dir $W/fleet >/dev/null)
in.tftpd -L -s -u root -a 127.0.0.1:17001 $W/fleet/east & E=$!
in.tftpd -L -s -u root -a 127.0.0.1:17002 $W/fleet/west & V=$!
trap 'kill $E $V 2>/dev/null; rm -rf $W' EXIT
metric() { curl -s http://127.0.0.1:17070/metrics | awk -v re="$1" '$0 ~ re {s+=$2} END{print s+0}'; }
storm() { $B bench --server 127.0.0.1:17069 --phones 500 --concurrency 20 --quiet | grep -o '[0-9.]* phones/s' | head -1; }
run() { # $1: learn_file, $2: label, $3: storms
	cat > $W/cfg.yaml <<Y
listen: ["127.0.0.1:17069"]
admin_listen: "127.0.0.1:17070"
root: $W/fleet/root
subclusters:
  - {name: east, version: "14", backends: ["127.0.0.1:17001"]}
  - {name: west, version: "14", backends: ["127.0.0.1:17002"]}
backend: {max_in_flight: 50}
routing:
  learn_file: "$1"
Y
	$B serve --config $W/cfg.yaml 2>>$W/log & G=$!
	for i in $(seq 100); do curl -sf http://127.0.0.1:17070/readyz >/dev/null && break; sleep 0.1; done
	before=0
	for s in $(seq $3); do
		before=$(metric '^ctftp_backend_fetches_total')
		rate=$(storm)
		sleep 6 # past cache.ttl.device: each storm fetches the phones' own files
	done
	echo "$2: last storm $(( $(metric '^ctftp_backend_fetches_total') - before )) backend fetches;" \
		"decisions: fan-out $(metric 'kind="fanout"'), learned $(metric 'kind="learned"') in all; $rate"
	kill -TERM $G
	wait $G
}
echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
run "" "one gateway, second storm (no restart)" 2
run "" "restarted, no learn_file" 1
run "$W/routes.txt" "first start with learn_file" 1
run "$W/routes.txt" "restarted, with learn_file" 1
grep -h "restored from learn_file" $W/log | sed 's/^/  /'
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
