#!/usr/bin/env bash
# Install what the daemonless image path needs (Debian packages only): buildah to build
# docker/Dockerfile, debootstrap to make its local Debian base (tools/job_images/base.py), podman +
# runc to run the images, skopeo/umoci to inspect OCI archives.
# Idempotent: does nothing when everything is already there. Needs root (CI runs as root).
set -euo pipefail

tools=(podman skopeo umoci runc buildah debootstrap)
packages=(podman skopeo umoci runc buildah debootstrap)

missing=()
for tool in "${tools[@]}"; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
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
  case "$tool" in
    debootstrap) version=$(dpkg-query -W -f '${Version}' debootstrap 2>/dev/null || true) ;;
    *) version=$("$tool" --version 2>/dev/null | head -n1) ;;
  esac
  printf '  %-11s %s\n' "$tool" "$version"
done
