# The single-node Kubernetes tier's addresses, ports, paths and images, and the helpers its
# scripts share. Sourced by up.sh, down.sh and status.sh; not run on its own.
#
# Every address the tier serves on is either loopback or the gateway of the bridge the tier
# creates (trainyard0, 10.244.0.1/24): pods reach the API server, DNS and the tier's MinIO
# there, and nothing listens on the machine's external interface.

KUBERNETES_VERSION=1.34.4
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
# Physical paths (.tools may be a symlink): the kernel lists mounts under their real path.
TOOLS_DIR="$(realpath -m "${KUBERNETES_TOOLS_DIR:-$REPO_ROOT/.tools/kubernetes}")"
TOOLS_BIN="$TOOLS_DIR/bin"
# All runtime state: PKI, kubeconfigs, etcd data, containerd state (incl. pod network
# namespaces), kubelet root, logs and pid files. down.sh removes it.
RUN_DIR="$(realpath -m "${TRAINYARD_KUBERNETES_RUN_DIR:-$TOOLS_DIR/run}")"
LOCK_FILE="$TOOLS_DIR/cluster.lock"
# containerd's root: the images the kubelet pulled, unpacked. It outlives a teardown (which
# deletes every container from it), so a trainer image of several GB is pulled and unpacked
# once, not at every bring-up. Delete the directory, with the tier down, to drop the images.
CONTAINERD_ROOT="$(realpath -m "${TRAINYARD_KUBERNETES_IMAGE_CACHE:-$TOOLS_DIR/containerd-root}")"

NODE_NAME=trainyard-node
BRIDGE=trainyard0
POD_CIDR=10.244.0.0/24
BRIDGE_PREFIX_LENGTH=24
# The bridge's own address: node IP, API server advertise address, cluster DNS, tier MinIO.
NODE_IP=10.244.0.1
SERVICE_CIDR=10.96.0.0/16
KUBERNETES_SERVICE_IP=10.96.0.1
CLUSTER_DOMAIN=cluster.local
API_SERVER_URL="https://$NODE_IP:6443"

# The registry the kubelet pulls from (plain http on loopback). scripts/build-images.sh pushes
# the trainer images to the same address and, when it starts a registry itself, keeps their
# blobs in the same storage directory.
REGISTRY=127.0.0.1:5000
REGISTRY_STORAGE="${TRAINYARD_KUBERNETES_REGISTRY_DIR:-$REPO_ROOT/.trainyard/registry}"
PAUSE_IMAGE="$REGISTRY/trainyard/pause:3.10"
# busybox from Debian's busybox-static on an empty base: shell, sleep, nslookup and nc for
# test pods, and the XCom sidecar image (the provider's default is alpine from Docker Hub).
BUSYBOX_IMAGE_REPOSITORY="$REGISTRY/trainyard/busybox"

PKI="$RUN_DIR/pki"
KUBECONFIGS="$RUN_DIR/kubeconfigs"
ADMIN_KUBECONFIG="$KUBECONFIGS/admin.kubeconfig"
LOGS="$RUN_DIR/logs"
PIDS="$RUN_DIR/pids"
CONTAINERD_SOCKET="$RUN_DIR/containerd/containerd.sock"
CLUSTER_JSON="$RUN_DIR/cluster.json"

# Daemons in start order; down.sh stops them in reverse.
DAEMONS=(etcd kube-apiserver kube-controller-manager kube-scheduler coredns containerd kubelet kube-proxy)

# "daemon address:port/protocol" for every fixed port the tier binds (a kubelet and an API
# server cannot move to a random port the way the test servers do). The registry's 5000 is
# checked on its own: a registry already answering there is used, not replaced.
FIXED_PORTS=(
    "etcd 127.0.0.1:2379/tcp" "etcd 127.0.0.1:2380/tcp"
    "kube-apiserver $NODE_IP:6443/tcp"
    "kube-controller-manager 127.0.0.1:10257/tcp" "kube-scheduler 127.0.0.1:10259/tcp"
    "kubelet $NODE_IP:10250/tcp" "kubelet 127.0.0.1:10248/tcp"
    "kube-proxy 127.0.0.1:10249/tcp" "kube-proxy 127.0.0.1:10256/tcp"
    "coredns $NODE_IP:53/udp" "coredns $NODE_IP:53/tcp" "coredns 127.0.0.1:8181/tcp"
)

# The kernel tunables the kubelet sets on start (overcommit, panic on oops, key quotas), with
# no setting to leave them alone. up.sh records them and down.sh puts them back. The tier
# changes no other host setting: its CNI bridge is no gateway (so IP forwarding stays as it
# was) and kube-proxy serves no localhost NodePorts (so route_localnet does too).
HOST_SYSCTLS=(vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops
    kernel.keys.root_maxkeys kernel.keys.root_maxbytes)
HOST_SYSCTLS_BEFORE="$RUN_DIR/host-sysctls.before"

export PATH="$TOOLS_BIN:$PATH"
export KUBECONFIG="$ADMIN_KUBECONFIG"
export CONTAINERS_CONF="${CONTAINERS_CONF:-$REPO_ROOT/images/containers.conf}"

log() { echo "[$(date +%T)] kubernetes: $*" >&2; }
die() { echo "[$(date +%T)] kubernetes: error: $*" >&2; exit 1; }

# Seconds since $1 (a `date +%s.%N` value), one decimal.
seconds_since() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }

# A process that exists and is not a zombie: daemons are orphaned to this machine's init,
# which reaps them only every few seconds.
process_alive() {
    [ -r "/proc/$1/stat" ] && [ "$(sed -n 's/^.*) \(.\).*/\1/p' "/proc/$1/stat" 2>/dev/null)" != Z ]
}

# The recorded pid of a tier daemon, if that process still runs the daemon's binary. A pid
# reused by an unrelated process after a crash is never treated as ours.
daemon_pid() {
    local name=$1 pid
    [ -f "$PIDS/$name.pid" ] || return 1
    pid=$(cat "$PIDS/$name.pid")
    process_alive "$pid" || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$(daemon_binary "$name")" || return 1
    echo "$pid"
}

daemon_binary() {
    case "$1" in
        etcd | containerd) echo "$1" ;;
        registry) echo "docker-registry" ;;
        *) echo "$TOOLS_BIN/$1" ;;
    esac
}

api_server_ready() {
    curl -fsS --max-time 5 --cacert "$PKI/ca.crt" --cert "$PKI/admin.crt" --key "$PKI/admin.key" \
        "$API_SERVER_URL/readyz" >/dev/null 2>&1
}

# 0 when every daemon runs and the API server answers ready.
cluster_is_up() {
    local name
    for name in "${DAEMONS[@]}"; do daemon_pid "$name" >/dev/null || return 1; done
    api_server_ready
}

# Re-run the calling script under an exclusive lock (two test sessions starting at once share
# one cluster). flock -o keeps the lock's descriptor out of the daemons the script starts.
run_under_cluster_lock() {
    [ -z "${TRAINYARD_KUBERNETES_LOCK_HELD:-}" ] || return 0
    mkdir -p "$TOOLS_DIR"
    export TRAINYARD_KUBERNETES_LOCK_HELD=1
    exec flock -o "$LOCK_FILE" bash "$0" "$@"
}
