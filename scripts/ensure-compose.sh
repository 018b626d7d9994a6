#!/usr/bin/env bash
# Build the Docker Compose v2 CLI from source into .tools/bin/docker-compose, once, so
# tests/test_compose.py can run `docker-compose config` (which needs no Docker engine).
#   COMPOSE_TOOLS_BIN=/x scripts/ensure-compose.sh   build into another directory
set -euo pipefail

COMPOSE_VERSION="v2.40.3"
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin_dir="${COMPOSE_TOOLS_BIN:-$repo_root/.tools/bin}"
binary="$bin_dir/docker-compose" stamp="$bin_dir/.docker-compose.version"
if [ -x "$binary" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$COMPOSE_VERSION" ]; then
  echo "ensure-compose: docker-compose $COMPOSE_VERSION already built ($binary)"
  exit 0
fi
command -v go >/dev/null 2>&1 || export PATH="/usr/local/go/bin:$PATH"
mkdir -p "$bin_dir"
# `go install module@version` refuses compose's go.mod (it has exclude directives), so the
# module is downloaded and built as the main module.
src="$(cd / && go mod download -json "github.com/docker/compose/v2@$COMPOSE_VERSION" \
  | python3 -c 'import json, sys; print(json.load(sys.stdin)["Dir"])')"
echo "ensure-compose: building docker-compose $COMPOSE_VERSION (a few minutes on 2 cores)"
(cd "$src" && CGO_ENABLED=0 GOFLAGS=-buildvcs=false go build -trimpath \
  -ldflags "-s -w -X github.com/docker/compose/v2/internal.Version=$COMPOSE_VERSION" \
  -o "$binary" ./cmd)
echo "$COMPOSE_VERSION" >"$stamp"
