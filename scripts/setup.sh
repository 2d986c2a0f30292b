#!/usr/bin/env bash
# Prepare a fresh machine: redis-server and PostgreSQL 15 from Debian (when root and missing),
# then a virtualenv in .venv with promptloop, its client and the test tools.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v redis-server >/dev/null || need+=(redis-server)
[ -x /usr/lib/postgresql/15/bin/initdb ] || need+=(postgresql-15)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
    # Debian starts the packaged services; promptloop runs its own on other ports.
    (service redis-server stop || true) >/dev/null 2>&1
  else
    echo "missing ${need[*]}: install them (Debian: sudo apt-get install ${need[*]})" >&2
  fi
fi

[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install -q --upgrade pip
.venv/bin/pip install -q -e ./client -e '.[test]'
