#!/usr/bin/env bash
# Build the MinIO server and its `mc` client from source (the community edition ships
# as source only) into .tools/bin, once; later runs reuse the binaries.
#
#   scripts/ensure-minio.sh            build what is missing or built from another pin
#   MINIO_TOOLS_BIN=/x scripts/ensure-minio.sh   build into another directory
#
# Neither module has semver tags on the Go module proxy, so the pins are pseudo-versions
# of upstream commits (minio 2026-02-12, mc 2025-03-13); both build with Go 1.26.
set -euo pipefail

MINIO_MODULE_VERSION="v0.0.0-20260212201848-7aac2a2c5b7c"
MC_MODULE_VERSION="v0.0.0-20250313080218-cf909e1063a9"

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin_dir="${MINIO_TOOLS_BIN:-$repo_root/.tools/bin}"
mkdir -p "$bin_dir"

ensure_go() {
  if command -v go >/dev/null 2>&1; then
    return
  fi
  if [ -x /usr/local/go/bin/go ]; then
    export PATH="/usr/local/go/bin:$PATH"
    return
  fi
  # A machine without Go: Debian's toolchain is new enough (minio needs go >= 1.24).
  echo "ensure-minio: go not found; installing Debian's golang-go"
  if [ "$(id -u)" = 0 ]; then
    apt-get install -y --no-install-recommends golang-go
  else
    sudo apt-get install -y --no-install-recommends golang-go
  fi
}

# build NAME MODULE VERSION: go install MODULE@VERSION unless NAME was already built from it.
build() {
  local name="$1" module="$2" version="$3"
  local binary="$bin_dir/$name" stamp="$bin_dir/.$name.version"
  if [ -x "$binary" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$module@$version" ]; then
    echo "ensure-minio: $name already built from $module@$version ($binary)"
    return
  fi
  ensure_go
  echo "ensure-minio: building $name from $module@$version with $(go version | awk '{print $3}') (takes a few minutes on 2 cores)"
  local started=$SECONDS
  # Build outside the repo so a go.mod of ours (if any) does not interfere.
  (cd / && GOBIN="$bin_dir" GOFLAGS="${GOFLAGS:--buildvcs=false}" go install "$module@$version")
  echo "$module@$version" >"$stamp"
  echo "ensure-minio: built $binary in $((SECONDS - started))s"
}

build minio github.com/minio/minio "$MINIO_MODULE_VERSION"
build mc github.com/minio/mc "$MC_MODULE_VERSION"
