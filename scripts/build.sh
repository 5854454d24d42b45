#!/usr/bin/env bash
# Installs dependencies (Debian 12) and builds shrink in Release mode into ./build.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release ${SHRINK_CMAKE_FLAGS:-} >/dev/null
cmake --build build -j"${JOBS:-2}"
