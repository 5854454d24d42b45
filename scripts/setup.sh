#!/usr/bin/env bash
# Installs shrink's build dependencies from Debian 12 packages (idempotent).
# Run as root (or with sudo available). Prints what it installs.
set -euo pipefail
# ocl-icd-opencl-dev: Debian's oneDNN CMake config looks for OpenCL, which libdnnl-dev only
# recommends, and --no-install-recommends leaves it out (a bare machine's cmake then fails).
PKGS=(build-essential cmake pkg-config
      libdnnl-dev ocl-icd-opencl-dev libeigen3-dev nlohmann-json3-dev libcli11-dev
      libsentencepiece-dev libyaml-cpp-dev zlib1g-dev libgtest-dev libgmock-dev libbenchmark-dev)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#PKGS[@]} packages already installed"
  exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "setup: installing ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
echo "setup: done"
