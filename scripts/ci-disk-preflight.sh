#!/usr/bin/env bash
# CI's first phase: make room a cold run needs, then say whether it has it.
#
# A cold .ci/run writes about 40 GB: the venv (6 GB), uv's cache (6 GB), the Go build and
# module caches of MinIO and Kubernetes (8 GB), the Kubernetes tools (5 GB), one trainer venv
# layer (4.6 GB) plus pip's build cache (2.5 GB), the registry's copy and containerd's copy of
# the trainer image. A run that meets a full disk dies in whichever build is writing at that
# moment, with a misleading error; this says it once, up front, with the numbers.
#
# Reclaimed here, and only this: untagged podman images (superseded builds) and buildah's
# temporary directories left by builds that were killed (nothing else is building: CI's builds
# start after this). Tagged images and every other file are left alone.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
export CONTAINERS_CONF=${CONTAINERS_CONF:-$ROOT/images/containers.conf}
NEEDED_GB=${TRAINYARD_CI_DISK_GB:-40}

free_gb() { df -P -B1G "$1" | awk 'NR == 2 { print $4 }'; }

if command -v podman >/dev/null; then
    for _ in 1 2 3; do  # each pass frees the parents the previous pass left untagged
        podman --runtime runc image prune --force >/dev/null 2>&1 || true
    done
fi
if ! pgrep -x buildah >/dev/null && ! pgrep -f 'podman.* build' >/dev/null; then
    find /var/tmp -maxdepth 1 \( -name 'buildah[0-9]*' -o -name 'libpod_builder[0-9]*' -o -name 'storage[0-9]*' \) \
        -mmin +30 -exec rm -rf {} + 2>/dev/null || true
fi

free=$(free_gb "$ROOT")
echo "disk: ${free} GB free for $ROOT (a cold run needs about ${NEEDED_GB} GB)"
df -h "$ROOT" /var/lib/containers /tmp 2>/dev/null | awk 'NR == 1 || !seen[$1]++' | sed 's/^/  /'
if [ "$free" -lt "$NEEDED_GB" ]; then
    echo "ci-disk-preflight: only ${free} GB free, a cold run needs about ${NEEDED_GB} GB;" \
        "free space (podman images: 'podman --runtime runc images', other checkouts' .venv/.tools) and run again" >&2
    exit 1
fi
