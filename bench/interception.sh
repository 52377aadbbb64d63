#!/usr/bin/env bash
# What transparent interception adds to a call between two pods (issue 9). Pod a calls pod b's
# nginx by IP and port with wrk, first directly (no rules, no proxies), then intercepted:
# `eino init` in both pods, a sidecar in each (control-plane mode, uid 7102), mTLS and HTTP/2
# between the sidecars, exactly as the pods test (Tests/EinoCLITests/PodsTests.swift) runs them.
#
#   bash bench/interception.sh                      # release eino, built into .build-release if missing
#   EINO=.build/debug/eino bash bench/interception.sh
#   BENCH_DURATION=10 BENCH_CONNECTIONS="1 16"      # seconds per wrk run; wrk connection counts
#
# Needs root (network namespaces, iptables). Uses 10.214.0.0/24 and the names eino-ib-*; removes
# everything it made when it ends. Not a test: nothing here runs in `make test`.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION="${BENCH_DURATION:-10}"
CONNECTIONS="${BENCH_CONNECTIONS:-1 16}"
if [ -z "${EINO:-}" ]; then
    [ -x .build-release/release/eino ] || bash release/build.sh --product eino
    EINO=.build-release/release/eino
fi
EINO="$(realpath "$EINO")"
for tool in nginx wrk setpriv iptables; do
    command -v "$tool" >/dev/null || { echo "interception: $tool is missing (make deps; apt-get install nginx)" >&2; exit 1; }
done

BRIDGE=eino-ib NET=10.214.0 A=eino-ib-a B=eino-ib-b
A_IP=$NET.10 B_IP=$NET.11
WORK="$(mktemp -d -t eino-interception-XXXXXX)"
chmod 755 "$WORK"
PIDS=()

cleanup() {
    for pid in "${PIDS[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
    { wait; } 2>/dev/null || true
    ip netns del $A 2>/dev/null || true
    ip netns del $B 2>/dev/null || true
    ip link del $BRIDGE 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

# Polls a command (up to 20 s): the way to wait for something, not a guessed sleep.
until_ok() {
    for _ in $(seq 200); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
    echo "interception: timed out waiting for: $*" >&2
    exit 1
}

ip link add $BRIDGE type bridge
ip addr add $NET.1/24 dev $BRIDGE
ip link set $BRIDGE up
for pod in "$A:$A_IP" "$B:$B_IP"; do
    ns=${pod%%:*} ip=${pod##*:}
    veth=eibv-${ns##*-}
    ip netns add "$ns"
    ip link add "$veth" type veth peer name eth0 netns "$ns"
    ip link set "$veth" master $BRIDGE up
    ip netns exec "$ns" ip link set lo up
    ip netns exec "$ns" ip addr add "$ip/24" dev eth0
    ip netns exec "$ns" ip link set eth0 up
done

# Pod b's app: nginx answering 1 KiB, as in bench/bench.py.
mkdir -p "$WORK/nginx"
BODY=$(printf 'x%.0s' $(seq 1023))
cat >"$WORK/nginx/nginx.conf" <<EOF
worker_processes 1;
master_process off;
daemon off;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events { worker_connections 8192; }
http {
    access_log off;
    keepalive_requests 1000000000;
    keepalive_timeout 600s;
    client_body_temp_path $WORK/nginx/client_body;
    proxy_temp_path $WORK/nginx/proxy;
    fastcgi_temp_path $WORK/nginx/fastcgi;
    uwsgi_temp_path $WORK/nginx/uwsgi;
    scgi_temp_path $WORK/nginx/scgi;
    default_type text/plain;
    server {
        listen 0.0.0.0:8080 backlog=4096;
        location / { return 200 "$BODY\n"; }
    }
}
EOF
ip netns exec $B nginx -c "$WORK/nginx/nginx.conf" &
PIDS+=($!)
until_ok ip netns exec $A curl -sf "http://$B_IP:8080/"

echo "| path | connections | req/s | mean | p50 | p99 |"
echo "|---|---|---|---|---|---|"
measure() {
    for connections in $CONNECTIONS; do
        out=$(ip netns exec $A wrk -t1 -c"$connections" -d"${DURATION}s" --latency "http://$B_IP:8080/")
        rate=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
        mean=$(awk '$1 == "Latency" {print $2; exit}' <<<"$out")
        p50=$(awk '$1 == "50%" {print $2}' <<<"$out")
        p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
        echo "| $1 | $connections | $rate | $mean | $p50 | $p99 |"
    done
}
measure direct

# Intercepted: the control plane on the bridge address, then per pod eino init, then the sidecar.
"$EINO" control --data-dir "$WORK/control" --listen $NET.1:7443 --server-name $NET.1 >"$WORK/control.log" 2>&1 &
PIDS+=($!)
until_ok grep -q "eino control ready" "$WORK/control.log"
mkdir -p "$WORK/shared" && cp "$WORK/control/ca.pem" "$WORK/shared/" && chmod -R a+rX "$WORK/shared"
sidecar() {  # namespace ip service app
    ip netns exec "$1" "$EINO" init --ipv6 off >/dev/null 2>&1
    token=$("$EINO" token create --service "$3" --control https://$NET.1:7443 --data-dir "$WORK/control")
    ip netns exec "$1" setpriv --reuid 7102 --regid 7102 --clear-groups "$EINO" proxy --service "$3" --app "$4" \
        --control https://$NET.1:7443 --join-token "$token" --ca-file "$WORK/shared/ca.pem" --advertise "$2:7143" \
        >"$WORK/$3.log" 2>&1 &
    PIDS+=($!)
}
sidecar $B $B_IP web 127.0.0.1:8080
sidecar $A $A_IP client 127.0.0.1:9
until_ok sh -c "ip netns exec $A curl -sf http://127.0.0.1:7191/config | grep -q '\"$B_IP:7143\"'"
until_ok ip netns exec $A curl -sf "http://$B_IP:8080/"
measure intercepted
# The calls really crossed both sidecars over mTLS.
metrics=$(ip netns exec $B curl -s http://127.0.0.1:7191/metrics)
grep -qF 'eino_requests_total{direction="inbound",service="web",backend="web",tls="true"}' <<<"$metrics" \
    || { echo "interception: pod b's sidecar saw no mTLS requests:" >&2; grep requests_total <<<"$metrics" >&2; exit 1; }
echo
echo "eino: $EINO ($("$EINO" version 2>/dev/null || echo '?')), wrk -t1 -d${DURATION}s, $(nproc) cores"
