#!/usr/bin/env bash
# The demo: the whole chain on one machine, on the embedded default relay.
#
#   redis-cli ──TCP──▶ [hcmd forward] ──wss──▶ [hcrelay] ◀──wss── [hcmd connection] ──TCP──▶ redis-server
#
# It makes a test CA and a certificate for localhost, starts hcrelay, a real
# redis-server, one hcmd with a listener in front of redis and a forwarder
# whose hostname (redis.demo.internal) is mapped in the hosts file, then
# talks to redis by that name through the chain and prints what went
# through. Everything it starts is stopped at the end.
#   scripts/demo.sh [BUILD]        (make demo runs it)
set -euo pipefail
cd "$(dirname "$0")/.."
build=$PWD/${1:-build}
dir=$PWD/demo
rm -rf "$dir" && mkdir -p "$dir"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT

free_port() { node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'; }
wait_log() { # file pattern seconds
  for _ in $(seq 1 $(($3 * 10))); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
  echo "demo: timed out waiting for '$2' in $1" >&2; cat "$1" >&2; exit 1
}
key() { head -c 32 /dev/urandom | base64; }

echo "== 1. certificates for localhost (test CA in $dir)"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
  -subj "/CN=hcmd demo CA" -keyout "$dir/ca.key" -out "$dir/ca.crt" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=localhost \
  -keyout "$dir/relay.key" -out "$dir/relay.csr" 2>/dev/null
printf 'subjectAltName=DNS:localhost\n' > "$dir/san.ext"
openssl x509 -req -in "$dir/relay.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" \
  -CAcreateserial -days 2 -extfile "$dir/san.ext" -out "$dir/relay.crt" 2>/dev/null

relay_port=$(free_port); redis_port=$(free_port); fwd_port=$(free_port)
cat > "$dir/relay.ini" <<EOF
[relay]
listen = 127.0.0.1:$relay_port
cert_file = $dir/relay.crt
key_file = $dir/relay.key
hostname = localhost

[hybrid-connection redis]
user_metadata = [{"key":"endpoint","value":"localhost:$redis_port"}]

[rule redis/defaultListener]
rights = Listen
primary_key = $(key)

[rule redis/defaultSender]
rights = Send
primary_key = $(key)
EOF
chmod 600 "$dir/relay.ini"

echo "== 2. hcrelay on localhost:$relay_port"
"$build/hcrelay" -c "$dir/relay.ini" 2> "$dir/hcrelay.log" & pids+=($!)
wait_log "$dir/hcrelay.log" "listening on" 10

echo "== 3. redis-server on localhost:$redis_port (the private service)"
redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no \
  > "$dir/redis.log" 2>&1 & pids+=($!)
for _ in $(seq 50); do redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break; sleep 0.1; done

# The hosts file: the real one when we may write it, else a file of our own.
hosts=/etc/hosts
if [ ! -w /etc/hosts ]; then hosts=$dir/hosts; cp /etc/hosts "$hosts"; fi
cat > "$dir/hcm.ini" <<EOF
[hcmd]
ca_file = $dir/ca.crt
hosts_file = $hosts

; The listener (the HCM) in front of redis; the endpoint comes from the
; hybrid connection's user metadata.
[connection redis]
connection_string = $("$build/hcrelay" -c "$dir/relay.ini" connection-string redis defaultListener)

; The forwarder (the App Service side) that the client uses.
[forward redis-client]
connection_string = $("$build/hcrelay" -c "$dir/relay.ini" connection-string redis defaultSender)
bind = $fwd_port
hostname = redis.demo.internal
EOF
chmod 600 "$dir/hcm.ini"

echo "== 4. hcmd with a listener and a forwarder"
"$build/hcmd" -c "$dir/hcm.ini" 2> "$dir/hcmd.log" & pids+=($!)
wait_log "$dir/hcmd.log" "connected to localhost:$relay_port as listener" 10
grep -A2 '^# BEGIN hcmd' "$hosts" | sed 's/^/   hosts: /'
addr=$(awk '$2 == "redis.demo.internal" {print $1}' "$hosts")

name=redis.demo.internal
[ "$hosts" = /etc/hosts ] || name=$addr  # no resolver sees our private file
echo "== 5. redis-cli -h $name -p $fwd_port, through the chain"
for cmd in "PING" "SET greeting hello-through-the-hybrid-connection" "GET greeting" "INCR visits"; do
  # shellcheck disable=SC2086
  printf '   %-55s -> %s\n' "$cmd" "$(redis-cli -h "$name" -p "$fwd_port" $cmd)"
done
direct=$(redis-cli -p "$redis_port" GET greeting)
echo "   direct GET greeting on redis itself                    -> $direct"
[ "$direct" = hello-through-the-hybrid-connection ]

echo "== 6. what went through (hcmd's tunnel log lines)"
sleep 0.3
grep -E 'tunnel redis |forward redis-client ' "$dir/hcmd.log" | sed -E 's/^[^ ]+ hcmd info: /   /' | head -8
cleanup
trap - EXIT
if [ "$hosts" = /etc/hosts ] && grep -q '^# BEGIN hcmd' /etc/hosts; then
  echo "demo: hcmd left its block in /etc/hosts" >&2; exit 1
fi
echo "OK: redis reached by name through hcmd forward -> hcrelay -> hcmd listener"
