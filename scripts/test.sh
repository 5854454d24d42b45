#!/usr/bin/env bash
# Installs, builds, and runs the whole test suite (CTest). Tests that need
# ../shared (real models, reference figures) skip with a message when it is absent.
set -euo pipefail
cd "$(dirname "$0")/.."
SHRINK_CMAKE_FLAGS="-DSHRINK_WERROR=ON ${SHRINK_CMAKE_FLAGS:-}" bash scripts/build.sh
cd build
ctest --output-on-failure -j1 --timeout 900
