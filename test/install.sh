#!/usr/bin/env bash
# The install test: "make install" into a scratch DESTDIR with PREFIX=/usr,
# then every installed file, its mode and its content; the man pages lint
# clean; the sample configurations pass --check. Ends with one line:
# "N passed, N failed"; exit status 0 only when nothing failed.
#   test/install.sh
# Small checks run as "bash -c '...' _ ARGS", where $1 is meant literally:
# shellcheck disable=SC2016
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

passed=0 failed=0
dest=$(mktemp -d /tmp/hcmd-install.XXXXXX)
trap 'rm -rf "$dest"' EXIT

ok() { passed=$((passed + 1)); echo "ok $((passed + failed)) - $1"; }
not_ok() { # name [details]
  failed=$((failed + 1))
  echo "not ok $((passed + failed)) - $1"
  [ -n "${2:-}" ] && printf '%s\n' "$2" | sed 's/^/#   /'
  return 0
}
# check NAME COMMAND...: passes when COMMAND exits 0; its output is shown
# only when it fails.
check() {
  local name=$1 out
  shift
  if out=$("$@" 2>&1); then ok "$name"; else not_ok "$name" "$out"; fi
}

# mode_is PATH MODE: PATH (under DESTDIR) is a regular file with MODE.
mode_is() {
  local m
  [ -f "$dest$1" ] || { echo "$1 is missing"; return 1; }
  m=$(stat -c %a "$dest$1")
  [ "$m" = "$2" ] || { echo "$1 has mode $m, not $2"; return 1; }
}
same_as() { cmp "$dest$1" "$2"; }

bins=(/usr/bin/hcmd /usr/bin/hcrelay)
docs=(/usr/share/man/man8/hcmd.8 /usr/share/man/man8/hcrelay.8
      /usr/share/man/man5/hcm.ini.5 /usr/share/man/man5/hcrelay.ini.5
      /usr/share/hcmd/hcm.ini /usr/share/hcmd/relay.ini
      /usr/lib/systemd/system/hcmd.service
      /usr/lib/systemd/system/hcrelay.service)

# 1. The install itself.
check "make -s install DESTDIR=... PREFIX=/usr" \
  make -s install DESTDIR="$dest" PREFIX=/usr

# 2. Every file where it belongs, with its mode, and nothing else.
for f in "${bins[@]}"; do check "$f is 0755" mode_is "$f" 755; done
for f in "${docs[@]}"; do check "$f is 0644" mode_is "$f" 644; done
expected=$(printf '%s\n' "${bins[@]}" "${docs[@]}" | sort)
found=$(cd "$dest" && find . \( -type f -o -type l \) | sed 's|^\.||' | sort)
if [ "$expected" = "$found" ]; then
  ok "no other files installed"
else
  not_ok "no other files installed" "$(diff <(echo "$expected") <(echo "$found"))"
fi

# 3. Content: the pages and samples as in the tree, working binaries, and
# units whose ExecStart names the installed binary.
for m in hcmd.8 hcrelay.8; do
  check "man8/$m is man/$m" same_as "/usr/share/man/man8/$m" "man/$m"
done
for m in hcm.ini.5 hcrelay.ini.5; do
  check "man5/$m is man/$m" same_as "/usr/share/man/man5/$m" "man/$m"
done
for s in hcm.ini relay.ini; do
  check "share/hcmd/$s is conf/$s" same_as "/usr/share/hcmd/$s" "conf/$s"
done
check "installed hcmd runs" "$dest/usr/bin/hcmd" version
check "installed hcrelay runs" "$dest/usr/bin/hcrelay" version
for u in hcmd hcrelay; do
  f=$dest/usr/lib/systemd/system/$u.service
  check "$u.service: ExecStart=/usr/bin/$u" \
    grep -q "^ExecStart=/usr/bin/$u " "$f"
  check "$u.service: no /usr/local path left" \
    bash -c '[ -f "$1" ] && ! grep -n "/usr/local" "$1"' _ "$f"
  check "$u.service: the rest as scripts/$u.service" \
    bash -c 'diff <(grep -v "^ExecStart=" "$1") <(grep -v "^ExecStart=" "$2")' \
    _ "$f" "scripts/$u.service"
done

# 4. The man pages: mandoc -Tlint at warning level says nothing.
if out=$(mandoc -Tlint -Wwarning man/*.5 man/*.8 2>&1) && [ -z "$out" ]; then
  ok "mandoc -Tlint -Wwarning man/*.5 man/*.8 is silent"
else
  not_ok "mandoc -Tlint -Wwarning man/*.5 man/*.8 is silent" "$out"
fi
for m in man/*.5 man/*.8; do
  check "$m renders" bash -c 'mandoc -Tmarkdown "$1" | grep -q "^# NAME"' _ "$m"
done

# 5. The samples are accepted as they ship.
check "build/hcmd -c conf/hcm.ini --check" \
  bash -c 'build/hcmd -c conf/hcm.ini --check | grep -q "configuration OK$"'
check "build/hcrelay -c conf/relay.ini --check" \
  bash -c 'build/hcrelay -c conf/relay.ini --check | grep -q "configuration OK$"'

echo
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
