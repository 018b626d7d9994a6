#!/usr/bin/env bash
# Build the trainer images on a machine with no Docker engine and no registry to pull from:
# debootstrap a Debian base, build both trainers FROM it by digest, push them to a local
# registry and register their digests in the algorithm registry (the configured store).
#
#   scripts/build-images.sh [--registry HOST:PORT] [--version V] [--no-push]
#   scripts/build-images.sh lock      regenerate images/<algorithm>/requirements.lock
#   scripts/build-images.sh base      only the debootstrapped base; prints its pinned reference
#
# --registry defaults to $TRAINYARD_REGISTRY, else 127.0.0.1:5000 (config/algorithms.yaml);
# a registry that does not answer there is started for the build (storage under
# .trainyard/registry in this checkout, where scripts/kubernetes/ serves the cluster's images
# from) and stopped again afterwards. The store comes from the usual TRAINYARD_STORE* env
# (steps/store/factory.py), under the same $TRAINYARD_HOME the CLI uses.
#
# Cache: every image is tagged inputs-<hash of what it is built from>. An image whose tag
# already exists is not rebuilt, so a second run on the same machine only pushes/registers.
# Set TRAINYARD_REBUILD=1 to ignore that cache (podman's own layer cache still applies).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
# This sandbox cannot raise rlimits and crun fails on its cgroup layout (images/containers.conf).
export CONTAINERS_CONF=${CONTAINERS_CONF:-$ROOT/images/containers.conf}
PYTHON=${PYTHON:-$ROOT/.venv/bin/python}
# The same embedded state the CLI uses (one default, in steps/store/settings.py).
if [ -z "${TRAINYARD_HOME:-}" ] && [ -x "$PYTHON" ]; then
    TRAINYARD_HOME=$("$PYTHON" -c 'from steps.store.settings import trainyard_home; print(trainyard_home())')
fi
export TRAINYARD_HOME=${TRAINYARD_HOME:-$HOME/.local/share/trainyard}

ALGORITHMS=(digits-cnn intent-classification)
IMAGE_NAMESPACE=trainyard
BASE_IMAGE=localhost/$IMAGE_NAMESPACE/base
SUITE=bookworm
# python3 for the trainers; ca-certificates so a trainer can reach an https MinIO.
BASE_PACKAGES=python3,ca-certificates
# Bump when the base recipe below changes in a way the hash inputs do not show.
BASE_RECIPE_VERSION=1
INPUTS_LABEL=io.trainyard.inputs-sha256
# Superseded builds younger than this are kept: on a machine with several checkouts (worktrees)
# each builds its own inputs, and removing another's fresh build breaks its push mid-way.
KEEP_RECENT_BUILDS_S=${TRAINYARD_KEEP_RECENT_BUILDS_S:-7200}
# CUDA wheels torch lists as dependencies that a CPU trainer never loads: `import torch`
# and CPU training work without them (checked with torch 2.15.0 when this list was made).
# Everything torch dlopens at import (cudart, cublas, cudnn, nccl, ...) stays in the lock.
LOCK_OMIT=(triton cuda-bindings cuda-pathfinder cuda-toolkit nvidia-cusolver nvidia-nvtx nvidia-cuda-cccl)

log() { echo "build-images: $*" >&2; }
die() { log "error: $*"; exit 1; }
now_s() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now_s)" 'BEGIN { printf "%.1f", b - a }'; }
sha256_of_stdin() { sha256sum | cut -c1-64; }

podman_() { podman --runtime runc "$@"; }

image_exists() { podman_ image exists "$1"; }

image_digest() { podman_ image inspect --format '{{.Digest}}' "$1"; }

image_size_bytes() { podman_ image inspect --format '{{.Size}}' "$1"; }

# The Debian mirror apt already uses here (deb.debian.org unless the machine says otherwise).
debian_mirror() {
    local uri
    uri=$(grep -rhoE '(URIs:|^deb)[[:space:]]+(\[[^]]*\][[:space:]]+)?https?://[^[:space:]]+/debian/?([[:space:]]|$)' \
        /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null \
        | grep -oE 'https?://[^[:space:]]+' | head -n1 || true)
    echo "${uri:-http://deb.debian.org/debian}"
}

lock() {
    for algorithm in "${ALGORITHMS[@]}"; do
        local omit=()
        for pkg in "${LOCK_OMIT[@]}"; do omit+=(--no-emit-package "$pkg"); done
        # -c requirements.lock: the same versions the subprocess executor trains with.
        # --no-annotate keeps both locks byte-identical, so both images share one venv layer.
        uv pip compile "images/$algorithm/requirements.in" -c requirements.lock \
            --python-version 3.11 --python-platform x86_64-unknown-linux-gnu \
            --generate-hashes --no-annotate "${omit[@]}" --custom-compile-command "scripts/build-images.sh lock" \
            --quiet -o "images/$algorithm/requirements.lock"
        log "wrote images/$algorithm/requirements.lock"
    done
}

base_inputs_sha256() {
    printf '%s\n' "recipe=$BASE_RECIPE_VERSION" "suite=$SUITE" "variant=minbase" "packages=$BASE_PACKAGES" \
        "debootstrap=$(dpkg-query -W -f='${Version}' debootstrap)" | sha256_of_stdin
}

# Like Debian's own slim images: minbase, no docs/man/locales, no apt lists or caches.
slim_rootfs() {
    local rootfs=$1
    cat >"$rootfs/etc/dpkg/dpkg.cfg.d/trainyard-slim" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/lintian/*
EOF
    find "$rootfs/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
    find "$rootfs/usr/share/doc" -mindepth 1 -type d -empty -delete
    rm -rf "$rootfs"/usr/share/{man,info,locale,lintian}/* \
        "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/cache/apt/archives/*.deb \
        "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/log/* "$rootfs"/tmp/* "$rootfs"/root/.cache
}

build_base() {
    local inputs tag
    inputs=$(base_inputs_sha256)
    tag="$BASE_IMAGE:inputs-${inputs:0:16}"
    if image_exists "$tag" && [ -z "${TRAINYARD_REBUILD:-}" ]; then
        log "base: cached $tag"
        BASE_REF="$BASE_IMAGE@$(image_digest "$tag")"
        return
    fi
    command -v debootstrap >/dev/null || die "debootstrap missing; run scripts/install-system-packages.sh"
    local started rootfs mirror
    started=$(now_s)
    mirror=$(debian_mirror)
    rootfs=$(mktemp -d /var/tmp/trainyard-base.XXXXXX)
    log "base: debootstrap --variant=minbase $SUITE from $mirror"
    debootstrap --variant=minbase --include="$BASE_PACKAGES" "$SUITE" "$rootfs" "$mirror" >"$rootfs.log" 2>&1 \
        || { tail -n 30 "$rootfs.log" >&2; die "debootstrap failed (log: $rootfs.log)"; }
    rm -f "$rootfs.log"
    slim_rootfs "$rootfs"
    tar -C "$rootfs" --numeric-owner --sort=name -c . | podman_ import \
        --change 'ENV LANG=C.UTF-8' \
        --change 'CMD ["/bin/bash"]' \
        --change "LABEL $INPUTS_LABEL=$inputs" \
        --change "LABEL org.opencontainers.image.description=Debian $SUITE minbase + $BASE_PACKAGES" \
        - "$tag" >/dev/null
    rm -rf "$rootfs"
    BASE_REF="$BASE_IMAGE@$(image_digest "$tag")"
    log "base: built $tag in $(elapsed "$started")s, $(image_size_bytes "$tag") bytes, $BASE_REF"
}

# Everything a trainer image is built from: its Dockerfile, lock and code, the shared
# steps/ modules it imports (TRAINER_SHARED_CODE) and the base image's digest.
trainer_inputs_sha256() {
    local algorithm=$1
    {
        echo "base=$BASE_REF"
        sha256sum "images/$algorithm/Dockerfile" "images/$algorithm/Dockerfile.dockerignore" \
            "images/$algorithm/requirements.lock"
        "$PYTHON" -c 'import sys; from pathlib import Path; from steps.images.code_hash import trainer_code_sha256; print(trainer_code_sha256(Path(sys.argv[1])))' \
            "images/$algorithm"
    } | sha256_of_stdin
}

build_trainer() {
    local algorithm=$1 inputs tag started
    inputs=$(trainer_inputs_sha256 "$algorithm")
    tag="localhost/$IMAGE_NAMESPACE/$algorithm:inputs-${inputs:0:16}"
    local pushed="${PUSH_REGISTRY:-none}/$IMAGE_NAMESPACE/$algorithm:inputs-${inputs:0:16}"
    if image_exists "$tag" && [ -z "${TRAINYARD_REBUILD:-}" ]; then
        log "$algorithm: cached $tag"
    elif [ -n "${PUSH_REGISTRY:-}" ] && [ -z "${TRAINYARD_REBUILD:-}" ] && remote_image_exists "$pushed"; then
        # Built from the same inputs and pushed before (the local copy may be gone: disk, or
        # another checkout's build tidying up): tag it in the registry instead of rebuilding.
        log "$algorithm: cached in the registry as $pushed"
        TRAINER_TAGS[$algorithm]=$pushed
        return
    else
        started=$(now_s)
        log "$algorithm: building FROM $BASE_REF"
        # --network host: RUN steps reach PyPI/Debian without a CNI bridge.
        # /etc/ssl/certs: pip must trust this machine's CA bundle (PIP_CERT in the Dockerfile).
        podman_ build --network host --layers \
            --volume /etc/ssl/certs:/etc/ssl/certs:ro \
            --build-arg "BASE_IMAGE=$BASE_REF" \
            --label "$INPUTS_LABEL=$inputs" \
            --label "org.opencontainers.image.base.name=$BASE_REF" \
            -f "images/$algorithm/Dockerfile" -t "$tag" . >&2
        log "$algorithm: built $tag in $(elapsed "$started")s"
    fi
    log "$algorithm: image size $(image_size_bytes "$tag") bytes"
    TRAINER_TAGS[$algorithm]=$tag
    forget_older_builds "localhost/$IMAGE_NAMESPACE/$algorithm" "$tag"
}

# Drop earlier inputs-* builds of a repository so superseded builds do not pile up on disk.
# Names a loopback (test/dev) registry gave such a build go with it; a build that carries any
# other name is kept, and so is one a container still uses (rmi refuses).
forget_older_builds() {
    local repository=$1 keep=$2 old names name
    for old in $(podman_ images --noheading --format '{{.Repository}}:{{.Tag}}' "$repository"); do
        case "$old" in "$keep") continue ;; "$repository":inputs-*) ;; *) continue ;; esac
        [ "$(podman_ image inspect --format '{{.Id}}' "$old")" = "$(podman_ image inspect --format '{{.Id}}' "$keep")" ] && continue
        # Another checkout on this machine may have just built it and be pushing it right now.
        [ $(($(date +%s) - $(podman_ image inspect --format '{{.Created.Unix}}' "$old"))) -lt "$KEEP_RECENT_BUILDS_S" ] && continue
        names=$(podman_ image inspect --format '{{range .RepoTags}}{{.}} {{end}}{{range .RepoDigests}}{{.}} {{end}}' "$old")
        for name in $names; do
            case "$name" in "$repository":inputs-* | "$repository"@sha256:* | 127.0.0.1:*/* | localhost:*/*) ;; *) continue 2 ;; esac
        done
        for name in $names; do podman_ rmi "$name" >/dev/null 2>&1 || true; done
    done
}

registry_answers() { curl -fsS -o /dev/null --max-time 2 "http://$1/v2/"; }

remote_image_exists() { skopeo inspect --tls-verify=false --raw "docker://$1" >/dev/null 2>&1; }

ensure_registry() {
    local registry=$1
    registry_answers "$registry" && return 0
    case "$registry" in
        127.0.0.1:* | localhost:*) ;;
        *) die "registry $registry does not answer on http://$registry/v2/" ;;
    esac
    STARTED_REGISTRY_DIR=$ROOT/.trainyard/registry
    bash scripts/registry.sh start "${registry##*:}" "$STARTED_REGISTRY_DIR" >&2
}

push_and_register() {
    local algorithm=$1 registry=$2 version=$3 started digest_file digest reference
    started=$(now_s)
    reference="$registry/$IMAGE_NAMESPACE/$algorithm:$version"
    digest_file=$(mktemp)
    # A loopback registry speaks plain http; anything else must be TLS.
    local tls=(--tls-verify=true)
    case "$registry" in 127.0.0.1:* | localhost:*) tls=(--tls-verify=false) ;; esac
    case "${TRAINER_TAGS[$algorithm]}" in
        localhost/*)
            podman_ push "${tls[@]}" --quiet --digestfile "$digest_file" "${TRAINER_TAGS[$algorithm]}" "docker://$reference" >&2
            digest=$(cat "$digest_file")
            # The inputs tag lets a later build of the same inputs skip building (build_trainer).
            podman_ push "${tls[@]}" --quiet "${TRAINER_TAGS[$algorithm]}" \
                "docker://$registry/$IMAGE_NAMESPACE/${TRAINER_TAGS[$algorithm]##*/}" >&2 ;;
        *)  # already in this registry under its inputs tag: copy the manifest, no layer moves
            skopeo copy --quiet "${tls[@]/tls-verify/src-tls-verify}" "${tls[@]/tls-verify/dest-tls-verify}" \
                --digestfile "$digest_file" "docker://${TRAINER_TAGS[$algorithm]}" "docker://$reference" >&2
            digest=$(cat "$digest_file") ;;
    esac
    rm -f "$digest_file"
    log "$algorithm: pushed $reference@$digest in $(elapsed "$started")s"
    "$PYTHON" - "$algorithm" "$reference" "$digest" "$version" <<'EOF'
import sys
from datetime import date

from steps.catalog.catalog import ImageVersion, register_image_version
from steps.store import open_store

algorithm, reference, digest, version = sys.argv[1:]
key = register_image_version(
    open_store(),
    algorithm,
    ImageVersion(effective_from=date.today(), version=version, image=reference, image_digest=digest),
)
print(f"build-images: {algorithm}: registered {digest} as {key}", file=sys.stderr)
EOF
    echo "$algorithm $registry/$IMAGE_NAMESPACE/$algorithm@$digest"
}

main() {
    local registry=${TRAINYARD_REGISTRY:-127.0.0.1:5000} version=${TRAINYARD_IMAGE_VERSION:-1.0.0} push=1
    while [ $# -gt 0 ]; do
        case "$1" in
            --registry) registry=$2; shift 2 ;;
            --version) version=$2; shift 2 ;;
            --no-push) push=0; shift ;;
            lock) lock; return ;;
            base) BASE_REF=""; build_base; echo "$BASE_REF"; return ;;
            *) die "unknown argument $1 (usage: $0 [--registry HOST:PORT] [--version V] [--no-push] | lock | base)" ;;
        esac
    done
    command -v podman >/dev/null || die "podman missing; run scripts/install-system-packages.sh"
    [ -x "$PYTHON" ] || die "$PYTHON missing; run make venv"
    local total
    total=$(now_s)
    BASE_REF=""
    declare -gA TRAINER_TAGS=()
    build_base
    PUSH_REGISTRY=""
    if [ "$push" -eq 1 ] && registry_answers "$registry"; then PUSH_REGISTRY=$registry; fi
    for algorithm in "${ALGORITHMS[@]}"; do build_trainer "$algorithm"; done
    if [ "$push" -eq 1 ]; then
        STARTED_REGISTRY_DIR=""
        ensure_registry "$registry"
        # Stop a registry we started, even when a push fails; its storage keeps the images.
        trap '[ -n "$STARTED_REGISTRY_DIR" ] && bash scripts/registry.sh stop "$STARTED_REGISTRY_DIR"' EXIT
        for algorithm in "${ALGORITHMS[@]}"; do push_and_register "$algorithm" "$registry" "$version"; done
    else
        for algorithm in "${ALGORITHMS[@]}"; do echo "$algorithm ${TRAINER_TAGS[$algorithm]}"; done
    fi
    log "done in $(elapsed "$total")s"
}

main "$@"
