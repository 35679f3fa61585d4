#!/usr/bin/env bash
# Installs BFCL's pinned Python package (its data and reference implementation) into DIR and
# prints the bfcl_eval package folder, for BFCL_EVAL_DIR. Idempotent.
#   scripts/install-bfcl.sh DIR
set -euo pipefail
if [ $# -ne 1 ]; then
  echo "usage: $0 DIR" >&2
  exit 2
fi
dir=$1
version=2026.3.23
if ! PYTHONPATH="$dir" python3 -c "import importlib.metadata as m, sys; sys.exit(m.version('bfcl-eval') != '$version')" 2>/dev/null \
   || [ ! -d "$dir/mpmath" ]; then
  python3 -m pip install --quiet --no-deps --target "$dir" "bfcl-eval==$version" mpmath >&2
fi
cd "$dir/bfcl_eval" && pwd
