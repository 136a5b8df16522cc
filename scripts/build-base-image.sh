#!/usr/bin/env bash
# Build a Debian 12 (bookworm) base image with mmdebstrap and `docker import` it, with no image
# registry: the packages come from the Debian mirror the host's apt reaches.
#
#   scripts/build-base-image.sh [--force] [NAME [PACKAGES]]
#
# NAME      image to create (default local/bookworm-py)
# PACKAGES  comma-separated Debian packages to include (default: what callserver's image runs:
#           Python with venv, CA certificates, espeak-ng and Apertium English<->Spanish)
#
# An existing image NAME is kept (the build takes a minute) unless --force is given.
# Needs root (mmdebstrap's root mode), mmdebstrap and a running Docker engine.
set -euo pipefail

force=0
if [ "${1:-}" = "--force" ]; then
  force=1
  shift
fi
name=${1:-local/bookworm-py}
# libgomp1: OpenMP runtime, loaded by onnxruntime/ctranslate2 where a wheel does not bundle it.
packages=${2:-python3,python3-venv,ca-certificates,libgomp1,espeak-ng,apertium,apertium-eng-spa}

if [ "$force" -eq 0 ] && docker image inspect "$name" >/dev/null 2>&1; then
  echo "base image $name exists (scripts/build-base-image.sh --force $name rebuilds it)"
  exit 0
fi
command -v mmdebstrap >/dev/null || {
  echo "mmdebstrap is missing: apt-get install mmdebstrap" >&2
  exit 1
}

echo "building base image $name with: $packages"
# Documentation, manual pages and translations are left out (smaller image); apt's lists are
# removed after the install. stdin is /dev/null so mmdebstrap never reads a mirror list from it.
mmdebstrap --variant=minbase --quiet \
  --include="$packages" \
  --dpkgopt='path-exclude=/usr/share/man/*' \
  --dpkgopt='path-exclude=/usr/share/doc/*' \
  --dpkgopt='path-include=/usr/share/doc/*/copyright' \
  --dpkgopt='path-exclude=/usr/share/locale/*' \
  --dpkgopt='path-exclude=/usr/share/info/*' \
  --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*' \
  bookworm - </dev/null |
  docker import \
    --change 'ENV LANG=C.UTF-8' \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["/bin/bash"]' \
    --message "mmdebstrap --variant=minbase bookworm: $packages" \
    - "$name"
docker image ls "$name"
