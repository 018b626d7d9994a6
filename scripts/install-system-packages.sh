#!/usr/bin/env bash
# Debian packages the test tiers need. Installs only what is missing; needs root (CI is root).
set -euo pipefail
PACKAGES=(postgresql postgresql-15 chromium fonts-liberation docker-registry skopeo podman buildah runc debootstrap uidmap fuse-overlayfs golang-github-containernetworking-plugin-dnsname)
missing=()
for pkg in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ "${#missing[@]}" -eq 0 ]; then
  echo "system packages: all present"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "system packages missing (${missing[*]}) and not root; install them with apt-get" >&2
  exit 1
fi
echo "installing system packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >/dev/null
apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
echo "system packages: installed ${missing[*]}"
