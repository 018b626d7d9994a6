#!/usr/bin/env bash
# Run docker-compose.yml for real on a machine with podman and no Docker engine: podman serves
# the Docker API on a unix socket, the Compose CLI built in .tools/bin drives it, and
# tests/compose/podman.yml swaps the unpullable base images for local stand-ins.
#
#   scripts/compose-podman.sh stand-ins          build the stand-in base images (cached by tag)
#   scripts/compose-podman.sh serve SOCKET       run `podman system service` on SOCKET (foreground)
#   scripts/compose-podman.sh compose SOCKET ARGS...   docker-compose -f docker-compose.yml -f tests/compose/podman.yml ARGS
#   scripts/compose-podman.sh healthchecks PROJECT     run the project's health checks every 5 s (foreground)
#
# podman runs a container's health check from a systemd timer; with no systemd (this machine,
# CI) nothing runs them and every service would stay "starting", so `healthchecks` does what
# the timer does: `podman healthcheck run` on each of the project's containers.
#
# tests/compose/test_stack.py (make test-compose) uses all three.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
export CONTAINERS_CONF=${CONTAINERS_CONF:-$ROOT/images/containers.conf}
STAND_INS=localhost/trainyard-stand-in
# Bump when a stand-in's recipe changes in a way its Dockerfile does not show.
STAND_IN_VERSION=1

log() { echo "compose-podman: $*" >&2; }
podman_() { podman --runtime runc "$@"; }

stand_in() {
    local name=$1 tag=$2 dockerfile=$3 base=$4
    shift 4
    local inputs ref
    inputs=$({ echo "$STAND_IN_VERSION $base"; cat "tests/compose/stand-ins/$dockerfile" "$@"; } | sha256sum | cut -c1-16)
    ref="$STAND_INS/$name:$tag"
    if podman_ image exists "$ref" \
        && [ "$(podman_ image inspect --format '{{index .Labels "io.trainyard.stand-in-inputs"}}' "$ref")" = "$inputs" ]; then
        log "$ref: cached"
        return
    fi
    log "$ref: building FROM $base"
    podman_ build --network host --layers \
        --volume "$(go env GOROOT 2>/dev/null || echo /usr/local/go):/host/go:ro" \
        --volume /etc/ssl/certs:/host/certs:ro \
        --build-arg "BASE_IMAGE=$base" --build-arg "GOPROXY=$(go env GOPROXY 2>/dev/null || echo https://proxy.golang.org,direct)" \
        --label "io.trainyard.stand-in-inputs=$inputs" \
        -f "tests/compose/stand-ins/$dockerfile" -t "$ref" tests/compose/stand-ins >&2
}

stand_ins() {
    command -v go >/dev/null 2>&1 || export PATH="/usr/local/go/bin:$PATH"
    local base
    base=$(bash scripts/build-images.sh base)
    podman_ tag "$base" "$STAND_INS/debian:bookworm"
    stand_in golang 1.26-bookworm golang.Dockerfile "$base"
    stand_in python 3.11-bookworm python.Dockerfile "$base"
    stand_in postgres 15-bookworm postgres.Dockerfile "$base" tests/compose/stand-ins/postgres-entrypoint.sh
}

serve() {
    local socket=$1
    mkdir -p "$(dirname "$socket")"
    exec podman --runtime runc system service --time=0 "unix://$socket"
}

compose() {
    local socket=$1
    shift
    # BuildKit would start a moby/buildkit container, which cannot be pulled here; the classic
    # builder sends the context to podman, which builds with each Dockerfile's own .dockerignore.
    # One build at a time: without BuildKit nothing shares a build in progress, so the five
    # services that build the same Airflow image would each write its 7 GB venv layer at once
    # (and a temporary copy of it), which filled the disk; built one after another, the first
    # writes it and the rest find it in the layer cache.
    DOCKER_HOST="unix://$socket" DOCKER_BUILDKIT=0 COMPOSE_PARALLEL_LIMIT="${COMPOSE_PARALLEL_LIMIT:-1}" exec "$ROOT/.tools/bin/docker-compose" \
        -f docker-compose.yml -f tests/compose/podman.yml "$@"
}

healthchecks() {
    local project=$1 id
    while true; do
        for id in $(podman_ ps --quiet --filter "label=com.docker.compose.project=$project"); do
            podman_ healthcheck run "$id" >/dev/null 2>&1 || true  # unhealthy, or no check: podman records it
        done
        sleep 5
    done
}

case "${1:-}" in
    stand-ins) stand_ins ;;
    serve) serve "$2" ;;
    compose) shift; compose "$@" ;;
    healthchecks) healthchecks "$2" ;;
    *) echo "usage: $0 stand-ins | serve SOCKET | compose SOCKET ARGS... | healthchecks PROJECT" >&2; exit 2 ;;
esac
