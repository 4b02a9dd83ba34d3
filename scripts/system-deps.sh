#!/usr/bin/env bash
# Installs the Debian packages hostbackup and its test suite need, only when something is missing.
set -euo pipefail
packages=(python3 python3-venv zstd tar coreutils curl postgresql util-linux)
missing=()
for package in "${packages[@]}"; do
  dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "Installing system packages: ${missing[*]}"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
# The tests start their own private PostgreSQL; keep the distribution's cluster from holding the port.
if [ -d /etc/postgresql ] && command -v pg_ctlcluster >/dev/null; then
  $sudo systemctl disable --now postgresql >/dev/null 2>&1 || true
fi
