#!/usr/bin/env bash
# Is the single-node Kubernetes test tier up? Prints each daemon's pid and resident memory.
#
#   scripts/kubernetes/status.sh     exit 0 when it is up, 3 when it is not
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/settings.sh"

total_rss_kib=0
for name in "${DAEMONS[@]}"; do
    if pid=$(daemon_pid "$name"); then
        rss_kib=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status")
        total_rss_kib=$((total_rss_kib + rss_kib))
        printf '%-24s pid %-8s rss %6d MiB\n' "$name" "$pid" $((rss_kib / 1024))
    else
        printf '%-24s not running\n' "$name"
    fi
done
printf '%-24s %-12s rss %6d MiB\n' "total" "" $((total_rss_kib / 1024))
if cluster_is_up; then
    echo "up: export KUBECONFIG=$ADMIN_KUBECONFIG"
else
    echo "not up"
    exit 3
fi
