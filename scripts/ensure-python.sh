#!/usr/bin/env bash
# Make sure $1 (default python3) is Python 3.11+ with venv; install Debian's if it is not.
set -euo pipefail
py="${1:-python3}"
if "$py" -c 'import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  exit 0
fi
"$(dirname "$0")/ensure-debs.sh" python3 python3-venv python3-dev
"$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || {
  echo "callserver needs Python 3.11 or newer; $py is $("$py" --version)" >&2
  exit 1
}
