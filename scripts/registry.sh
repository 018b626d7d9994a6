#!/usr/bin/env bash
# A local OCI registry (Debian's docker-registry = CNCF distribution) for tests and image builds.
#
#   scripts/registry.sh install                    apt-get docker-registry + skopeo if missing
#   scripts/registry.sh start <port> <storage_dir> run on 127.0.0.1:<port>, plain http, in background
#   scripts/registry.sh stop <storage_dir>         stop the registry started with that storage dir
#
# start writes registry.yml, registry.log and registry.pid into <storage_dir> and returns once
# /v2/ answers. Push to it with e.g.
#   skopeo copy --dest-tls-verify=false oci:<dir>:<tag> docker://127.0.0.1:<port>/<repo>:<tag>
set -euo pipefail

REGISTRY_BIN=/usr/bin/docker-registry
APT_PACKAGES=(docker-registry skopeo)
READY_TIMEOUT_S=30

die() { echo "registry.sh: $*" >&2; exit 1; }

install() {
    local missing=()
    command -v "$REGISTRY_BIN" >/dev/null || missing+=(docker-registry)
    command -v skopeo >/dev/null || missing+=(skopeo)
    command -v curl >/dev/null || missing+=(curl)
    [ ${#missing[@]} -eq 0 ] && return 0
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    # --no-install-recommends: the package otherwise pulls in nothing we use here.
    $sudo apt-get install -y --no-install-recommends "${missing[@]}" \
        || { $sudo apt-get update && $sudo apt-get install -y --no-install-recommends "${missing[@]}"; }
}

start() {
    local port=${1:?usage: start <port> <storage_dir>} storage=${2:?usage: start <port> <storage_dir>}
    [ -x "$REGISTRY_BIN" ] || die "$REGISTRY_BIN not found; run: $0 install"
    mkdir -p "$storage"
    storage=$(cd "$storage" && pwd)
    if [ -f "$storage/registry.pid" ] && kill -0 "$(cat "$storage/registry.pid")" 2>/dev/null; then
        die "a registry already runs for $storage (pid $(cat "$storage/registry.pid"))"
    fi
    # The Debian default config enables htpasswd auth on :5000; ours is open and loopback-only.
    cat >"$storage/registry.yml" <<EOF
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $storage
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$port
EOF
    nohup "$REGISTRY_BIN" serve "$storage/registry.yml" >"$storage/registry.log" 2>&1 &
    echo $! >"$storage/registry.pid"
    local deadline=$((SECONDS + READY_TIMEOUT_S))
    until curl -fsS -o /dev/null "http://127.0.0.1:$port/v2/"; do
        if ! kill -0 "$(cat "$storage/registry.pid")" 2>/dev/null; then
            cat "$storage/registry.log" >&2
            die "registry exited during startup"
        fi
        [ $SECONDS -lt $deadline ] || die "registry did not answer on 127.0.0.1:$port within ${READY_TIMEOUT_S}s"
        sleep 0.2
    done
    echo "registry ready at 127.0.0.1:$port (storage $storage, pid $(cat "$storage/registry.pid"))"
}

stop() {
    local storage=${1:?usage: stop <storage_dir>}
    local pidfile="$storage/registry.pid"
    [ -f "$pidfile" ] || die "no registry.pid in $storage"
    kill "$(cat "$pidfile")" 2>/dev/null || true
    rm -f "$pidfile"
}

case "${1:-}" in
    install) install ;;
    start) shift; start "$@" ;;
    stop) shift; stop "$@" ;;
    *) die "usage: $0 install | start <port> <storage_dir> | stop <storage_dir>" ;;
esac
