#!/usr/bin/env bash
# Exit 0 when podman can run a container on this machine (the container test tier's
# precondition, checked by .ci/run); otherwise print why and exit 1.
#
# It runs `true` in the trainers' base image when that is already built (no network
# needed), else in a one-file image imported on the spot from the host's /bin/true.
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
export CONTAINERS_CONF=${CONTAINERS_CONF:-$ROOT/images/containers.conf}
PROBE_IMAGE=localhost/trainyard/podman-probe:1

fail() { echo "podman-works: no: $*" >&2; exit 1; }

command -v podman >/dev/null || fail "podman is not installed (scripts/install-system-packages.sh installs it)"
command -v runc >/dev/null || fail "runc is not installed; podman here must use --runtime runc"
[ "$(id -u)" -eq 0 ] || fail "not root; this project's container tier runs rootful podman"

if ! info=$(podman --runtime runc info --format '{{.Store.GraphDriverName}}' 2>&1); then
    fail "podman info failed: $(echo "$info" | tail -n 3)"
fi

image=$(podman --runtime runc images --noheading --format '{{.Repository}}@{{.Digest}}' localhost/trainyard/base 2>/dev/null | head -n1)
if [ -z "$image" ]; then
    # A static-enough probe: /bin/true and the libraries it links, nothing pulled.
    probe_dir=$(mktemp -d)
    trap 'rm -rf "$probe_dir"' EXIT
    mkdir -p "$probe_dir/bin"
    cp /bin/true "$probe_dir/bin/true"
    for lib in $(ldd /bin/true | grep -oE '/[^ ]+'); do
        mkdir -p "$probe_dir$(dirname "$lib")"
        cp -L "$lib" "$probe_dir$lib"
    done
    if ! out=$(tar -C "$probe_dir" -c . | podman --runtime runc import - "$PROBE_IMAGE" 2>&1); then
        fail "podman import of a probe image failed: $(echo "$out" | tail -n 3)"
    fi
    image=$PROBE_IMAGE
fi

if ! out=$(podman --runtime runc run --rm --network host --read-only --user 10001:10001 --cap-drop ALL \
        --security-opt no-new-privileges "$image" /bin/true 2>&1); then
    fail "podman run --runtime runc of $image failed: $(echo "$out" | tail -n 5)"
fi
echo "podman-works: yes (podman $(podman --version | awk '{print $3}'), runc, storage $info, image $image)"
