#!/usr/bin/env bash
# Makes a fresh Debian machine ready: Python with venv, redis-server and PostgreSQL from
# Debian's packages (skipped with --no-servers, as in the Docker image), then this package
# with its test extras into .venv. Safe to repeat; quick when nothing changed.
set -euo pipefail
cd "$(dirname "$0")/.."

servers=1
[ "${1:-}" = "--no-servers" ] && servers=0

need=()
command -v python3 >/dev/null || need+=(python3)
python3 -c 'import venv, ensurepip' 2>/dev/null || need+=(python3-venv)
if [ "$servers" = 1 ]; then
  command -v redis-server >/dev/null || need+=(redis-server)
  compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null || need+=(postgresql)
  # the back office's browser tests drive Debian's Chromium (Playwright never downloads one)
  [ -x /usr/bin/chromium ] || need+=(chromium)
fi
if ((${#need[@]})); then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "bootstrap: installing ${need[*]} from Debian's packages" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  else
    echo "bootstrap: missing ${need[*]}; install them with: sudo apt-get install -y ${need[*]}" >&2
    exit 1
  fi
fi

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
stamp=.venv/.installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "bootstrap: installing the package and its pinned dependencies into .venv" >&2
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e '.[test]'
  touch "$stamp"
fi
