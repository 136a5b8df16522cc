#!/usr/bin/env bash
# Build a wheelhouse: callserver and every package it runs with (the offline model packages
# included) as wheels in one folder, using this machine's own pip setup (index, mirror, proxy).
#
#   scripts/build-wheelhouse.sh [FOLDER]        (default deploy/docker/wheels)
#
# The container image installs from it with no network (deploy/docker/Dockerfile), and it is
# the air-gapped install for operators: copy the folder to a machine without internet, then
#   python3 -m venv venv && venv/bin/pip install --no-index --find-links FOLDER 'callserver[offline-models]'
# The wheels are for the Python version and platform that build them (CPython 3.11, Linux
# x86_64 glibc here; Debian 12 and python:3.11-slim-bookworm both match). PYTHON picks the
# interpreter (default: the project's .venv if present, else python3).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dest=${1:-$root/deploy/docker/wheels}
python=${PYTHON:-}
if [ -z "$python" ]; then
  if [ -x "$root/.venv/bin/python" ]; then python=$root/.venv/bin/python; else python=python3; fi
fi
mkdir -p "$dest"
# The project's own wheel is rebuilt every time (its version does not change with the code);
# the others are kept and pip only adds what is missing, so a second run is quick.
# (The host's pip configuration may name file:// indexes that do not exist: their warnings are
# filtered out.)
quiet() { "$@" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2); }
# Timestamps inside the wheel come from SOURCE_DATE_EPOCH (the last commit's time), so the same
# code gives the same bytes and Docker's layer cache is kept across rebuilds.
rm -f "$dest"/callserver-*.whl
SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git -C "$root" log -1 --format=%ct 2>/dev/null || echo 315532800)} \
  quiet "$python" -m pip wheel --quiet --wheel-dir "$dest" "$root[offline-models]"
# pip resolves environment markers for the Python running it. Requirements that only older
# 3.11 releases need (redis wants async-timeout below 3.11.3; Debian 12 has 3.11.2) are added:
# every wheel's requirements are evaluated for Python 3.11.0 and whatever is not in the folder
# yet is fetched too.
extra=$("$python" - "$dest" <<'PY'
import sys, zipfile
from pathlib import Path
try:
    from packaging.markers import default_environment
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name, parse_wheel_filename
except ImportError:  # pip's own copy
    from pip._vendor.packaging.markers import default_environment
    from pip._vendor.packaging.requirements import Requirement
    from pip._vendor.packaging.utils import canonicalize_name, parse_wheel_filename
wheels = list(Path(sys.argv[1]).glob("*.whl"))
have = {canonicalize_name(parse_wheel_filename(w.name)[0]) for w in wheels}
env = default_environment() | {"python_full_version": "3.11.0", "python_version": "3.11"}
wanted = set()
for wheel in wheels:
    with zipfile.ZipFile(wheel) as zf:
        meta = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        text = zf.read(meta).decode()
    extras = ["offline-models"] if wheel.name.startswith("callserver-") else []
    for line in text.splitlines():
        if not line.startswith("Requires-Dist:"):
            continue
        req = Requirement(line.split(":", 1)[1].strip())
        if req.marker is not None and not any(
            req.marker.evaluate(env | {"extra": e}) for e in extras or [""]
        ):
            continue
        if canonicalize_name(req.name) not in have:
            wanted.add(f"{req.name}{req.specifier}")
print(" ".join(sorted(wanted)))
PY
)
if [ -n "$extra" ]; then
  echo "adding wheels for older Python 3.11 releases: $extra"
  # shellcheck disable=SC2086  # one argument per requirement
  quiet "$python" -m pip wheel --quiet --wheel-dir "$dest" $extra
fi
# Installing checks the set is complete: every requirement resolves from the folder alone.
# (The wheel is named by its file: a different "callserver" exists on PyPI.)
wheel=$(ls "$dest"/callserver-*.whl)
quiet "$python" -m pip install --dry-run --quiet --ignore-installed --no-index \
  --find-links "$dest" "$wheel[offline-models]"
echo "wheelhouse $dest: $(find "$dest" -name '*.whl' | wc -l) wheels, $(du -sh "$dest" | cut -f1)"
