#!/usr/bin/env bash
# Installs the Debian packages hostbackup and its test suite need, only when something is missing.
set -euo pipefail
packages=(python3 python3-venv gcc python3-dev libssl-dev zstd tar coreutils curl util-linux mount passwd postgresql postgresql-client mariadb-server mariadb-client vsftpd)
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
# Likewise MariaDB: the tests run private servers, and the seeded DB server is localhost:3306.
if dpkg -s mariadb-server >/dev/null 2>&1; then
  $sudo systemctl disable --now mariadb >/dev/null 2>&1 || $sudo service mariadb stop >/dev/null 2>&1 || true
fi
# The tests run private vsftpd instances on their own ports; the distribution's service is not needed.
if dpkg -s vsftpd >/dev/null 2>&1; then
  $sudo systemctl disable --now vsftpd >/dev/null 2>&1 || $sudo service vsftpd stop >/dev/null 2>&1 || true
fi
