#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs the real peers the
# end-to-end tests talk to (tftpd-hpa's in.tftpd as backends, tftp-hpa's
# tftp and curl as clients, chromium to render the status page) when they
# are missing, then runs every test with the race detector. .ci/run calls
# exactly this.
set -euo pipefail
cd "$(dirname "$0")"

need=()
[ -x /usr/sbin/in.tftpd ] || command -v in.tftpd >/dev/null 2>&1 || need+=(tftpd-hpa)
{ command -v tftp >/dev/null 2>&1 && tftp -V 2>&1 | grep -q tftp-hpa; } || need+=(tftp-hpa)
command -v curl >/dev/null 2>&1 || need+=(curl)
# Headless Chromium renders the status page in tests/statuspage_test.go;
# bash-completion's helpers run `ctftp completion bash` in tests/.
command -v chromium >/dev/null 2>&1 || need+=(chromium)
[ -r /usr/share/bash-completion/bash_completion ] || need+=(bash-completion)
if ((${#need[@]})); then
  echo "test.sh: installing ${need[*]}" >&2
  sudo=""
  [ "$(id -u)" = 0 ] || sudo=sudo
  $sudo apt-get update -qq
  # policy-rc.d keeps the package from starting a system tftpd on port 69:
  # the tests start their own on loopback ports.
  made_policy=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $sudo tee /usr/sbin/policy-rc.d >/dev/null
    $sudo chmod +x /usr/sbin/policy-rc.d
    made_policy=1
  fi
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}"
  [ -z "$made_policy" ] || $sudo rm -f /usr/sbin/policy-rc.d
fi

# Many concurrent transfers in the storm tests each hold a socket.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

test -z "$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))" || { echo "gofmt needed:"; gofmt -l .; exit 1; }
go vet ./...
go test -race -count=1 -timeout 15m ./...
