#!/usr/bin/env bash
# Tear down the single-node Kubernetes test tier started by scripts/kubernetes/up.sh, and
# check that nothing of it is left: processes, mounts, pod network namespaces and veths, the
# trainyard0 bridge, KUBE-* iptables chains, kubepods cgroups, containers, the state
# directory. The kernel tunables the kubelet changed get their earlier values back. The
# pulled images stay (containerd's root, .tools/kubernetes/containerd-root).
#
#   scripts/kubernetes/down.sh     tear down (a no-op when nothing runs); exit 1 if anything is left
#
# It only touches what the tier made: the pids it recorded (checked against their binaries),
# containerd shims serving the tier's own socket, mounts under the tier's state directory, the
# bridge it created, and a registry only if up.sh started it. Binaries, pulled images and the
# registry's storage (trainer images) stay.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/settings.sh"

STOP_TIMEOUT_S=20

started_at=$(date +%s.%N)

# stop_daemon NAME: SIGTERM, then SIGKILL after STOP_TIMEOUT_S.
stop_daemon() {
    local name=$1 pid stop_started
    if pid=$(daemon_pid "$name"); then
        stop_started=$(date +%s.%N)
        kill -TERM "$pid" 2>/dev/null || true
        local deadline=$((SECONDS + STOP_TIMEOUT_S))
        while process_alive "$pid" && [ $SECONDS -lt $deadline ]; do sleep 0.1; done
        if process_alive "$pid"; then
            log "$name (pid $pid) ignored SIGTERM for ${STOP_TIMEOUT_S}s; killing it"
            kill -KILL "$pid" 2>/dev/null || true
            while process_alive "$pid"; do sleep 0.1; done
        fi
        log "stopped $name in $(seconds_since "$stop_started")s"
    fi
    rm -f "$PIDS/$name.pid"
}

ctr_() { ctr --address "$CONTAINERD_SOCKET" --namespace k8s.io "$@"; }

# Pod containers die with their tasks (the kubelet is already stopped, so nothing restarts
# them); deleting the containers drops their writable layers and keeps the pulled images.
remove_pod_containers() {
    daemon_pid containerd >/dev/null || return 0
    local task container
    for task in $(ctr_ tasks ls -q 2>/dev/null); do ctr_ tasks kill --signal SIGKILL "$task" >/dev/null 2>&1 || true; done
    for task in $(ctr_ tasks ls -q 2>/dev/null); do ctr_ tasks delete --force "$task" >/dev/null 2>&1 || true; done
    for container in $(ctr_ containers ls -q 2>/dev/null); do ctr_ containers delete "$container" >/dev/null 2>&1 || true; done
}

# Shims outlive containerd (they are reparented to init); ours name our socket.
kill_our_shims() {
    local pid
    for pid in $(pgrep -f -- "containerd-shim.*-address $CONTAINERD_SOCKET( |$)" || true); do
        kill -KILL "$pid" 2>/dev/null || true
    done
}

# Mounts of the tier: under the state dir, pod volumes, overlay root filesystems, shm and
# pod network namespaces (nsfs mounts under containerd's state dir, so the namespaces go
# with them); under containerd's root, an image unpack's temporary mounts.
tier_mounts() {
    findmnt -rn -o TARGET | grep -E "^($RUN_DIR|$CONTAINERD_ROOT)(/|$)" || true
}

unmount_state() {
    local target
    for target in $(tier_mounts | sort -r); do
        umount "$target" 2>/dev/null || umount -l "$target" 2>/dev/null || true
    done
}

remove_network() {
    local veth
    if ip link show "$BRIDGE" >/dev/null 2>&1; then
        for veth in $(ip -o link show master "$BRIDGE" | awk -F': ' '{print $2}' | cut -d@ -f1); do
            ip link delete "$veth" 2>/dev/null || true
        done
        [ ! -f "$RUN_DIR/bridge.created" ] || ip link delete "$BRIDGE"
    fi
}

restore_host_sysctls() {
    [ -f "$HOST_SYSCTLS_BEFORE" ] || return 0
    local key value now
    while IFS='=' read -r key value; do
        now=$(sysctl -n "$key")
        if [ "$now" != "$value" ]; then
            sysctl -qw "$key=$value"
            log "restored $key=$value (the tier had it at $now)"
        fi
    done <"$HOST_SYSCTLS_BEFORE"
}

kube_chains() { # IPTABLES TABLE
    "$1-save" -t "$2" 2>/dev/null | sed -n 's/^:\(KUBE-[^ ]*\) .*/\1/p'
}

# The kubelet's (KUBE-FIREWALL, KUBE-KUBELET-CANARY, KUBE-IPTABLES-HINT) and kube-proxy's
# (KUBE-SERVICES, KUBE-SVC-*, KUBE-SEP-*, ...) chains: the jumps to them from the built-in
# chains first (by rule number, highest first), then their rules, then the chains.
remove_kube_chains() {
    local iptables table chain number chains
    for iptables in iptables ip6tables; do
        for table in filter nat mangle; do
            for chain in INPUT OUTPUT FORWARD PREROUTING POSTROUTING; do
                for number in $("$iptables" -w -t "$table" -L "$chain" -n --line-numbers 2>/dev/null \
                    | awk 'NR > 2 && $2 ~ /^KUBE-/ {print $1}' | sort -rn); do
                    "$iptables" -w -t "$table" -D "$chain" "$number" || true
                done
            done
            chains=$(kube_chains "$iptables" "$table")
            for chain in $chains; do "$iptables" -w -t "$table" -F "$chain" || true; done
            for chain in $chains; do "$iptables" -w -t "$table" -X "$chain" || true; done
        done
    done
}

kubepods_cgroups() {
    local root
    for root in /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/kubepods; do
        [ -d "$root" ] && echo "$root"
    done
    return 0
}

remove_kubepods_cgroups() {
    local root
    for root in $(kubepods_cgroups); do
        find "$root" -depth -type d -exec rmdir {} \; 2>/dev/null || true
    done
}

# containerd 1.6 always puts shim sockets under /run/containerd/s; remove the directories if
# this run created them and nothing else put anything there.
remove_shim_socket_dir() {
    [ -f "$RUN_DIR/shim-socket-dir.created" ] || return 0
    rmdir /run/containerd/s /run/containerd 2>/dev/null || true
}

stop_registry_if_ours() {
    [ -f "$RUN_DIR/registry.started" ] || return 0
    local storage
    storage=$(cat "$RUN_DIR/registry.started")
    if [ -f "$storage/registry.pid" ]; then
        local pid
        pid=$(cat "$storage/registry.pid")
        bash "$REPO_ROOT/scripts/registry.sh" stop "$storage"
        while process_alive "$pid"; do sleep 0.1; done
    fi
}

# One line per thing left behind; exit 1 if there is any.
check_nothing_left() {
    local leftovers=()
    local pid
    for pid in $(pgrep -f -- "$TOOLS_BIN/|$RUN_DIR/|containerd-shim.*$CONTAINERD_SOCKET" || true); do
        [ "$pid" = $$ ] || leftovers+=("process $pid: $(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | cut -c1-120)")
    done
    local target
    for target in $(tier_mounts); do leftovers+=("mount $target"); done
    ! ip link show "$BRIDGE" >/dev/null 2>&1 || leftovers+=("network interface $BRIDGE")
    local iptables table chain
    for iptables in iptables ip6tables; do
        for table in filter nat mangle; do
            for chain in $(kube_chains "$iptables" "$table"); do leftovers+=("$iptables chain $table/$chain"); done
        done
    done
    local root
    for root in $(kubepods_cgroups); do leftovers+=("cgroup $root"); done
    [ ! -e "$RUN_DIR" ] || leftovers+=("state directory $RUN_DIR")
    if [ ${#leftovers[@]} -gt 0 ]; then
        printf 'kubernetes: left behind: %s\n' "${leftovers[@]}" >&2
        return 1
    fi
}

tear_down() {
    if [ ! -d "$RUN_DIR" ]; then
        log "nothing to tear down ($RUN_DIR does not exist)"
        check_nothing_left
        return
    fi
    log "tearing down (state in $RUN_DIR)"
    stop_daemon kubelet
    stop_daemon kube-proxy
    remove_pod_containers
    stop_daemon containerd
    kill_our_shims
    log "node stopped after $(seconds_since "$started_at")s"
    local name
    for name in coredns kube-scheduler kube-controller-manager kube-apiserver; do stop_daemon "$name" & done
    wait
    stop_daemon etcd
    stop_registry_if_ours
    log "control plane stopped after $(seconds_since "$started_at")s"
    unmount_state
    remove_network
    remove_kube_chains
    remove_kubepods_cgroups
    remove_shim_socket_dir
    restore_host_sysctls
    rm -rf "$RUN_DIR"
    check_nothing_left
    log "torn down in $(seconds_since "$started_at")s"
}

run_under_cluster_lock "$@"
tear_down
