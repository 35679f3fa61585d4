#!/usr/bin/env bash
# Checks that each crate pulls only what its concern needs: the dependency limits of the
# layout (README, "Layout"), read from `cargo tree` (normal dependencies, every feature on).
# Exits 1 naming each crate that reaches a crate it must not.
set -euo pipefail
cd "$(dirname "$0")/.."
status=0
forbid() {
  local pkg=$1
  shift
  local deps
  deps=$(cargo tree -q -p "$pkg" --all-features -e normal --prefix none | awk '{print $1}' | sort -u)
  for dep in "$@"; do
    if grep -qx "$dep" <<<"$deps"; then
      echo "$pkg depends on $dep (see the README's layout)" >&2
      status=1
    fi
  done
}
gpu_cli=(wgpu cudarc supo-wgpu supo-cuda clap plotters indicatif mimalloc)
forbid supo-bfcl candle-core supo-core tokio reqwest axum tokenizers "${gpu_cli[@]}"
forbid supo-agent candle-core axum "${gpu_cli[@]}"
forbid supo-synth candle-core axum "${gpu_cli[@]}"
forbid supo-train candle-core tokio reqwest axum tokenizers "${gpu_cli[@]}"
forbid supo-serve candle-core candle-nn "${gpu_cli[@]}"
forbid supo-gguf tokio reqwest axum hyper supo-agent supo-serve "${gpu_cli[@]}"
forbid supo-rs candle-core tokio reqwest axum tokenizers "${gpu_cli[@]}"
exit $status
