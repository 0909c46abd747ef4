#!/usr/bin/env bash
# System tools some tests need, from Debian's packages, installed only when missing:
# promtool and prometheus (alert-rule tests, the live scrape test) and chromium (the
# post-mortem pages rendered in a real headless browser).
set -euo pipefail
need=()
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
[ -x /usr/bin/chromium ] || need+=(chromium fonts-dejavu-core)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "missing ${need[*]}: install these Debian packages (needs root and apt-get)" >&2
  exit 1
fi
echo "installing ${need[*]}..."
export DEBIAN_FRONTEND=noninteractive
apt-get -o DPkg::Lock::Timeout=600 update -qq >/dev/null
apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${need[@]}" >/dev/null
