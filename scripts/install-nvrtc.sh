#!/usr/bin/env bash
# Installs NVRTC (NVIDIA's run-time CUDA C compiler) from PyPI's nvidia-cuda-nvrtc-cu12 wheel,
# without a CUDA toolkit or a GPU, so supo-cuda can compile its kernels (and its NVRTC tests run).
#
#   usage: scripts/install-nvrtc.sh DIR
#
# Installs into DIR (idempotent: does nothing when DIR already holds libnvrtc.so.12) and prints
# the library directory on standard output, e.g.
#
#   export LD_LIBRARY_PATH="$(scripts/install-nvrtc.sh /opt/nvrtc):$LD_LIBRARY_PATH"
#   export SUPO_REQUIRE_NVRTC=1   # make the NVRTC tests fail instead of skipping
#
# cudarc opens libnvrtc.so.12 (one of the names it tries), which the wheel ships; the wheel's
# libnvrtc-builtins.so.12.* sits beside it and is found through the same LD_LIBRARY_PATH.
# Progress goes to standard error. SUPO_NVRTC_SPEC overrides the pip requirement (default: the
# newest CUDA 12 NVRTC), e.g. SUPO_NVRTC_SPEC='nvidia-cuda-nvrtc-cu12==12.4.*'.
set -euo pipefail

if [ $# -ne 1 ] || [ -z "$1" ]; then
    echo "usage: $0 DIR" >&2
    exit 2
fi
dir=$1
# The CUDA 12 line; any 12.x NVRTC builds the kernels (they need no toolkit headers).
spec=${SUPO_NVRTC_SPEC:-nvidia-cuda-nvrtc-cu12>=12.0,<13}
libdir="$dir/nvidia/cuda_nvrtc/lib"

if [ ! -e "$libdir/libnvrtc.so.12" ]; then
    mkdir -p "$dir"
    python3 -m pip install --quiet --disable-pip-version-check --no-deps \
        --target "$dir" "$spec" >&2
fi
if [ ! -e "$libdir/libnvrtc.so.12" ]; then
    echo "$0: $libdir/libnvrtc.so.12 missing after installing $spec" >&2
    exit 1
fi
# Some loaders look for the unversioned name first; give them one inside DIR.
if [ ! -e "$libdir/libnvrtc.so" ]; then
    ln -s libnvrtc.so.12 "$libdir/libnvrtc.so"
fi
cd "$libdir" && pwd
