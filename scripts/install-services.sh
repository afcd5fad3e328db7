#!/usr/bin/env bash
# Installs the system services the tests and the pipeline start on loopback: redis-server
# (RAG cache) and chromium (headless screenshot of the HTML report). Debian packages; a no-op
# when they are already there. Without root it says what to install instead of failing later.
set -euo pipefail
missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ] && ! command -v sudo >/dev/null 2>&1; then
  echo "loragate: please install ${missing[*]} (Debian: apt-get install -y ${missing[*]})" >&2
  exit 0
fi
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
echo "loragate: installing ${missing[*]} (Debian packages)"
$SUDO apt-get update -qq >/dev/null
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
