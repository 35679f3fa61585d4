#!/usr/bin/env bash
# The test command: installs the test-only third-party pieces into target/pydeps (BFCL's
# reference `bfcl-eval` wheel, NVIDIA's NVRTC wheel, verl 0.9.1 with torch for the CPU) when pip
# can reach PyPI, then runs the whole workspace's tests, then the Python package's pytest suite
# (python/tests, after `pip install ./python`). Extra arguments go to `cargo test`.
#
# Suites that need something this machine lacks (a wgpu adapter, NVRTC, a CUDA GPU, python3,
# the BFCL wheel, the openai SDK or LiteLLM, verl, the real models or llama.cpp's server) say by
# name that they skipped; set SUPO_REQUIRE_WGPU / SUPO_REQUIRE_NVRTC / SUPO_REQUIRE_BFCL /
# SUPO_REQUIRE_GATEWAY / SUPO_REQUIRE_VERL / SUPO_REQUIRE_LLM to 1 to make them fail instead (CI
# does).
set -euo pipefail
cd "$(dirname "$0")/.."
deps="$PWD/target/pydeps"
mkdir -p "$deps"

if command -v python3 >/dev/null && python3 -m pip --version >/dev/null 2>&1; then
  if [ -x scripts/install-bfcl.sh ]; then
    BFCL_EVAL_DIR="$(scripts/install-bfcl.sh "$deps/bfcl")" && export BFCL_EVAL_DIR
  fi
  # The official openai SDK and LiteLLM's proxy, for the OpenAI-compatibility suites.
  if [ -x scripts/install-gateway.sh ]; then
    scripts/install-gateway.sh "$deps" || echo "scripts/install-gateway.sh failed: the openai SDK and LiteLLM suites will skip" >&2
  fi
  if [ -x scripts/install-nvrtc.sh ]; then
    nvrtc_lib="$(scripts/install-nvrtc.sh "$deps/nvrtc")" && export LD_LIBRARY_PATH="$nvrtc_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  fi
  if [ -x scripts/install-verl.sh ]; then
    # verl 0.9.1 for harness/cli/tests/verl_reference.rs (about 3 GB of wheels, cached in
    # ~/.cache/supo-rs/wheels; the folder goes on PYTHONPATH of scripts/verl_reference.py only).
    SUPO_VERL_PYTHONPATH="$(scripts/install-verl.sh "$deps/verl")" && export SUPO_VERL_PYTHONPATH
  fi
  # The `supo` Python package (pip install ./python), pytest and verl's agent-loop extras.
  supo_pythonpath="$(scripts/install-python.sh "$deps")" || echo "scripts/install-python.sh failed: the Python suite (python/tests) will skip" >&2
  # Real language models (SmolLM2-135M, Qwen2.5-Coder-0.5B, GGUF) and Qwen's Hugging Face
  # tokenizer into target/llm, and llama.cpp's llama-server (built once, about 12 min on two
  # cores, cached in ~/.cache/supo-rs), for the real-model suites (harness/cli/tests/llm_*.rs).
  if [ -x scripts/install-llm.sh ]; then
    if scripts/install-llm.sh "$PWD/target/llm"; then
      export SUPO_LLM_DIR="$PWD/target/llm"
    else
      echo "scripts/install-llm.sh failed: the real-model suites will skip" >&2
    fi
  fi
  if [ -x scripts/install-llama-cpp.sh ]; then
    SUPO_LLAMA_SERVER="$(scripts/install-llama-cpp.sh)" && export SUPO_LLAMA_SERVER ||
      echo "scripts/install-llama-cpp.sh failed: the llama.cpp comparisons will skip" >&2
  fi
else
  echo "python3 with pip not found: BFCL differential tests, the NVRTC compile test and the verl comparison will skip" >&2
fi

cargo test --workspace "$@"

# The Python suite (python/tests): the bindings, supo.verl inside verl 0.9.1, supo_agent against
# a real `supo serve` (the binary cargo just built). Required with SUPO_REQUIRE_VERL=1.
if [ -n "${supo_pythonpath:-}" ]; then
  cargo build -q -p supo-cli
  PYTHONPATH="$PWD/python/tests:$supo_pythonpath" python3 -m pytest -q -p no:cacheprovider python/tests
elif [ "${SUPO_REQUIRE_VERL:-}" = 1 ]; then
  echo "python/tests: the supo package or pytest could not be installed; SUPO_REQUIRE_VERL=1 forbids skipping" >&2
  exit 1
else
  echo "python/tests: skipped: the supo package or pytest could not be installed" >&2
fi
