#!/usr/bin/env bash
# Install the Debian packages listed in apt-packages.txt that are missing (one name a line,
# '#' comments allowed). Called by `make demo` / `make test`; needs root and apt-get.
set -euo pipefail
list="${1:-apt-packages.txt}"
[ -f "$list" ] || exit 0
missing=()
while read -r pkg _; do
  case "$pkg" in ""|\#*) continue ;; esac
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done < "$list"
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
  echo "earshot set-up: please install these Debian packages: ${missing[*]}" >&2
  exit 0
fi
echo "earshot set-up: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
