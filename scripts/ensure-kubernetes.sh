#!/usr/bin/env bash
# Install what the single-node Kubernetes test tier runs on: Debian's etcd, containerd, runc
# and CNI plugins; Kubernetes itself, CoreDNS and a static pause binary built from the Go
# module proxy; and Debian's static busybox (for the tier's small test image), all into
# .tools/kubernetes/bin. Idempotent: a second run installs and builds nothing.
#
#   scripts/ensure-kubernetes.sh                 install the packages that are missing, build what is stale
#   KUBERNETES_TOOLS_DIR=/x scripts/ensure-kubernetes.sh   build under another directory
#
# Kubernetes has no installable main module (its go.mod replaces every k8s.io/* staging module
# with ./staging/...), so it is built from a small wrapper module that requires
# k8s.io/kubernetes and points each staging module at its published v0.X.Y. Stay on 1.34: this
# kernel mounts cgroup v1, which kubelet 1.35+ refuses by default, and Debian's containerd 1.6
# lacks the CRI RuntimeConfig call newer kubelets move towards. A cold build takes ~12 min of an
# idle 2-core machine (more under load) and fills ~3.6 GiB of Go caches.
set -euo pipefail

KUBERNETES_VERSION=1.34.4
COREDNS_VERSION=1.14.7
# kube-proxy is built for ClusterIP Services, kubectl because a machine's own kubectl (if any)
# may be of any version.
KUBERNETES_COMMANDS=(kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl)
# CoreDNS runs on the node and answers only for the cluster (headless Services for rendezvous);
# a custom build with just these plugins, in CoreDNS's own directive order, skips the cloud
# SDKs the stock binary links.
COREDNS_PLUGINS=(bind ready errors cache kubernetes)
APT_PACKAGES=(etcd-server containerd runc containernetworking-plugins iptables conntrack openssl
    iproute2 procps util-linux curl ca-certificates podman skopeo docker-registry)

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tools_dir="${KUBERNETES_TOOLS_DIR:-$repo_root/.tools/kubernetes}"
bin_dir="$tools_dir/bin"
build_dir="$tools_dir/build"
mkdir -p "$bin_dir" "$build_dir"

log() { echo "ensure-kubernetes: $*"; }
die() { echo "ensure-kubernetes: error: $*" >&2; exit 1; }

install_packages() {
    local missing=() pkg
    for pkg in "${APT_PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
    done
    if [ ${#missing[@]} -eq 0 ]; then
        log "Debian packages: all present"
        return
    fi
    [ "$(id -u)" -eq 0 ] || die "Debian packages missing (${missing[*]}) and not root; install them with apt-get"
    log "installing Debian packages: ${missing[*]}"
    local started=$SECONDS
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >/dev/null
    # The tier runs its own etcd, containerd and registry with its own config; keep the packages'
    # init scripts from starting the machine-wide ones (they would hold the tier's ports).
    local policy=/usr/sbin/policy-rc.d added_policy=0
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\n# ensure-kubernetes.sh: no service starts during this install\nexit 101\n' >"$policy"
        chmod 755 "$policy"
        added_policy=1
    fi
    local status=0
    apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null || status=$?
    [ "$added_policy" -eq 0 ] || rm -f "$policy"
    [ "$status" -eq 0 ] || die "apt-get install ${missing[*]} failed ($status)"
    log "installed ${missing[*]} in $((SECONDS - started))s"
}

ensure_go() {
    command -v go >/dev/null 2>&1 && return
    if [ -x /usr/local/go/bin/go ]; then
        export PATH="/usr/local/go/bin:$PATH"
        return
    fi
    die "go not found (Kubernetes $KUBERNETES_VERSION needs Go >= 1.24; install it to /usr/local/go)"
}

# stamp_matches NAME VALUE: the binaries behind NAME were built from VALUE and are all present.
stamp_matches() {
    local stamp="$bin_dir/.$1.version" value=$2
    shift 2
    [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$value" ] || return 1
    local binary
    for binary in "$@"; do [ -x "$bin_dir/$binary" ] || return 1; done
}

build_kubernetes() {
    local stamp_value="k8s.io/kubernetes@v$KUBERNETES_VERSION ${KUBERNETES_COMMANDS[*]}"
    if stamp_matches kubernetes "$stamp_value" "${KUBERNETES_COMMANDS[@]}"; then
        log "kubernetes v$KUBERNETES_VERSION already built (${KUBERNETES_COMMANDS[*]} in $bin_dir)"
        return
    fi
    ensure_go
    local module_dir="$build_dir/kubernetes" minor staging_version started gomod
    minor=${KUBERNETES_VERSION#1.}
    minor=${minor%%.*}
    staging_version="v0.${KUBERNETES_VERSION#1.}"
    started=$SECONDS
    log "building kubernetes v$KUBERNETES_VERSION (${KUBERNETES_COMMANDS[*]}) with $(go version | awk '{print $3}'); ~12 min on 2 idle cores"
    rm -rf "$module_dir"
    mkdir -p "$module_dir"
    cd "$module_dir"
    gomod=$(go mod download -json "k8s.io/kubernetes@v$KUBERNETES_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
    [ -f "$gomod" ] || die "could not download k8s.io/kubernetes@v$KUBERNETES_VERSION from $(go env GOPROXY)"
    {
        printf 'module trainyard.local/kubernetes-build\n\ngo 1.24.0\n\n'
        # The defaults of the Go release Kubernetes 1.34 is built with, not of the local toolchain.
        printf 'godebug default=go1.24\n\n'
        printf 'require k8s.io/kubernetes v%s\n\n' "$KUBERNETES_VERSION"
        grep -E '=> \./staging/' "$gomod" | awk -v v="$staging_version" '{print "replace " $1 " => " $1 " " v}'
    } >go.mod
    {
        printf '//go:build tools\n\n// The commands this module builds.\npackage kubernetesbuild\n\nimport (\n'
        local kube_command
        for kube_command in "${KUBERNETES_COMMANDS[@]}"; do printf '\t_ "k8s.io/kubernetes/cmd/%s"\n' "$kube_command"; done
        printf ')\n'
    } >tools.go
    nice -n 10 go mod tidy
    log "go mod tidy done after $((SECONDS - started))s"
    # Stamp the version the way upstream's Makefile does; unstamped binaries report
    # v0.0.0-master+$Format:%H$, which kubectl cannot parse from the node's status.
    local ldflags="-s -w" version_package packages=()
    for version_package in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
        ldflags+=" -X $version_package.gitVersion=v$KUBERNETES_VERSION -X $version_package.gitMajor=1"
        ldflags+=" -X $version_package.gitMinor=$minor -X $version_package.gitTreeState=clean"
        ldflags+=" -X $version_package.buildDate=1970-01-01T00:00:00Z"
    done
    for kube_command in "${KUBERNETES_COMMANDS[@]}"; do packages+=("k8s.io/kubernetes/cmd/$kube_command"); done
    nice -n 10 go build -trimpath -ldflags="$ldflags" -o "$bin_dir/" "${packages[@]}"
    cd "$repo_root"
    "$bin_dir/kubelet" --version | grep -qx "Kubernetes v$KUBERNETES_VERSION" \
        || die "built kubelet reports '$("$bin_dir/kubelet" --version)', not v$KUBERNETES_VERSION"
    echo "$stamp_value" >"$bin_dir/.kubernetes.version"
    log "built kubernetes v$KUBERNETES_VERSION in $((SECONDS - started))s (wall)"
}

build_coredns() {
    local stamp_value="github.com/coredns/coredns@v$COREDNS_VERSION ${COREDNS_PLUGINS[*]}"
    if stamp_matches coredns "$stamp_value" coredns; then
        log "coredns v$COREDNS_VERSION already built ($bin_dir/coredns)"
        return
    fi
    ensure_go
    local module_dir="$build_dir/coredns" started=$SECONDS plugin
    log "building coredns v$COREDNS_VERSION with plugins ${COREDNS_PLUGINS[*]}"
    rm -rf "$module_dir"
    mkdir -p "$module_dir"
    cd "$module_dir"
    printf 'module trainyard.local/coredns-build\n\ngo 1.25.0\n\nrequire github.com/coredns/coredns v%s\n' \
        "$COREDNS_VERSION" >go.mod
    {
        printf '// CoreDNS with only the plugins the Kubernetes test tier uses.\npackage main\n\nimport (\n'
        printf '\t"github.com/coredns/coredns/core/dnsserver"\n\t"github.com/coredns/coredns/coremain"\n\n'
        for plugin in "${COREDNS_PLUGINS[@]}"; do printf '\t_ "github.com/coredns/coredns/plugin/%s"\n' "$plugin"; done
        local directives
        directives=$(printf '"%s", ' "${COREDNS_PLUGINS[@]}")
        printf ')\n\nfunc init() {\n\tdnsserver.Directives = []string{%s}\n}\n\nfunc main() { coremain.Run() }\n' \
            "${directives%, }"
    } >main.go
    nice -n 10 go mod tidy
    nice -n 10 go build -trimpath -ldflags="-s -w" -o "$bin_dir/coredns" .
    cd "$repo_root"
    echo "$stamp_value" >"$bin_dir/.coredns.version"
    log "built coredns v$COREDNS_VERSION in $((SECONDS - started))s (wall)"
}

# The sandbox ("pause") container of every pod: sleeps, reaps zombies, exits on SIGTERM.
# Built here because no registry with registry.k8s.io/pause is reachable.
build_pause() {
    local source_sha256
    source_sha256=$(pause_source | sha256sum | cut -c1-64)
    if stamp_matches pause "$source_sha256" pause; then
        log "pause already built ($bin_dir/pause)"
        return
    fi
    ensure_go
    local module_dir="$build_dir/pause"
    rm -rf "$module_dir"
    mkdir -p "$module_dir"
    pause_source >"$module_dir/main.go"
    printf 'module trainyard.local/pause\n\ngo 1.22\n' >"$module_dir/go.mod"
    (cd "$module_dir" && CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o "$bin_dir/pause" .)
    echo "$source_sha256" >"$bin_dir/.pause.version"
    log "built pause ($bin_dir/pause, static)"
}

pause_source() {
    cat <<'EOF'
// The pod sandbox process: holds the pod's namespaces, reaps zombies, exits on SIGINT/SIGTERM.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	signals := make(chan os.Signal, 4)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for s := range signals {
		if s != syscall.SIGCHLD {
			os.Exit(0)
		}
		for {
			var status syscall.WaitStatus
			pid, err := syscall.Wait4(-1, &status, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}
EOF
}

# Debian's static busybox, unpacked from its .deb rather than installed: it conflicts with the
# dynamic busybox package a machine may need, and only goes into an image.
busybox_candidate_version() {
    apt-cache policy busybox-static 2>/dev/null | awk '/Candidate:/ && $2 != "(none)" {print $2}'
}

fetch_busybox() {
    local version
    version=$(busybox_candidate_version)
    if [ -z "$version" ]; then
        apt-get update -q >/dev/null
        version=$(busybox_candidate_version)
    fi
    [ -n "$version" ] || die "no busybox-static package in this machine's apt sources"
    if stamp_matches busybox "busybox-static=$version" busybox; then
        log "busybox-static $version already unpacked ($bin_dir/busybox)"
        return
    fi
    local download_dir
    download_dir=$(mktemp -d)
    (cd "$download_dir" && apt-get download -q -o APT::Sandbox::User=root "busybox-static=$version" >/dev/null)
    dpkg-deb -x "$download_dir"/busybox-static_*.deb "$download_dir/root"
    install -m 0755 "$download_dir/root/bin/busybox" "$bin_dir/busybox"
    rm -rf "$download_dir"
    echo "busybox-static=$version" >"$bin_dir/.busybox.version"
    log "unpacked busybox-static $version ($bin_dir/busybox)"
}

install_packages
build_kubernetes
build_pause
build_coredns
fetch_busybox
