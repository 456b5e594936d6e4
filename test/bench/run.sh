#!/usr/bin/env bash
# hcmd benchmark (issue 6): every path measured in one run on loopback, TLS on
# every relay leg, one table with the targets beside the figures.
#
#   test/bench/run.sh [--quick] [--build DIR]      (make bench runs it)
#
# Paths, all carrying the same traffic to the same endpoint (hcbench server):
#   direct   app -> endpoint
#   socat    app -> socat -> socat -> endpoint                 (no crypto)
#   stunnel  app -> stunnel client -TLS-> stunnel "relay" (server, then
#            client again) -TLS-> stunnel server -> endpoint   (OpenSSL)
#   hcmd     app -> hcmd forwarder -TLS-> hcrelay -TLS-> hcmd listener -> endpoint
#   hyco-ws  app -> hcmd forwarder -TLS-> hcrelay -TLS-> Node hyco-ws agent
#            (test/bench/hyco-bridge.js) -> endpoint
# plus the crypto ceiling probe (aeadprobe: one AEAD pass, one core, mbedTLS).
#
# Output: the table on stdout (also BUILD/bench/table.txt), results.csv and,
# when gnuplot is there, bench.png in BUILD/bench/; logs in BUILD/bench/run/.
# Exit status: 0 when every figure was measured, 1 when one could not be
# (a tool missing, a path that did not come up, a phase that failed or timed
# out); a missed target never changes it.
set -uo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD

QUICK=0
BUILD=build
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK=1 ;;
    --build) BUILD=$2; shift ;;
    -h|--help) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "run.sh: unknown argument $1 (try --help)" >&2; exit 2 ;;
  esac
  shift
done
case $BUILD in /*) BIN=$BUILD ;; *) BIN=$ROOT/$BUILD ;; esac
OUT=$BIN/bench
WORK=$OUT/run
HB=$OUT/hcbench
MiB=1048576

if [ "$QUICK" = 1 ]; then
  MODE=quick; BUDGET=110
  TPUT_BYTES=$((64 * MiB)); TPUT8_EACH=$((8 * MiB))
  LAT_N=1000; SETUP_SEQ=100; SETUP_N=300; IDLE_N=1000; AEAD_SECS=0.5
else
  MODE=full; BUDGET=560
  TPUT_BYTES=$((1024 * MiB)); TPUT8_EACH=$((128 * MiB))
  LAT_N=10000; SETUP_SEQ=200; SETUP_N=1000; IDLE_N=8000; AEAD_SECS=1
fi
SETUP_C=16
PATHS=(direct socat stunnel hcmd hyco)
declare -A PNAME=([direct]="direct TCP" [socat]="socat x2" [stunnel]="stunnel x3" [hcmd]="hcmd chain" [hyco]="hyco-ws agt")

log() { echo "bench: $*" >&2; }
T0=$SECONDS
elapsed() { echo $((SECONDS - T0)); }
MISSING=()   # what could not be measured, for the exit status
unmeasured() { MISSING+=("$1"); log "NOT MEASURED: $1"; }

# ------------------------------------------------------------ processes ---
PIDS=()
cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill -TERM -- "-$p" 2>/dev/null || kill -TERM "$p" 2>/dev/null; done
  for _ in $(seq 30); do
    local alive=0
    for p in "${PIDS[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ $alive = 0 ] && break
    sleep 0.1
  done
  for p in "${PIDS[@]}"; do kill -KILL -- "-$p" 2>/dev/null || kill -KILL "$p" 2>/dev/null; done
  wait 2>/dev/null
  PIDS=()
}
trap cleanup EXIT
trap 'log interrupted; exit 130' INT TERM

# start NAME CMD...: in its own process group (socat forks), output in WORK.
start() {
  local name=$1; shift
  setsid "$@" > "$WORK/$name.out" 2> "$WORK/$name.err" < /dev/null &
  local pid=$!
  PIDS+=("$pid")
  printf -v "PID_$name" '%s' "$pid"
}
pid_of() { local v="PID_$1"; echo "${!v:-}"; }
alive() { local p; p=$(pid_of "$1"); [ -n "$p" ] && kill -0 "$p" 2>/dev/null; }
died() { # name: why it stopped (exit status or signal) and its last words
  local p rc how
  p=$(pid_of "$1"); wait "$p" 2>/dev/null; rc=$?
  how="exit status $rc"; [ "$rc" -gt 128 ] && how="killed by signal $((rc - 128)) ($(kill -l $((rc - 128)) 2>/dev/null))"
  log "$1 (pid $p) is not running: $how; its stderr:"; tail -n 20 "$WORK/$1.err" >&2
  DIED_HOW="$how"
}

wait_file() { # file regex seconds
  local i
  for i in $(seq $(($3 * 10))); do grep -qE "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
  return 1
}
wait_tcp() { # port seconds
  local i
  for i in $(seq $(($2 * 10))); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done
  return 1
}
kv() { grep -oE "(^| )$2=[^ ]*" "$1" 2>/dev/null | tail -n 1 | cut -d= -f2; }
rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status" 2>/dev/null; }
nfds() { ls "/proc/$1/fd" 2>/dev/null | wc -l; }
# utime+stime+cutime+cstime in ticks (children count once reaped: socat).
cpu_ticks() { [ -n "$1" ] && awk '{sub(/^.*\) /, ""); print $12 + $13 + $14 + $15}' "/proc/$1/stat" 2>/dev/null; }
CLK_TCK=$(getconf CLK_TCK)

# ---------------------------------------------------------------- tools ---
need() { command -v "$1" >/dev/null 2>&1; }
for t in cc openssl setsid timeout; do
  need "$t" || { echo "run.sh: $t is missing (scripts/install-deps.sh)" >&2; exit 1; }
done
[ -x "$BIN/hcmd" ] && [ -x "$BIN/hcrelay" ] || { echo "run.sh: $BIN/hcmd or hcrelay missing (make)" >&2; exit 1; }
STUNNEL=$(command -v stunnel4 || command -v stunnel || true)
HAVE_SOCAT=0; need socat && HAVE_SOCAT=1
HAVE_NODE=0; need node && [ -d test/interop/node_modules/hyco-ws ] && HAVE_NODE=1
HAVE_GNUPLOT=0; need gnuplot && HAVE_GNUPLOT=1

rm -rf "$WORK" && mkdir -p "$WORK"
chmod 700 "$WORK"

# ulimit: N idle tunnels cost about 2N descriptors in the listener, the
# forwarder and hcrelay each (and N in the load generator and the endpoint).
ulimit -Sn 20000 2>/dev/null || ulimit -Sn "$(ulimit -Hn)" 2>/dev/null || true
NOFILE=$(ulimit -n)
IDLE_NOTE=
if [ "$NOFILE" != unlimited ] && [ $((2 * IDLE_N + 200)) -gt "$NOFILE" ]; then
  IDLE_N=$(((NOFILE - 200) / 2))
  IDLE_NOTE=" (cut to fit ulimit -n $NOFILE)"
fi

# ---------------------------------------------------------------- build ---
log "building the load generator and the AEAD probe in $OUT"
HFLAGS=() HLIBS=()
if echo '#include <openssl/evp.h>' | cc -E - >/dev/null 2>&1; then
  HFLAGS=(-DHCB_OPENSSL) HLIBS=(-lcrypto)
else
  log "no OpenSSL headers (libssl-dev): hashing with mbedTLS, slower (direct TCP will show it)"
fi
cc -O2 -std=c99 -D_GNU_SOURCE -Wall -Wextra "${HFLAGS[@]}" -o "$HB" test/bench/hcbench.c \
  "${HLIBS[@]}" -lmbedcrypto || { echo "run.sh: cannot build hcbench" >&2; exit 1; }
cc -O2 -std=c99 -D_GNU_SOURCE -Wall -Wextra "${HFLAGS[@]}" -o "$OUT/aeadprobe" test/bench/aeadprobe.c \
  -lmbedcrypto "${HLIBS[@]}" || { echo "run.sh: cannot build aeadprobe" >&2; exit 1; }

declare -A V   # V[metric|path] = figure

# --------------------------------------------------- 6. crypto ceiling ---
log "AEAD probe (${AEAD_SECS}s per cipher, one core)"
if "$OUT/aeadprobe" "$AEAD_SECS" > "$WORK/aead.out" 2> "$WORK/aead.err"; then
  V[aead_chacha|hcmd]=$(awk '/lib=mbedtls.*chacha20/ {sub(/.*mib_s=/, ""); print}' "$WORK/aead.out")
  V[aead_aes|hcmd]=$(awk '/lib=mbedtls.*aes-128-gcm/ {sub(/.*mib_s=/, ""); print}' "$WORK/aead.out")
  V[aead_chacha|stunnel]=$(awk '/lib=openssl.*chacha20/ {sub(/.*mib_s=/, ""); print}' "$WORK/aead.out")
  V[aead_aes|stunnel]=$(awk '/lib=openssl.*aes-128-gcm/ {sub(/.*mib_s=/, ""); print}' "$WORK/aead.out")
  MBEDTLS_VER=$(grep -oE 'mbedtls-[0-9.]+' "$WORK/aead.out" | head -n 1)
else
  unmeasured "AEAD probe"; MBEDTLS_VER=mbedtls
fi

# ---------------------------------------------------------------- PKI -----
log "test CA and localhost certificate"
(
  cd "$WORK" &&
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -subj "/CN=hcmd bench CA" -keyout ca.key -out ca.crt &&
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=localhost \
    -keyout relay.key -out relay.csr &&
  printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' > san.ext &&
  openssl x509 -req -in relay.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 \
    -extfile san.ext -out relay.crt
) > "$WORK/pki.log" 2>&1 || { cat "$WORK/pki.log" >&2; echo "run.sh: openssl failed" >&2; exit 1; }
chmod 600 "$WORK"/*.key

port() { "$HB" freeport; }
key() { head -c 32 /dev/urandom | base64; }

# ------------------------------------------------------------ endpoint ---
start endpoint "$HB" server
wait_file "$WORK/endpoint.out" '^port [0-9]+' 5 || { died endpoint; exit 1; }
EP=$(awk '/^port/ {print $2}' "$WORK/endpoint.out")
declare -A ENTRY=([direct]=$EP)
declare -A UP=([direct]=1)

# ------------------------------------------------------ 4. hcmd chain -----
RP=$(port) FP=$(port) FNP=$(port)
cat > "$WORK/relay.ini" <<EOF
[relay]
listen = 127.0.0.1:$RP
cert_file = $WORK/relay.crt
key_file = $WORK/relay.key
hostname = localhost
log_level = warn
max_connections = 20000

[hybrid-connection bench]
[rule bench/listen]
rights = Listen
primary_key = $(key)
[rule bench/send]
rights = Send
primary_key = $(key)

[hybrid-connection benchnode]
[rule benchnode/listen]
rights = Listen
primary_key = $(key)
[rule benchnode/send]
rights = Send
primary_key = $(key)
EOF
chmod 600 "$WORK/relay.ini"
cs() { "$BIN/hcrelay" -c "$WORK/relay.ini" connection-string "$1" "$2"; }
# Two hcmd processes (one listener, one forwarder: 8,000 tunnels are 4 fds
# each in one process); each gets its own control socket where hcmd has one.
hcm_common() { # name
  printf '[hcmd]\nca_file = %s\nlog_level = warn\nmax_tunnels = 20000\n' "$WORK/ca.crt"
  [ "$CTL_SOCK" = 1 ] && printf 'control_socket = %s\n' "$WORK/$1.sock"
}
CTL_SOCK=1
printf '[hcmd]\ncontrol_socket = %s\n' "$WORK/x.sock" > "$WORK/ctl-test.ini"
"$BIN/hcmd" -c "$WORK/ctl-test.ini" --check 2>&1 | grep -q 'control_socket' && CTL_SOCK=0
cat > "$WORK/hcm-listener.ini" <<EOF
$(hcm_common listener)

[connection bench]
connection_string = $(cs bench listen)
endpoint = 127.0.0.1:$EP
EOF
cat > "$WORK/hcm-forwarder.ini" <<EOF
$(hcm_common forwarder)

[forward bench]
connection_string = $(cs bench send)
bind = 127.0.0.1:$FP

[forward benchnode]
connection_string = $(cs benchnode send)
bind = 127.0.0.1:$FNP
EOF
chmod 600 "$WORK"/hcm-*.ini
for f in relay.ini; do "$BIN/hcrelay" -c "$WORK/$f" --check >&2 || { echo "run.sh: bad $f" >&2; exit 1; }; done
for f in hcm-listener.ini hcm-forwarder.ini; do "$BIN/hcmd" -c "$WORK/$f" --check >&2 || { echo "run.sh: bad $f" >&2; exit 1; }; done

log "starting hcrelay, hcmd listener, hcmd forwarder"
start hcrelay "$BIN/hcrelay" -c "$WORK/relay.ini"
if wait_tcp "$RP" 10; then
  start hcmd_listener "$BIN/hcmd" -c "$WORK/hcm-listener.ini"
  start hcmd_forwarder "$BIN/hcmd" -c "$WORK/hcm-forwarder.ini"
  if "$HB" probe -p "$FP" -T 15 2> "$WORK/probe-hcmd.err"; then
    ENTRY[hcmd]=$FP; UP[hcmd]=1
  else
    cat "$WORK/probe-hcmd.err" >&2
    for n in hcrelay hcmd_listener hcmd_forwarder; do alive $n || died $n; done
    unmeasured "hcmd chain (did not come up)"
  fi
else
  died hcrelay; unmeasured "hcmd chain (hcrelay did not come up)"
fi

# ------------------------------------------------- 5. hyco-ws agent -------
if [ "${UP[hcmd]:-0}" = 1 ] && [ $HAVE_NODE = 1 ]; then
  NODE_EXTRA_CA_CERTS=$WORK/ca.crt NODE_NO_WARNINGS=1 \
    start hyco_bridge node test/bench/hyco-bridge.js --relay "localhost:$RP" --hc benchnode \
      --rule listen --key "$(awk '/^\[rule benchnode\/listen\]/ {f=1} f && /^primary_key/ {print $3; exit}' "$WORK/relay.ini")" \
      --endpoint "127.0.0.1:$EP"
  if wait_file "$WORK/hyco_bridge.out" '^listening' 15 && "$HB" probe -p "$FNP" -T 15 2> "$WORK/probe-hyco.err"; then
    ENTRY[hyco]=$FNP; UP[hyco]=1
  else
    cat "$WORK/probe-hyco.err" >&2 2>/dev/null; alive hyco_bridge || died hyco_bridge
    unmeasured "hyco-ws agent (did not come up)"
  fi
elif [ $HAVE_NODE = 0 ]; then
  unmeasured "hyco-ws agent (node or test/interop/node_modules/hyco-ws missing: scripts/install-deps.sh)"
fi

# ------------------------------------------------------------ 2. socat ---
if [ $HAVE_SOCAT = 1 ]; then
  SA=$(port) SB=$(port)
  start socat_b socat -b 131072 "TCP-LISTEN:$SB,bind=127.0.0.1,reuseaddr,fork,nodelay,backlog=4096" "TCP:127.0.0.1:$EP,nodelay"
  start socat_a socat -b 131072 "TCP-LISTEN:$SA,bind=127.0.0.1,reuseaddr,fork,nodelay,backlog=4096" "TCP:127.0.0.1:$SB,nodelay"
  if "$HB" probe -p "$SA" -T 10 2> "$WORK/probe-socat.err"; then
    ENTRY[socat]=$SA; UP[socat]=1
  else
    cat "$WORK/probe-socat.err" >&2; unmeasured "socat (did not come up)"
  fi
else
  unmeasured "socat (not installed)"
fi

# ---------------------------------------------------------- 3. stunnel ---
if [ -n "$STUNNEL" ]; then
  TA=$(port) TB=$(port) TC=$(port) TD=$(port)
  # The same suite, curve and TLS version as our chain negotiates.
  common="foreground = yes
pid =
debug = warning
syslog = no
sslVersionMin = TLSv1.2
sslVersionMax = TLSv1.2
ciphers = ECDHE-ECDSA-CHACHA20-POLY1305
curves = prime256v1
TIMEOUTclose = 0
socket = l:TCP_NODELAY=1
socket = r:TCP_NODELAY=1"
  tclient="client = yes
CAfile = $WORK/ca.crt
verifyChain = yes
checkHost = localhost"
  tserver="cert = $WORK/relay.crt
key = $WORK/relay.key"
  printf '%s\n[app-side]\n%s\naccept = 127.0.0.1:%s\nconnect = 127.0.0.1:%s\n' \
    "$common" "$tclient" "$TA" "$TB" > "$WORK/stunnel-client.conf"
  printf '%s\n[relay-in]\n%s\naccept = 127.0.0.1:%s\nconnect = 127.0.0.1:%s\n[relay-out]\n%s\naccept = 127.0.0.1:%s\nconnect = 127.0.0.1:%s\n' \
    "$common" "$tserver" "$TB" "$TC" "$tclient" "$TC" "$TD" > "$WORK/stunnel-relay.conf"
  printf '%s\n[listener-side]\n%s\naccept = 127.0.0.1:%s\nconnect = 127.0.0.1:%s\n' \
    "$common" "$tserver" "$TD" "$EP" > "$WORK/stunnel-server.conf"
  start stunnel_server "$STUNNEL" "$WORK/stunnel-server.conf"
  start stunnel_relay "$STUNNEL" "$WORK/stunnel-relay.conf"
  start stunnel_client "$STUNNEL" "$WORK/stunnel-client.conf"
  if "$HB" probe -p "$TA" -T 10 2> "$WORK/probe-stunnel.err"; then
    ENTRY[stunnel]=$TA; UP[stunnel]=1
  else
    cat "$WORK/probe-stunnel.err" >&2
    for n in stunnel_server stunnel_relay stunnel_client; do alive $n || died $n; done
    unmeasured "stunnel (did not come up)"
  fi
else
  unmeasured "stunnel (stunnel4 not installed)"
fi

# The processes whose CPU each path reports: app-side agent, relay, listening agent.
declare -A CPU_APP=([socat]=socat_a [stunnel]=stunnel_client [hcmd]=hcmd_forwarder [hyco]=hcmd_forwarder)
declare -A CPU_RELAY=([stunnel]=stunnel_relay [hcmd]=hcrelay [hyco]=hcrelay)
declare -A CPU_LISTEN=([socat]=socat_b [stunnel]=stunnel_server [hcmd]=hcmd_listener [hyco]=hyco_bridge)
declare -A C0=()
snap_cpu() { # path: CPU ticks of its processes now
  local role n
  C0=()
  for role in APP RELAY LISTEN; do
    declare -n m="CPU_$role"; n=${m[$1]:-}; unset -n m
    [ -n "$n" ] && C0[$role]=$(cpu_ticks "$(pid_of "$n")")
  done
}

clip() { # seconds -> at most what is left of the budget (at least 5)
  local left=$((BUDGET - $(elapsed)))
  [ "$left" -lt 5 ] && left=5
  [ "$1" -lt "$left" ] && echo "$1" || echo "$left"
}
budget_ok() { # what
  if [ "$(elapsed)" -ge "$BUDGET" ]; then unmeasured "$1 (time budget of ${BUDGET}s spent)"; return 1; fi
}

# Foreign load: the machine's busy ticks minus those of our services and of
# our reaped children (load generator runs), over the measuring phases.
# (user+nice+system; irq and softirq left out: loopback traffic is ours.)
machine_ticks() { awk '/^cpu / {print $2 + $3 + $4, $9}' /proc/stat; }
child_ticks() { # `times` must run in this shell, not in a pipeline's subshell
  times > "$WORK/times.txt"
  tail -n 1 "$WORK/times.txt" | awk -v t="$CLK_TCK" '{n = 0; for (i = 1; i <= 2; i++) {split($i, a, /[ms]/); n += a[1] * 60 + a[2]} printf "%d", n * t}'
}
declare -A SV0=()
for n in endpoint hcrelay hcmd_listener hcmd_forwarder hyco_bridge socat_a socat_b stunnel_client stunnel_relay stunnel_server; do
  pp=$(pid_of $n); [ -n "$pp" ] && SV0[$pp]=$(cpu_ticks "$pp")
done
read -r MB0 MS0 < <(machine_ticks)
child_ticks > "$WORK/ch0.txt"; CH0=$(cat "$WORK/ch0.txt")
W0=$(date +%s.%N)

# ------------------------------------------------------------- memory ---
# hcmd listener idle with one hybrid connection, then with IDLE_N idle
# tunnels; per tunnel = growth / tunnels. First, before bulk traffic grows
# the heap.
if [ "${UP[hcmd]:-0}" = 1 ]; then
  sleep 1
  V[rss_idle|hcmd]=$(rss_kib "$PID_hcmd_listener")
  base_l=${V[rss_idle|hcmd]} base_f=$(rss_kib "$PID_hcmd_forwarder") base_r=$(rss_kib "$PID_hcrelay")
  fds_l=$(nfds "$PID_hcmd_listener")
  log "memory: $IDLE_N idle tunnels through the hcmd chain (listener RSS idle ${base_l} KiB)"
  T_IDLE=$(clip $((IDLE_N / 20 + 30)))
  start idle "$HB" idle -p "$FP" -n "$IDLE_N" -c 64 -T "$T_IDLE"
  if wait_file "$WORK/idle.out" '^ready' $((T_IDLE + 5)); then
    sleep 1
    ok=$(kv "$WORK/idle.out" ok)
    r_l=$(rss_kib "$PID_hcmd_listener") r_f=$(rss_kib "$PID_hcmd_forwarder") r_r=$(rss_kib "$PID_hcrelay")
    fds_n=$(nfds "$PID_hcmd_listener")
    log "memory: $ok tunnels open: listener ${r_l} KiB, $fds_n fds; forwarder ${r_f} KiB; hcrelay ${r_r} KiB"
    if [ "${ok:-0}" -gt 0 ]; then
      V[rss_tun|hcmd]=$(awk -v a="$r_l" -v b="$base_l" -v n="$ok" 'BEGIN {printf "%.1f", (a - b) / n}')
      V[rss_tun_fwd|hcmd]=$(awk -v a="$r_f" -v b="$base_f" -v n="$ok" 'BEGIN {printf "%.1f", (a - b) / n}')
      V[rss_tun_relay|hcmd]=$(awk -v a="$r_r" -v b="$base_r" -v n="$ok" 'BEGIN {printf "%.1f", (a - b) / n}')
    fi
    [ "${ok:-0}" = "$IDLE_N" ] || unmeasured "idle tunnels: only ${ok:-0} of $IDLE_N opened ($(kv "$WORK/idle.out" last_error))"
  else
    unmeasured "idle tunnels (not all opened in time)"; tail -n 5 "$WORK/idle.err" >&2
  fi
  kill -TERM "$PID_idle" 2>/dev/null
  # wait for the tunnels to go before the next phase
  for _ in $(seq 300); do [ "$(nfds "$PID_hcmd_listener")" -le $((fds_l + 4)) ] && break; sleep 0.1; done
fi

# ---------------------------------------------------------- traffic ------
# Throughput in TP_ROUNDS interleaved rounds (each path in every round, a
# new connection each time), bytes and seconds summed per path: a noisy
# moment on the machine hits every path alike. CPU is summed the same way.
TP_ROUNDS=4; [ "$QUICK" = 1 ] && TP_ROUNDS=2
R1=$((TPUT_BYTES / TP_ROUNDS)) R8=$((TPUT8_EACH / TP_ROUNDS))
read -r HA1 HB1 < <("$HB" hashes -n "$R1")
read -r HA8 HB8 < <("$HB" hashes -n "$R8")
T_TPUT1=$((R1 / (8 * MiB) + 30))
T_TPUT8=$((8 * R8 / (8 * MiB) + 30))
T_LAT=$((LAT_N / 10 / 100 + 20)) # one round: LAT_N/10 round trips
T_SETUP=$((SETUP_N / 20 + 20))

# run_phase OUTFILE SECS CMD...: bounded by SECS and by what is left of the
# time budget; returns the command's status (124: timed out).
run_phase() {
  local out=$1 secs=$2; shift 2
  secs=$(clip "$secs")
  timeout -k 5 "$secs" "$@" > "$out" 2> "${out%.out}.err"
  local rc=$? n
  [ $rc = 124 ] && echo "timed out after ${secs}s" >> "${out%.out}.err"
  for n in hcrelay hcmd_listener hcmd_forwarder hyco_bridge; do # say at once which phase lost one
    [ -n "$(pid_of $n)" ] && [ -z "${GONE[$n]:-}" ] && ! alive $n &&
      { GONE[$n]=1; died $n; unmeasured "$n died during $(basename "${out%.out}") ($DIED_HOW)"; }
  done
  return $rc
}
declare -A GONE=()
declare -A ACC=() SECS=() TP_BAD=()
acc_cpu() { # path prefix: ACC[prefix_role|path] += ticks since snap_cpu
  local role n c1
  for role in APP RELAY LISTEN; do
    declare -n m="CPU_$role"; n=${m[$1]:-}; unset -n m
    [ -n "$n" ] && [ -n "${C0[$role]:-}" ] || continue
    c1=$(cpu_ticks "$(pid_of "$n")")
    [ -n "$c1" ] && ACC[$2_${role,,}|$1]=$(( ${ACC[$2_${role,,}|$1]:-0} + c1 - C0[$role] ))
  done
}
fin_cpu() { # path prefix multiplier divisor: V[prefix_role|path] = ticks / CLK_TCK * multiplier / divisor
  local role k
  for role in app relay listen; do
    k="$2_$role|$1"
    [ -n "${ACC[$k]:-}" ] && [ "${4:-0}" != 0 ] &&
      V[$k]=$(awk -v a="${ACC[$k]}" -v t="$CLK_TCK" -v m="$3" -v d="$4" 'BEGIN {printf "%.2f", a / t * m / d}')
  done
}

log "throughput: $TP_ROUNDS rounds over every path ($(elapsed)s so far)"
for round in $(seq 1 $TP_ROUNDS); do
  for p in "${PATHS[@]}"; do
    [ "${UP[$p]:-0}" = 1 ] || continue
    for s in 1 8; do
      [ -n "${TP_BAD[$p$s]:-}" ] && continue
      budget_ok "$p throughput $s stream(s), round $round" || { TP_BAD[$p$s]=1; continue; }
      n=$R1 a=$HA1 b=$HB1 t=$T_TPUT1
      [ $s = 8 ] && n=$R8 a=$HA8 b=$HB8 t=$T_TPUT8
      snap_cpu "$p"
      if run_phase "$WORK/$p-tput$s.out" "$t" "$HB" tput -p "${ENTRY[$p]}" -s $s -n "$n" -a "$a" -b "$b"; then
        SECS[$p$s]=$(awk -v a="${SECS[$p$s]:-0}" -v b="$(kv "$WORK/$p-tput$s.out" secs)" 'BEGIN {print a + b}')
        if [ $s = 1 ]; then
          [ "$p" = socat ] && sleep 0.7 # socat's per-connection child must be reaped
          acc_cpu "$p" cpu
        fi
      else
        TP_BAD[$p$s]=1
        unmeasured "$p throughput $s stream(s), round $round: $(tail -n 1 "$WORK/$p-tput$s.err")"
      fi
      sleep 0.2
    done
  done
done
for p in "${PATHS[@]}"; do
  [ "${UP[$p]:-0}" = 1 ] || continue
  [ -z "${TP_BAD[${p}1]:-}" ] && V[tput1|$p]=$(awk -v b="$TPUT_BYTES" -v s="${SECS[${p}1]}" 'BEGIN {printf "%.1f", b / 1048576 / s}') &&
    fin_cpu "$p" cpu 1 "$(awk -v b="$TPUT_BYTES" 'BEGIN {print 2 * b / 1073741824}')"
  [ -z "${TP_BAD[${p}8]:-}" ] && V[tput8|$p]=$(awk -v b="$((8 * TPUT8_EACH))" -v s="${SECS[${p}8]}" 'BEGIN {printf "%.1f", b / 1048576 / s}')
done

for p in "${PATHS[@]}"; do
  [ "${UP[$p]:-0}" = 1 ] || continue
  pport=${ENTRY[$p]}
  log "$p: setup (port $pport, $(elapsed)s so far)"
  if budget_ok "$p setup"; then
    if run_phase "$WORK/$p-setup1.out" "$T_SETUP" "$HB" setup -p "$pport" -n "$SETUP_SEQ" -c 1 -T $((T_SETUP - 5)); then
      V[setup_p50|$p]=$(kv "$WORK/$p-setup1.out" p50_ms)
      V[setup_p99|$p]=$(kv "$WORK/$p-setup1.out" p99_ms)
    else
      unmeasured "$p setup time: $(tail -n 1 "$WORK/$p-setup1.err")"
    fi
    sleep 0.3
    snap_cpu "$p"
    if run_phase "$WORK/$p-setup16.out" "$T_SETUP" "$HB" setup -p "$pport" -n "$SETUP_N" -c "$SETUP_C" -T $((T_SETUP - 5)); then
      V[tps|$p]=$(kv "$WORK/$p-setup16.out" rate)
      sleep 0.5 # closes still in flight; socat children reaped
      acc_cpu "$p" tcpu
      fin_cpu "$p" tcpu 1000 "$(kv "$WORK/$p-setup16.out" ok)"
    else
      unmeasured "$p tunnels/s: $(tail -n 1 "$WORK/$p-setup16.err")"
    fi
  fi
  sleep 0.3
done

# Latency last, interleaved: LAT_ROUNDS rounds, each path and size measured in
# every round (a new connection each time), samples pooled per path and size,
# so that a noisy moment on the machine hits every path alike.
pctl() { # file p
  sort -n "$1" | awk -v p="$2" '{a[NR] = $1} END {k = int(p / 100 * NR + 0.999999); if (k < 1) k = 1; if (NR) print a[k]}'
}
LAT_ROUNDS=10
log "latency: $LAT_ROUNDS rounds over every path ($(elapsed)s so far)"
declare -A LAT_BAD=()
for round in $(seq 1 $LAT_ROUNDS); do
  budget_ok "latency round $round" || break
  for p in "${PATHS[@]}"; do
    [ "${UP[$p]:-0}" = 1 ] || continue
    for sz in 64 16384; do
      tag=rtt64; [ $sz = 16384 ] && tag=rtt16k
      [ -n "${LAT_BAD[$p$tag]:-}" ] && continue
      run_phase "$WORK/$p-$tag.out" "$T_LAT" "$HB" lat -p "${ENTRY[$p]}" -m $sz -c $((LAT_N / LAT_ROUNDS)) -o "$WORK/$p-$tag.rtt" ||
        { LAT_BAD[$p$tag]=1; unmeasured "$p latency $sz B: $(tail -n 1 "$WORK/$p-$tag.err")"; }
    done
  done
done
for p in "${PATHS[@]}"; do
  for tag in rtt64 rtt16k; do
    f=$WORK/$p-$tag.rtt
    [ -s "$f" ] && [ -z "${LAT_BAD[$p$tag]:-}" ] || continue
    n=$(wc -l < "$f")
    [ "$n" -ge "$LAT_N" ] || { unmeasured "$p $tag: $n of $LAT_N round trips"; continue; }
    V[${tag}_p50|$p]=$(pctl "$f" 50)
    V[${tag}_p99|$p]=$(pctl "$f" 99)
  done
done

for n in hcrelay hcmd_listener hcmd_forwarder; do
  [ -n "$(pid_of $n)" ] && [ -z "${GONE[$n]:-}" ] && ! alive $n && { died $n; unmeasured "$n died during the run ($DIED_HOW)"; }
done
read -r MB1 MS1 < <(machine_ticks)
child_ticks > "$WORK/ch1.txt"; CH1=$(cat "$WORK/ch1.txt")
SVD=0
for pp in "${!SV0[@]}"; do
  c1=$(cpu_ticks "$pp"); [ -n "$c1" ] && [ -n "${SV0[$pp]}" ] && SVD=$((SVD + c1 - SV0[$pp]))
done
read -r OTHER_PCT STEAL_PCT < <(awk -v b="$((MB1 - MB0))" -v s="$((MS1 - MS0))" -v c="$((CH1 - CH0))" -v v="$SVD" \
  -v w0="$W0" -v w1="$(date +%s.%N)" -v t="$CLK_TCK" -v n="$(nproc)" \
  'BEGIN {cap = (w1 - w0) * t * n; o = (b - c - v) / cap * 100; if (o < 0) o = 0; printf "%.0f %.0f\n", o, s / cap * 100}')
log "load accounting (ticks): machine busy $((MB1 - MB0)), our services $SVD, our reaped children $((CH1 - CH0)), steal $((MS1 - MS0))"
LOAD_NOTE="other load on the machine while measuring: ${OTHER_PCT}% of $(nproc) cores, steal ${STEAL_PCT}%"
if [ "$OTHER_PCT" -gt 5 ] || [ "$STEAL_PCT" -gt 5 ]; then
  LOAD_NOTE="$LOAD_NOTE -- WARNING: the machine was not quiet; figures are low and latency tails long"
fi

# ------------------------------------------------------- derived, targets ---
num() { [ -n "${1:-}" ] && awk -v x="$1" 'BEGIN {exit !(x + 0 == x + 0 && x != "")}'; }
ratio() { num "${1:-}" && num "${2:-}" && awk -v a="$1" -v b="$2" 'BEGIN {if (b > 0) printf "%.2f", a / b}'; }
V[r_tput_stunnel|hcmd]=$(ratio "${V[tput1|hcmd]:-}" "${V[tput1|stunnel]:-}")
V[r_tput_hyco|hcmd]=$(ratio "${V[tput1|hcmd]:-}" "${V[tput1|hyco]:-}")
V[r_rtt64|hcmd]=$(ratio "${V[rtt64_p50|hcmd]:-}" "${V[rtt64_p50|stunnel]:-}")
CEIL=$(num "${V[aead_chacha|hcmd]:-}" && awk -v m="${V[aead_chacha|hcmd]}" 'BEGIN {printf "%.2f", 1024 / m}')
V[aead_spg|hcmd]=$CEIL
V[r_cpu_app|hcmd]=$(ratio "${V[cpu_app|hcmd]:-}" "$CEIL")
V[r_cpu_listen|hcmd]=$(ratio "${V[cpu_listen|hcmd]:-}" "$CEIL")

# ROWS: key|label|unit|target text|test (awk on x = the hcmd figure)
TN=$IDLE_N
ROWS=(
  "tput1|throughput, 1 stream|MiB/s each way||"
  "r_tput_stunnel|  hcmd / stunnel, 1 stream|x|>= 0.45x|x >= 0.45"
  "r_tput_hyco|  hcmd / hyco-ws agent, 1 stream|x|> 1x|x > 1"
  "tput8|throughput, 8 streams|MiB/s each way||"
  "rtt64_p50|RTT 64 B p50|us||"
  "r_rtt64|  hcmd / stunnel, RTT 64 B p50|x|<= 1.5x|x <= 1.5"
  "rtt64_p99|RTT 64 B p99|us|< 1000 us|x < 1000"
  "rtt16k_p50|RTT 16 KiB p50|us||"
  "rtt16k_p99|RTT 16 KiB p99|us|< 3000 us|x < 3000"
  "tps|new tunnels/s, $SETUP_C at once|/s|>= 200/s|x >= 200"
  "setup_p50|setup p50, connect to echo|ms|< 10 ms|x < 10"
  "setup_p99|setup p99, connect to echo|ms||"
  "tcpu_app|CPU per new tunnel, app-side agent|ms||"
  "tcpu_relay|CPU per new tunnel, relay|ms||"
  "tcpu_listen|CPU per new tunnel, listening agt|ms||"
  "cpu_app|CPU app-side agent|s/GiB||"
  "r_cpu_app|  hcmd forwarder / AEAD ceiling|x|<= 1.5x|x <= 1.5"
  "cpu_relay|CPU relay|s/GiB||"
  "cpu_listen|CPU listening agent|s/GiB||"
  "r_cpu_listen|  hcmd listener / AEAD ceiling|x|<= 1.5x|x <= 1.5"
  "rss_idle|RSS hcmd listener idle, 1 HC|KiB|< 4096 KiB|x < 4096"
  "rss_tun|RSS/tunnel hcmd listener @${TN}|KiB|<= 52 KiB|x <= 52"
  "rss_tun_fwd|RSS/tunnel hcmd forwarder @${TN}|KiB||"
  "rss_tun_relay|RSS/tunnel hcrelay @${TN}|KiB||"
  "aead_chacha|AEAD ChaCha20-Poly1305, 1 core|MiB/s||"
  "aead_aes|AEAD AES-128-GCM, 1 core|MiB/s||"
  "aead_spg|AEAD ceiling, ChaCha20-Poly1305|s/GiB||"
)

TABLE=$OUT/table.txt
CSV=$OUT/results.csv
{
  echo "hcmd benchmark, $MODE mode, $(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), $(uname -r)"
  echo "throughput: $((TPUT_BYTES / MiB)) MiB each way on 1 stream; $((8 * TPUT8_EACH / MiB)) MiB each way over 8 streams ($((TPUT8_EACH / MiB)) MiB each); in $TP_ROUNDS interleaved rounds; SHA-256 checked both ways"
  echo "latency: $LAT_N round trips per size and path, in 10 interleaved rounds of $((LAT_N / 10)) on a new connection; setup: $SETUP_SEQ tunnels one at a time (p50/p99), $SETUP_N at $SETUP_C at once (rate)"
  echo "memory: $IDLE_N idle tunnels$IDLE_NOTE; CPU: /proc utime+stime over the 1-stream runs, per GiB carried (both directions counted)"
  echo "crypto: hcmd/hcrelay $MBEDTLS_VER, stunnel and Node OpenSSL; AEAD rows: mbedTLS under hcmd, OpenSSL under stunnel"
  echo "$LOAD_NOTE"
  echo
  printf '%-36s %-14s' "metric" "unit"
  for p in "${PATHS[@]}"; do printf ' %11s' "${PNAME[$p]}"; done
  printf '  %-10s %s\n' "target" "hcmd"
  printf '%.0s-' $(seq 1 126); echo
  for row in "${ROWS[@]}"; do
    IFS='|' read -r k label unit target test <<< "$row"
    printf '%-36s %-14s' "$label" "$unit"
    for p in "${PATHS[@]}"; do printf ' %11s' "${V[$k|$p]:--}"; done
    verdict=
    if [ -n "$test" ]; then
      x=${V[$k|hcmd]:-}
      if num "$x"; then
        awk -v x="$x" "BEGIN {exit !($test)}" && verdict=PASS || verdict=MISS
      else
        verdict=n/a
      fi
    fi
    printf '  %-10s %s\n' "$target" "$verdict"
  done
  if [ ${#MISSING[@]} -gt 0 ]; then
    echo; echo "not measured:"; printf '  %s\n' "${MISSING[@]}"
  fi
} > "$TABLE"

{
  echo "metric,label,path,value,unit,target,verdict"
  for row in "${ROWS[@]}"; do
    IFS='|' read -r k label unit target test <<< "$row"
    label=$(echo "$label" | sed 's/^ *//')
    for p in "${PATHS[@]}"; do
      x=${V[$k|$p]:-}
      [ -n "$x" ] || continue
      verdict=
      if [ -n "$test" ] && [ "$p" = hcmd ]; then
        awk -v x="$x" "BEGIN {exit !($test)}" && verdict=PASS || verdict=MISS
      fi
      t=; [ "$p" = hcmd ] && t=$target
      printf '%s,"%s",%s,%s,%s,"%s",%s\n' "$k" "$label" "$p" "$x" "$unit" "$t" "$verdict"
    done
  done
} > "$CSV"

cat "$TABLE"
echo
echo "results: $CSV"

if [ $HAVE_GNUPLOT = 1 ]; then
  DAT=$WORK/chart.dat
  {
    echo "# path tput1 tput8 rtt64_p50 rtt64_p99 rtt16k_p50 rtt16k_p99"
    for p in "${PATHS[@]}"; do
      printf '"%s"' "${PNAME[$p]}"
      for k in tput1 tput8 rtt64_p50 rtt64_p99 rtt16k_p50 rtt16k_p99; do printf ' %s' "${V[$k|$p]:-NaN}"; done
      echo
    done
  } > "$DAT"
  term="pngcairo size 1400,560 font ',10'"
  gnuplot -e "set terminal pngcairo" >/dev/null 2>&1 || term="png size 1400,560"
  if gnuplot > "$WORK/gnuplot.log" 2>&1 <<EOF
set terminal $term
set output '$OUT/bench.png'
set datafile missing 'NaN'
set multiplot layout 1,2 title "hcmd benchmark ($MODE, $(date -u +%Y-%m-%d)): loopback, TLS on every relay leg"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set logscale y
set grid ytics
set key top right
set title 'Throughput (MiB/s each way, log scale)'
plot '$DAT' using 2:xtic(1) title '1 stream', '' using 3 title '8 streams'
set title 'Round-trip latency (microseconds, log scale)'
set key top left
plot '$DAT' using 4:xtic(1) title '64 B p50', '' using 5 title '64 B p99', '' using 6 title '16 KiB p50', '' using 7 title '16 KiB p99'
unset multiplot
EOF
  then
    echo "chart:   $OUT/bench.png"
  else
    log "gnuplot failed (see $WORK/gnuplot.log); no chart"
  fi
else
  echo "chart:   none (gnuplot not installed)"
fi
echo "logs:    $WORK   ($(elapsed)s)"

if [ ${#MISSING[@]} -gt 0 ]; then
  echo "run.sh: ${#MISSING[@]} figure(s) could not be measured (see above)" >&2
  exit 1
fi
exit 0
