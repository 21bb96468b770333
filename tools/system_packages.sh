#!/usr/bin/env bash
# What the tests need from Debian beyond PyPI, installed only if missing: a PostgreSQL server
# (the call-record tests start a throwaway cluster), Chromium with its driver (the
# console's browser tests; never a browser download) and nginx (the load-balancer test runs
# its own, in the foreground on a loopback port; Debian's package also enables the system
# service on port 80 where systemd runs).
set -euo pipefail
sudo=$([ "$(id -u)" = 0 ] || echo sudo)
missing=()
command -v pg_ctl >/dev/null || ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 \
  || missing+=(postgresql)
command -v chromium >/dev/null || missing+=(chromium)
command -v chromedriver >/dev/null || missing+=(chromium-driver)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing+=(nginx)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing from Debian: ${missing[*]}"
  $sudo apt-get update -qq && $sudo apt-get install -y -qq "${missing[@]}"
fi
