#!/usr/bin/env bash
# Installs everything hcmd needs to build, test and run its demo on a fresh
# Debian 12 machine: Debian packages with apt-get, and the npm packages of
# the test peers (test/interop). Safe to run again: it only installs what is
# missing, so a second run takes a second.
set -euo pipefail
cd "$(dirname "$0")/.."

PKGS=(
  build-essential pkg-config            # compiler, make
  libuv1-dev libmbedtls-dev libwslay-dev libinih-dev libjansson-dev
  libcmocka-dev                         # unit tests
  openssl                               # test certificates
  redis-server redis-tools socat curl   # real services and clients in tests
  tinyproxy                             # the proxy tests
  stunnel4 gnuplot-nox libssl-dev       # make bench: baseline, chart, hashing
  mandoc clang-format                   # make lint
)

SUDO=
if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
# The test peers need Node.js 18 or later with npm; keep one that is there.
if ! command -v node >/dev/null 2>&1; then missing+=(nodejs); fi
if ! command -v npm >/dev/null 2>&1; then missing+=(npm); fi

if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The official Hybrid Connections clients, used as test peers.
if [ ! -d test/interop/node_modules/hyco-ws ] || [ ! -d test/interop/node_modules/ws ] ||
   [ test/interop/package-lock.json -nt test/interop/node_modules/.package-lock.json ]; then
  echo "install-deps: npm ci in test/interop"
  (cd test/interop && npm ci --no-audit --no-fund --loglevel=error)
fi
echo "install-deps: all dependencies present"
