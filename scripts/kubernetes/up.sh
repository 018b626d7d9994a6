#!/usr/bin/env bash
# Bring up the single-node Kubernetes test tier: etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler, CoreDNS, containerd (CRI) -> runc, kubelet and kube-proxy, pods on a CNI
# bridge the tier creates (trainyard0, gateway 10.244.0.1 = node IP). Needs root and the
# binaries from scripts/ensure-kubernetes.sh.
#
#   scripts/kubernetes/up.sh       bring the cluster up; a no-op when it is already up
#
# Prints the admin kubeconfig's path on the last line and writes $RUN_DIR/cluster.json (what
# tests need to reach the cluster). A registry already answering on 127.0.0.1:5000 is used;
# otherwise one is started (storage: $TRAINYARD_KUBERNETES_REGISTRY_DIR, default
# .trainyard/registry, where scripts/build-images.sh keeps the trainer images). A bring-up that
# fails part-way tears down what it started. scripts/kubernetes/down.sh tears the tier down.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/settings.sh"

ETCD_READY_TIMEOUT_S=60
API_SERVER_READY_TIMEOUT_S=180
CONTROLLERS_READY_TIMEOUT_S=120
NODE_READY_TIMEOUT_S=180
CONTAINERD_READY_TIMEOUT_S=60
DNS_READY_TIMEOUT_S=60

started_at=$(date +%s.%N)

# ---------------------------------------------------------------- preconditions

check_tools() {
    [ "$(id -u)" -eq 0 ] || die "the Kubernetes tier runs a kubelet and containerd and needs root"
    local stamp="$TOOLS_BIN/.kubernetes.version" name
    grep -q "^k8s.io/kubernetes@v$KUBERNETES_VERSION " "$stamp" 2>/dev/null \
        || die "Kubernetes v$KUBERNETES_VERSION is not built in $TOOLS_BIN; run scripts/ensure-kubernetes.sh"
    for name in pause coredns busybox; do
        [ -x "$TOOLS_BIN/$name" ] || die "$TOOLS_BIN/$name is missing; run scripts/ensure-kubernetes.sh"
    done
    for name in etcd containerd runc ctr skopeo podman iptables ip openssl curl flock /usr/lib/cni/bridge; do
        command -v "$name" >/dev/null || die "$name is missing; run scripts/ensure-kubernetes.sh"
    done
}

# A listener on ADDRESS:PORT, or on the wildcard address, makes our bind fail.
check_port_free() { # DAEMON ADDRESS:PORT/PROTOCOL
    local daemon=$1 address=${2%:*} port=${2##*:} protocol=${2##*/} flag=-t
    port=${port%/*}
    [ "$protocol" = udp ] && flag=-u
    local local_address holder
    while read -r local_address holder; do
        case "${local_address%:*}" in
            "$address" | 0.0.0.0 | "*" | "[::]")
                die "port $port/$protocol is busy: $local_address is held by ${holder:-another process}, and $daemon needs $address:$port" ;;
        esac
    done < <(ss -Hlnp "$flag" "sport = :$port" | awk '{ holder = $6; sub(/^users:\(\("/, "", holder); sub(/".*pid=/, " (pid ", holder); sub(/,.*/, ")", holder); print $4, holder }')
}

check_network_free() {
    local entry
    for entry in "${FIXED_PORTS[@]}"; do check_port_free "${entry%% *}" "${entry#* }"; done
    if ss -Hltn "sport = :${REGISTRY##*:}" | grep -q . && ! registry_answers; then
        die "port ${REGISTRY##*:}/tcp is busy and no registry answers on http://$REGISTRY/v2/"
    fi
    ! ip link show "$BRIDGE" >/dev/null 2>&1 \
        || die "a network interface named $BRIDGE already exists and this tier did not create it"
    local overlap
    overlap=$(ip -4 -o addr show | awk -v p="${POD_CIDR%.*/*}." 'index($4, p) == 1 {print $2 " " $4}')
    [ -z "$overlap" ] || die "the pod network $POD_CIDR overlaps an address on this machine ($overlap)"
}

# ---------------------------------------------------------------- helpers

# start_daemon NAME COMMAND...: run in the background, log to $LOGS/NAME.log, record the pid.
start_daemon() {
    local name=$1
    shift
    nohup "$@" >"$LOGS/$name.log" 2>&1 &
    echo $! >"$PIDS/$name.pid"
}

# wait_until DESCRIPTION TIMEOUT_S DAEMON COMMAND...: poll COMMAND until it succeeds; fail at
# the deadline, or at once with the log's tail when DAEMON exits.
wait_until() {
    local description=$1 timeout_s=$2 daemon=$3
    shift 3
    local deadline=$((SECONDS + timeout_s))
    until "$@" >/dev/null 2>&1; do
        if [ -n "$daemon" ] && ! daemon_pid "$daemon" >/dev/null; then
            tail -n 20 "$LOGS/$daemon.log" >&2 || true
            die "$daemon exited while waiting for $description (log: $LOGS/$daemon.log)"
        fi
        [ $SECONDS -lt $deadline ] || die "$description not reached within ${timeout_s}s (logs: $LOGS)"
        sleep 0.25
    done
    log "$description after $(seconds_since "$started_at")s"
}

registry_answers() { curl -fsS -o /dev/null --max-time 2 "http://$REGISTRY/v2/"; }

image_in_registry() { skopeo inspect --tls-verify=false --raw "docker://$1" >/dev/null 2>&1; }

# ---------------------------------------------------------------- network

record_host_sysctls() {
    local key
    for key in "${HOST_SYSCTLS[@]}"; do echo "$key=$(sysctl -n "$key")"; done >"$HOST_SYSCTLS_BEFORE"
}

create_bridge() {
    ip link add "$BRIDGE" type bridge
    touch "$RUN_DIR/bridge.created"
    ip addr add "$NODE_IP/$BRIDGE_PREFIX_LENGTH" dev "$BRIDGE"
    ip link set "$BRIDGE" up
    log "bridge $BRIDGE $NODE_IP/$BRIDGE_PREFIX_LENGTH created"
}

# ---------------------------------------------------------------- PKI (openssl, EC P-256)

issue_certificate() { # NAME SUBJECT EXTENDED_KEY_USAGE [SUBJECT_ALT_NAMES]
    local name=$1 subject=$2 usage=$3 alt_names=${4:-}
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$PKI/$name.key" 2>/dev/null
    openssl req -new -key "$PKI/$name.key" -subj "$subject" -out "$PKI/$name.csr" 2>/dev/null
    {
        echo "basicConstraints=CA:FALSE"
        echo "keyUsage=critical,digitalSignature,keyEncipherment"
        echo "extendedKeyUsage=$usage"
        [ -z "$alt_names" ] || echo "subjectAltName=$alt_names"
    } >"$PKI/$name.ext"
    openssl x509 -req -in "$PKI/$name.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" -CAcreateserial \
        -days 30 -extfile "$PKI/$name.ext" -out "$PKI/$name.crt" 2>/dev/null
    rm -f "$PKI/$name.csr" "$PKI/$name.ext"
}

write_kubeconfig() { # NAME CERTIFICATE_NAME
    cat >"$KUBECONFIGS/$1.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: trainyard
  cluster:
    server: $API_SERVER_URL
    certificate-authority-data: $(base64 -w0 "$PKI/ca.crt")
users:
- name: $1
  user:
    client-certificate-data: $(base64 -w0 "$PKI/$2.crt")
    client-key-data: $(base64 -w0 "$PKI/$2.key")
contexts:
- name: trainyard
  context: {cluster: trainyard, user: $1}
current-context: trainyard
EOF
    chmod 600 "$KUBECONFIGS/$1.kubeconfig"
}

create_pki() {
    mkdir -p "$PKI" "$KUBECONFIGS"
    chmod 700 "$PKI"
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$PKI/ca.key" 2>/dev/null
    openssl req -x509 -new -key "$PKI/ca.key" -subj /CN=trainyard-kubernetes-ca -days 30 -out "$PKI/ca.crt" 2>/dev/null
    issue_certificate apiserver /CN=kube-apiserver serverAuth \
        "IP:$NODE_IP,IP:$KUBERNETES_SERVICE_IP,IP:127.0.0.1,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.$CLUSTER_DOMAIN,DNS:localhost"
    issue_certificate apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" clientAuth
    issue_certificate admin "/O=system:masters/CN=trainyard-admin" clientAuth
    issue_certificate kube-scheduler /CN=system:kube-scheduler clientAuth
    issue_certificate kube-controller-manager /CN=system:kube-controller-manager clientAuth
    issue_certificate kubelet "/O=system:nodes/CN=system:node:$NODE_NAME" clientAuth
    issue_certificate kubelet-serving "/CN=$NODE_NAME" serverAuth "IP:$NODE_IP,DNS:$NODE_NAME"
    issue_certificate kube-proxy /CN=system:kube-proxy clientAuth
    issue_certificate coredns /CN=trainyard:coredns clientAuth
    openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$PKI/service-accounts.key" 2>/dev/null
    openssl pkey -in "$PKI/service-accounts.key" -pubout -out "$PKI/service-accounts.pub"
    local name
    for name in admin kube-scheduler kube-controller-manager kubelet kube-proxy coredns; do
        write_kubeconfig "$name" "$name"
    done
    log "PKI and kubeconfigs written after $(seconds_since "$started_at")s"
}

# ---------------------------------------------------------------- control plane

start_etcd() {
    mkdir -p "$RUN_DIR/etcd"
    chmod 700 "$RUN_DIR/etcd"
    start_daemon etcd etcd --name trainyard --data-dir "$RUN_DIR/etcd" \
        --listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
        --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
        --initial-cluster trainyard=http://127.0.0.1:2380 \
        --quota-backend-bytes 1073741824 --snapshot-count 10000
}

start_api_server() {
    start_daemon kube-apiserver "$TOOLS_BIN/kube-apiserver" \
        --etcd-servers=http://127.0.0.1:2379 \
        --bind-address="$NODE_IP" --advertise-address="$NODE_IP" --secure-port=6443 \
        --client-ca-file="$PKI/ca.crt" \
        --tls-cert-file="$PKI/apiserver.crt" --tls-private-key-file="$PKI/apiserver.key" \
        --kubelet-client-certificate="$PKI/apiserver-kubelet-client.crt" \
        --kubelet-client-key="$PKI/apiserver-kubelet-client.key" \
        --kubelet-certificate-authority="$PKI/ca.crt" \
        --kubelet-preferred-address-types=InternalIP \
        --service-account-issuer="https://kubernetes.default.svc.$CLUSTER_DOMAIN" \
        --service-account-key-file="$PKI/service-accounts.pub" \
        --service-account-signing-key-file="$PKI/service-accounts.key" \
        --service-cluster-ip-range="$SERVICE_CIDR" \
        --authorization-mode=Node,RBAC --enable-admission-plugins=NodeRestriction \
        --allow-privileged=true --profiling=false --v=1
}

start_controllers() {
    local kubeconfig="$KUBECONFIGS/kube-controller-manager.kubeconfig"
    start_daemon kube-controller-manager "$TOOLS_BIN/kube-controller-manager" \
        --kubeconfig="$kubeconfig" --authentication-kubeconfig="$kubeconfig" --authorization-kubeconfig="$kubeconfig" \
        --bind-address=127.0.0.1 --secure-port=10257 --leader-elect=false \
        --use-service-account-credentials=true \
        --service-account-private-key-file="$PKI/service-accounts.key" --root-ca-file="$PKI/ca.crt" \
        --cluster-signing-cert-file="$PKI/ca.crt" --cluster-signing-key-file="$PKI/ca.key" \
        --service-cluster-ip-range="$SERVICE_CIDR" --allocate-node-cidrs=false --profiling=false --v=1
    kubeconfig="$KUBECONFIGS/kube-scheduler.kubeconfig"
    start_daemon kube-scheduler "$TOOLS_BIN/kube-scheduler" \
        --kubeconfig="$kubeconfig" --authentication-kubeconfig="$kubeconfig" --authorization-kubeconfig="$kubeconfig" \
        --bind-address=127.0.0.1 --secure-port=10259 --leader-elect=false --profiling=false --v=1
}

# ---------------------------------------------------------------- DNS

# CoreDNS runs on the node, not as a pod: it answers for cluster.local only (Services and
# headless Services' pod hostnames, e.g. <job>-0.<service>), on the bridge gateway. Names
# outside the cluster get no answer: pods have no route out of the bridge anyway.
start_coredns() {
    kubectl apply --server-side --field-manager=trainyard-tier -f - >/dev/null <<'EOF'
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: trainyard:coredns
rules:
  - apiGroups: [""]
    resources: [endpoints, services, pods, namespaces]
    verbs: [list, watch]
  - apiGroups: [discovery.k8s.io]
    resources: [endpointslices]
    verbs: [list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: trainyard:coredns
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: trainyard:coredns
subjects:
  - apiGroup: rbac.authorization.k8s.io
    kind: User
    name: trainyard:coredns
EOF
    mkdir -p "$RUN_DIR/coredns"
    cat >"$RUN_DIR/coredns/Corefile" <<EOF
$CLUSTER_DOMAIN:53 in-addr.arpa:53 ip6.arpa:53 {
    bind $NODE_IP
    ready 127.0.0.1:8181
    errors
    cache 5
    kubernetes $CLUSTER_DOMAIN in-addr.arpa ip6.arpa {
        kubeconfig $KUBECONFIGS/coredns.kubeconfig trainyard
        pods disabled
        ttl 5
    }
}
EOF
    start_daemon coredns "$TOOLS_BIN/coredns" -conf "$RUN_DIR/coredns/Corefile"
}

# ---------------------------------------------------------------- registry and images

ensure_registry() {
    if registry_answers; then
        log "using the registry already answering on $REGISTRY"
        return
    fi
    bash "$REPO_ROOT/scripts/registry.sh" start "${REGISTRY##*:}" "$REGISTRY_STORAGE" >&2
    echo "$REGISTRY_STORAGE" >"$RUN_DIR/registry.started"
}

busybox_image() {
    local version
    version=$(sed 's/^busybox-static=//; s/^[0-9]*://; s/[^A-Za-z0-9_.-]/-/g' "$TOOLS_BIN/.busybox.version")
    echo "$BUSYBOX_IMAGE_REPOSITORY:$version"
}

# push_scratch_image IMAGE CONTEXT_DIR COMMAND_JSON: a one-layer image of CONTEXT_DIR's files.
push_scratch_image() {
    local image=$1 context=$2 command=$3
    local local_name="localhost/${image#*/}"
    tar -C "$context" --numeric-owner --owner=0 --group=0 -c . \
        | podman --runtime runc import --change "CMD $command" - "$local_name" >/dev/null
    local output
    output=$(podman --runtime runc push --tls-verify=false "$local_name" "docker://$image" 2>&1) \
        || die "pushing $image failed: $output"
}

push_tier_images() {
    local context
    if ! image_in_registry "$PAUSE_IMAGE"; then
        context=$(mktemp -d)
        install -m 0755 "$TOOLS_BIN/pause" "$context/pause"
        push_scratch_image "$PAUSE_IMAGE" "$context" '["/pause"]'
        rm -rf "$context"
        log "pushed $PAUSE_IMAGE"
    fi
    local busybox
    busybox=$(busybox_image)
    if ! image_in_registry "$busybox"; then
        context=$(mktemp -d)
        mkdir -p "$context/bin" "$context/tmp" "$context/etc"
        chmod 1777 "$context/tmp"
        install -m 0755 "$TOOLS_BIN/busybox" "$context/bin/busybox"
        local applet
        for applet in $("$TOOLS_BIN/busybox" --list); do
            [ "$applet" = busybox ] || ln -s busybox "$context/bin/$applet"
        done
        printf 'root:x:0:0:root:/:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n' >"$context/etc/passwd"
        printf 'root:x:0:\nnogroup:x:65534:\n' >"$context/etc/group"
        push_scratch_image "$busybox" "$context" '["/bin/sh"]'
        rm -rf "$context"
        log "pushed $busybox"
    fi
}

# ---------------------------------------------------------------- node

start_containerd() {
    local containerd_dir="$RUN_DIR/containerd"
    mkdir -p "$CONTAINERD_ROOT" "$containerd_dir/state" "$containerd_dir/runc" "$containerd_dir/opt" \
        "$containerd_dir/certs.d/$REGISTRY" "$RUN_DIR/cni/net.d" "$RUN_DIR/cni/ipam"
    cat >"$containerd_dir/certs.d/$REGISTRY/hosts.toml" <<EOF
server = "http://$REGISTRY"
[host."http://$REGISTRY"]
  capabilities = ["pull", "resolve"]
EOF
    # The bridge already has the gateway address; the plugin only attaches pod veths to it.
    # Not a gateway (which would turn on the host's IP forwarding), no ipMasq, no default
    # route: pods reach the node (API server, DNS, MinIO on the gateway), each other directly
    # and headless Services' pods by name, and ClusterIPs that lead to the node; nothing is
    # routed through the machine, so ClusterIP Services backed by pods are not reachable.
    cat >"$RUN_DIR/cni/net.d/10-trainyard.conflist" <<EOF
{
  "cniVersion": "0.4.0",
  "name": "trainyard",
  "plugins": [
    {"type": "bridge", "bridge": "$BRIDGE", "isGateway": false, "ipMasq": false, "hairpinMode": true,
     "ipam": {"type": "host-local", "dataDir": "$RUN_DIR/cni/ipam",
              "ranges": [[{"subnet": "$POD_CIDR", "gateway": "$NODE_IP"}]],
              "routes": [{"dst": "$SERVICE_CIDR"}]}}
  ]
}
EOF
    cat >"$containerd_dir/config.toml" <<EOF
version = 2
root = "$CONTAINERD_ROOT"
state = "$containerd_dir/state"
[grpc]
  address = "$CONTAINERD_SOCKET"
[ttrpc]
  address = "$CONTAINERD_SOCKET.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "$containerd_dir/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  enable_selinux = false
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  # Pod network namespaces under our state dir, not /var/run/netns: teardown stays inside it.
  netns_mounts_under_state_dir = true
  # This sandbox drops CAP_SYS_RESOURCE, so runc cannot lower oom_score_adj to the pause
  # container's -998 ("can't get final child's PID from pipe: EOF" on every pod). Clamp OOM
  # score adjustments to containerd's own value instead.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        # No systemd here: cgroupfs, like the kubelet.
        SystemdCgroup = false
        BinaryName = "$(command -v runc)"
        Root = "$containerd_dir/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$RUN_DIR/cni/net.d"
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "$containerd_dir/certs.d"
EOF
    [ -e /run/containerd ] || touch "$RUN_DIR/shim-socket-dir.created"
    start_daemon containerd containerd --config "$containerd_dir/config.toml"
}

start_kubelet() {
    mkdir -p "$RUN_DIR/kubelet" "$RUN_DIR/kubelet-root" "$RUN_DIR/pod-logs"
    cat >"$RUN_DIR/kubelet/config.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $NODE_IP
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $PKI/ca.crt}
authorization: {mode: Webhook}
tlsCertFile: $PKI/kubelet-serving.crt
tlsPrivateKeyFile: $PKI/kubelet-serving.key
containerRuntimeEndpoint: unix://$CONTAINERD_SOCKET
imageServiceEndpoint: unix://$CONTAINERD_SOCKET
cgroupDriver: cgroupfs
failSwapOn: false
podLogsDir: $RUN_DIR/pod-logs
clusterDomain: $CLUSTER_DOMAIN
clusterDNS: [$NODE_IP]
resolvConf: /etc/resolv.conf
rotateCertificates: false
serializeImagePulls: false
# The sandbox cannot lower oom_score_adj (no CAP_SYS_RESOURCE); the default -999 only fails.
oomScoreAdj: 0
# A shared development machine: evict only when it is really out of memory or disk. Absolute
# disk floors: 1% of a large disk (2.7 GB) was crossed for minutes by other builds on the machine,
# and each time the kubelet tainted the node and deleted the pulled 2.7 GB trainer image.
evictionHard: {memory.available: "100Mi", nodefs.available: "512Mi", imagefs.available: "512Mi", nodefs.inodesFree: "1%"}
# Untaint soon after the pressure passes (default 5 min, during which no pod is scheduled).
evictionPressureTransitionPeriod: 30s
imageGCHighThresholdPercent: 99
imageGCLowThresholdPercent: 98
EOF
    start_daemon kubelet "$TOOLS_BIN/kubelet" --config="$RUN_DIR/kubelet/config.yaml" \
        --kubeconfig="$KUBECONFIGS/kubelet.kubeconfig" --root-dir="$RUN_DIR/kubelet-root" \
        --hostname-override="$NODE_NAME" --node-ip="$NODE_IP" --v=1
}

# iptables mode, for ClusterIP Services (e.g. kubernetes.default from a pod). It leaves the
# host's conntrack sysctls alone, and serves NodePorts on the node IP (the bridge) only.
start_kube_proxy() {
    mkdir -p "$RUN_DIR/kube-proxy"
    cat >"$RUN_DIR/kube-proxy/config.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: $KUBECONFIGS/kube-proxy.kubeconfig}
hostnameOverride: $NODE_NAME
mode: iptables
clusterCIDR: $POD_CIDR
# kube-proxy takes a specific bindAddress as the node's IP.
bindAddress: $NODE_IP
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
nodePortAddresses: [primary]
oomScoreAdj: 0
iptables: {localhostNodePorts: false, masqueradeAll: false, minSyncPeriod: 1s, syncPeriod: 30s}
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s, udpTimeout: 0s, udpStreamTimeout: 0s}
EOF
    start_daemon kube-proxy "$TOOLS_BIN/kube-proxy" --config="$RUN_DIR/kube-proxy/config.yaml" --v=1
}

node_is_ready() {
    kubectl get node "$NODE_NAME" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' | grep -qx True
}

dns_answers() {
    # busybox nslookup asks the given server; the apiserver's Service must resolve to its ClusterIP.
    "$TOOLS_BIN/busybox" nslookup "kubernetes.default.svc.$CLUSTER_DOMAIN" "$NODE_IP" 2>/dev/null \
        | grep -q "$KUBERNETES_SERVICE_IP"
}

write_cluster_json() {
    cat >"$CLUSTER_JSON" <<EOF
{
  "kubernetes_version": "$KUBERNETES_VERSION",
  "kubeconfig": "$ADMIN_KUBECONFIG",
  "api_server_url": "$API_SERVER_URL",
  "node_name": "$NODE_NAME",
  "node_ip": "$NODE_IP",
  "bridge": "$BRIDGE",
  "pod_cidr": "$POD_CIDR",
  "service_cidr": "$SERVICE_CIDR",
  "cluster_dns_ip": "$NODE_IP",
  "cluster_domain": "$CLUSTER_DOMAIN",
  "registry": "$REGISTRY",
  "pause_image": "$PAUSE_IMAGE",
  "busybox_image": "$(busybox_image)",
  "kubectl": "$TOOLS_BIN/kubectl",
  "run_dir": "$RUN_DIR",
  "logs_dir": "$LOGS"
}
EOF
}

# ---------------------------------------------------------------- main

bring_up() {
    check_tools
    if cluster_is_up; then
        log "already up"
        echo "$ADMIN_KUBECONFIG"
        exit 0
    fi
    if [ -d "$RUN_DIR" ]; then
        log "state of an earlier run is left in $RUN_DIR; tearing it down first"
        bash "$REPO_ROOT/scripts/kubernetes/down.sh" >&2
    fi
    check_network_free
    mkdir -p "$RUN_DIR" "$LOGS" "$PIDS"
    # From here on, a failure tears down whatever this run started.
    trap 'status=$?; if [ $status -ne 0 ]; then log "bring-up failed; tearing down what it started"; bash "$REPO_ROOT/scripts/kubernetes/down.sh" >&2 || true; fi' EXIT
    log "bringing up Kubernetes v$KUBERNETES_VERSION (state in $RUN_DIR)"
    record_host_sysctls
    create_bridge
    create_pki
    start_etcd
    ensure_registry
    push_tier_images
    start_containerd
    wait_until "etcd healthy" "$ETCD_READY_TIMEOUT_S" etcd curl -fsS --max-time 2 http://127.0.0.1:2379/health
    start_api_server
    wait_until "containerd serving" "$CONTAINERD_READY_TIMEOUT_S" containerd ctr --address "$CONTAINERD_SOCKET" version
    wait_until "kube-apiserver ready" "$API_SERVER_READY_TIMEOUT_S" kube-apiserver api_server_ready
    start_controllers
    start_coredns
    start_kubelet
    start_kube_proxy
    wait_until "kube-scheduler healthy" "$CONTROLLERS_READY_TIMEOUT_S" kube-scheduler curl -fsSk --max-time 2 https://127.0.0.1:10259/healthz
    wait_until "kube-controller-manager healthy" "$CONTROLLERS_READY_TIMEOUT_S" kube-controller-manager curl -fsSk --max-time 2 https://127.0.0.1:10257/healthz
    wait_until "node $NODE_NAME Ready" "$NODE_READY_TIMEOUT_S" kubelet node_is_ready
    wait_until "kube-proxy healthy" "$CONTROLLERS_READY_TIMEOUT_S" kube-proxy curl -fsS --max-time 2 http://127.0.0.1:10256/healthz
    wait_until "cluster DNS answering" "$DNS_READY_TIMEOUT_S" coredns dns_answers
    # Pods need the namespace's default ServiceAccount, made by the controller manager.
    wait_until "default ServiceAccount" "$CONTROLLERS_READY_TIMEOUT_S" kube-controller-manager \
        kubectl -n default get serviceaccount default
    write_cluster_json
    trap - EXIT
    log "cluster up in $(seconds_since "$started_at")s; export KUBECONFIG=$ADMIN_KUBECONFIG"
    echo "$ADMIN_KUBECONFIG"
}

run_under_cluster_lock "$@"
bring_up
