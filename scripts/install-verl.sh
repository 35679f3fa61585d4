#!/usr/bin/env bash
# Installs verl 0.9.1 (the reference of `supo loss`, for scripts/verl_reference.py) into DIR with
# `--no-deps`, plus only what importing `verl.trainer.ppo.core_algos` and
# `verl.workers.utils.losses` needs, and torch 2.15.0 for the CPU (PyPI's wheel loads its CUDA
# runtime libraries at import even without a GPU, so its nvidia-* wheels come too: about 3 GB).
# Prints DIR, the folder to put on PYTHONPATH. Idempotent.
#   scripts/install-verl.sh DIR
#
# What the import needs, measured on verl 0.9.1: verl's package `__init__` imports `verl.protocol`
# and so ray, and `core_algos` itself reaches ray through `verl.workers.config` →
# `verl.utils.profiler` → `verl.single_controller`; `losses` imports `verl.utils.dataset` and so
# `datasets` and pillow; both need tensordict, omegaconf, transformers and codetiming. So plain ray (not
# `ray[default]`, and nothing is started) is installed, and verl imports as it is, unpatched.
#
# The wheels are downloaded once into a cache outside the repository, keyed by the versions
# (`$SUPO_WHEEL_CACHE`, default ~/.cache/supo-rs/wheels), and installed from there with
# `--no-index`: a second install on the same machine downloads nothing.
set -euo pipefail
if [ $# -ne 1 ]; then
  echo "usage: $0 DIR" >&2
  exit 2
fi
dir=$1
verl=0.9.1
torch=2.15.0
# The pieces the two modules import, pinned (their own dependencies are resolved once, at the
# first download, and then come from the cache).
reqs=(
  "torch==$torch"
  "numpy==2.4.6"
  "tensordict==0.10.0"
  "transformers==5.10.4"
  "omegaconf==2.4.0"
  "codetiming==1.4.0"
  "ray==2.60.0"
  "datasets==4.8.5"
  "pillow==13.0.0"
)
key="verl-$verl-torch-$torch"
stamp="$key ${reqs[*]}"
cache="${SUPO_WHEEL_CACHE:-$HOME/.cache/supo-rs/wheels}/$key"

if [ -f "$dir/.supo-verl" ] && [ "$(cat "$dir/.supo-verl")" = "$stamp" ]; then
  cd "$dir" && pwd
  exit 0
fi

pip() { python3 -m pip --disable-pip-version-check --no-input "$@"; }
export PIP_ROOT_USER_ACTION=ignore

if [ ! -f "$cache/.complete" ] || [ "$(cat "$cache/.complete")" != "$stamp" ]; then
  mkdir -p "$cache"
  echo "install-verl: downloading verl $verl, torch $torch and their dependencies into $cache" >&2
  pip download --quiet --dest "$cache" --only-binary=:all: "${reqs[@]}" >&2
  pip download --quiet --dest "$cache" --only-binary=:all: --no-deps "verl==$verl" >&2
  echo "$stamp" >"$cache/.complete"
fi

# Into a fresh folder, then moved in place: an interrupted install leaves no half environment.
partial="$dir.partial"
rm -rf "$partial"
mkdir -p "$(dirname "$dir")"
echo "install-verl: installing into $dir" >&2
pip install --quiet --no-warn-conflicts --no-index --find-links "$cache" --target "$partial" "${reqs[@]}" >&2
pip install --quiet --no-warn-conflicts --no-index --find-links "$cache" --target "$partial" --no-deps "verl==$verl" >&2
PYTHONPATH="$partial" python3 -c 'import verl.trainer.ppo.core_algos, verl.workers.utils.losses' >&2
echo "$stamp" >"$partial/.supo-verl"
rm -rf "$dir"
mv "$partial" "$dir"
cd "$dir" && pwd
