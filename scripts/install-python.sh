#!/usr/bin/env bash
# Builds and installs the `supo` Python package (python/, PyO3 + maturin) and its test
# tools into DIR, and prints the PYTHONPATH the pytest suite (python/tests) runs with:
#   DIR/supo       `pip install ./python` (maturin from PyPI under build isolation; cargo's
#                  release build reuses this workspace's target/)
#   DIR/pytest     pytest, pinned
#   DIR/verl-extra what importing verl 0.9.1's agent-loop and V1 trainer modules needs beyond
#                  scripts/install-verl.sh's set (hydra, TransferQueue, fastapi, …), pinned,
#                  installed with --no-deps so the verl folder's torch/numpy stay the only ones
#   DIR/verl       (from scripts/install-verl.sh, when present) goes last on the path
# Wheels are cached under ~/.cache/supo-rs/wheels/python-tests-<key>; a second run downloads
# nothing (pip's own cache keeps maturin's build requirements).
#   scripts/install-python.sh DIR
set -euo pipefail
if [ $# -ne 1 ]; then
  echo "usage: $0 DIR" >&2
  exit 2
fi
dir=$(mkdir -p "$1" && cd "$1" && pwd)
root=$(cd "$(dirname "$0")/.." && pwd)
export PIP_ROOT_USER_ACTION=ignore PIP_DISABLE_PIP_VERSION_CHECK=1
pip() { python3 -m pip --no-input "$@"; }

pytest_reqs=(pytest==8.4.2 iniconfig==2.3.1 pluggy==1.7.0 pygments==2.21.0 packaging==26.4)
# hydra-core 1.3's antlr4 runtime has no wheel on PyPI: it is built into one, once, into the cache.
sdist_only=(antlr4-python3-runtime==4.9.3)
verl_extra=(
  hydra-core==1.3.2 cachetools==8.0.2 fastapi==0.165.0
  starlette==1.10.0 uvicorn==0.54.0 opentelemetry-api==1.45.2 TransferQueue==0.1.11
  pyzmq==27.3.0 msgspec==0.23.0 prometheus_client==0.26.0 torchdata==0.11.0 peft==0.21.2
  accelerate==1.15.0
)
stamp="${pytest_reqs[*]} ${sdist_only[*]} ${verl_extra[*]}"
key=$(printf '%s' "$stamp" | sha256sum | cut -c1-16)
cache="${SUPO_WHEEL_CACHE:-$HOME/.cache/supo-rs/wheels}/python-tests-$key"

if [ ! -f "$dir/.supo-python-tests" ] || [ "$(cat "$dir/.supo-python-tests")" != "$stamp" ]; then
  if [ ! -f "$cache/.complete" ]; then
    mkdir -p "$cache"
    echo "install-python: downloading pytest and verl's agent-loop extras into $cache" >&2
    pip download --quiet --dest "$cache" --only-binary=:all: --no-deps "${pytest_reqs[@]}" "${verl_extra[@]}" >&2
    pip wheel --quiet --wheel-dir "$cache" --no-deps "${sdist_only[@]}" >&2
    touch "$cache/.complete"
  fi
  for part in pytest verl-extra; do rm -rf "$dir/$part.partial"; done
  pip install --quiet --no-index --find-links "$cache" --no-deps --target "$dir/pytest.partial" "${pytest_reqs[@]}" >&2
  pip install --quiet --no-index --find-links "$cache" --no-deps --target "$dir/verl-extra.partial" "${sdist_only[@]}" "${verl_extra[@]}" >&2
  for part in pytest verl-extra; do rm -rf "${dir:?}/$part" && mv "$dir/$part.partial" "$dir/$part"; done
  echo "$stamp" >"$dir/.supo-python-tests"
fi

# The package itself, rebuilt every time (cargo makes an unchanged build quick). Thin LTO and
# debug info are a release wheel's concern, not the tests'.
echo "install-python: pip install ./python into $dir/supo" >&2
rm -rf "$dir/supo.partial"
CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_DEBUG=0 \
  pip install --quiet --no-warn-conflicts --target "$dir/supo.partial" "$root/python" >&2
rm -rf "$dir/supo" && mv "$dir/supo.partial" "$dir/supo"

path="$dir/supo:$dir/pytest:$dir/verl-extra"
[ -d "$dir/verl" ] && path="$path:$(cd "$dir/verl" && pwd)"
echo "$path"
