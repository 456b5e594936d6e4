#!/usr/bin/env bash
# The demo: hcrelay on localhost with a certificate made here, and a round
# trip through it with the official Azure Relay client (npm hyco-ws): a
# listener that echoes and a sender that sends one message.
#   scripts/demo.sh [BUILD]        (make demo runs it)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
dir=$PWD/demo
rm -rf "$dir" && mkdir -p "$dir"
echo "== hcrelay demo (files in $dir)"
HCRELAY="$PWD/$build/hcrelay" node test/interop/lib/demo-roundtrip.js "$dir"
