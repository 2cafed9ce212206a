#!/usr/bin/env bash
# Installs the Debian packages the project needs, when they are missing.
# As root it installs them with apt-get; otherwise it says exactly what to install and stops.
#   libssl-dev   uWSGI's WebSocket handshake is only compiled in with OpenSSL headers
#   nginx        the front server (deploy/nginx.conf)
#   redis-server used when no Redis answers at REDIS_URL, and by the tests
#   redis-sentinel  the Sentinel set-up of the tests (tests/test_sentinel.py, deploy/redis_ha.py)
#   chromium     the browser tests (only with WITH_BROWSER=1, as `make test` sets; `make run` needs none)
set -euo pipefail
need=()
dpkg -s libssl-dev >/dev/null 2>&1 || need+=(libssl-dev)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need+=(nginx)
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v redis-sentinel >/dev/null 2>&1 || need+=(redis-sentinel)
command -v gcc >/dev/null 2>&1 || need+=(gcc)
if [ "${WITH_BROWSER:-}" = 1 ]; then
  [ -x /usr/bin/chromium ] || need+=(chromium)
fi
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ]; then
  echo "Installing system packages: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}"
  # nginx's Debian package may start a default server; this project runs its own.
else
  echo "Missing system packages: ${need[*]}" >&2
  echo "Install them with:  sudo apt-get install ${need[*]}" >&2
  exit 1
fi
