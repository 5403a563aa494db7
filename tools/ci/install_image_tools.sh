#!/usr/bin/env bash
# Install what the daemonless image path needs (Debian packages only): podman + runc to run
# images, skopeo/umoci to inspect OCI archives, buildah for Containerfile builds, and the pieces
# tools/oci reads from the host to make the base rootfs (python3.11, ca-certificates, tzdata, ldd).
# Idempotent: does nothing when everything is already there. Needs root (CI runs as root).
set -euo pipefail

tools=(podman skopeo umoci runc buildah)
packages=(podman skopeo umoci runc buildah ca-certificates tzdata python3.11-minimal libpython3.11-stdlib)

missing=()
for tool in "${tools[@]}"; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
for path in /usr/bin/python3.11 /usr/share/ca-certificates/mozilla /usr/share/zoneinfo /usr/bin/ldd; do
  [[ -e "$path" ]] || missing+=("$path")
done

if ((${#missing[@]} == 0)); then
  echo "install_image_tools: present: ${tools[*]}"
else
  echo "install_image_tools: missing ${missing[*]}; installing ${packages[*]}"
  if [[ $(id -u) -ne 0 ]]; then
    echo "install_image_tools: must run as root to apt-get install" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  # Wait for another apt/dpkg run (a parallel test process, unattended upgrades) instead of failing.
  apt=(apt-get -o DPkg::Lock::Timeout=600)
  "${apt[@]}" update -qq
  "${apt[@]}" install -y -qq "${packages[@]}" >/dev/null
fi

for tool in "${tools[@]}"; do
  printf '  %-8s %s\n' "$tool" "$("$tool" --version 2>/dev/null | head -n1)"
done
