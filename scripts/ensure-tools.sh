#!/usr/bin/env bash
# System tools some tests need, from Debian's packages: promtool and prometheus (the
# alert-rule tests and the live scrape test). Installs only what is missing.
set -euo pipefail
need=()
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "missing ${need[*]}: install Debian's package(s) ${need[*]} (needs root and apt-get)" >&2
  exit 1
fi
echo "installing ${need[*]}..."
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
