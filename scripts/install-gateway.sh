#!/usr/bin/env bash
# Installs the test-only Python pieces of the OpenAI-compatibility suites into DIR, idempotently:
#   DIR/openai   the official `openai` SDK (harness/cli/tests/openai_sdk.rs)
#   DIR/litellm  LiteLLM's proxy (harness/cli/tests/litellm_gateway.rs)
# Wheels are cached under ~/.cache/supo-rs/wheels/<name>-<version>, so a second run on the
# machine downloads nothing.
#   scripts/install-gateway.sh DIR
set -euo pipefail
if [ $# -ne 1 ]; then
  echo "usage: $0 DIR" >&2
  exit 2
fi
dir=$1
cache="${XDG_CACHE_HOME:-$HOME/.cache}/supo-rs/wheels"

# install NAME VERSION SPEC TARGET: SPEC pinned at VERSION into TARGET unless it is there.
install() {
  local name=$1 version=$2 spec=$3 target=$4
  if PYTHONPATH="$target" python3 -c "import importlib.metadata as m, sys; sys.exit(m.version('$name') != '$version')" 2>/dev/null; then
    return 0
  fi
  local wheels="$cache/$name-$version"
  mkdir -p "$wheels"
  if ! python3 -m pip install --quiet --no-index --find-links "$wheels" --target "$target.tmp" "$spec" >/dev/null 2>&1; then
    rm -rf "$target.tmp"
    python3 -m pip download --quiet --dest "$wheels" "$spec" >&2
    python3 -m pip install --quiet --no-index --find-links "$wheels" --target "$target.tmp" "$spec" >&2
  fi
  rm -rf "$target"
  mv "$target.tmp" "$target"
}

install openai 3.57.0 "openai==3.57.0" "$dir/openai"
install litellm 1.106.12 "litellm[proxy]==1.106.12" "$dir/litellm"
