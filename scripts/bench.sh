#!/usr/bin/env bash
# Times the fused policy loss (forward + backward) of `supo bench loss` and PyTorch's CPU
# equivalent (scripts/bench_torch.py) on the same shapes, in the same run, and prints a table.
#   scripts/bench.sh [TOKENS] [VOCAB] [BACKEND]      (defaults: 4096 32768 cpu)
# PyTorch is optional: without an importable `torch` only supo is timed.
set -euo pipefail
cd "$(dirname "$0")/.."
tokens=${1:-4096}
vocab=${2:-32768}
backend=${3:-cpu}
cargo build --release -q -p supo-cli
supo="${CARGO_TARGET_DIR:-target}/release/supo"
rows=()
for dtype in f32 bf16; do
  rows+=("$($supo bench loss --tokens "$tokens" --vocab "$vocab" --dtype "$dtype" --backend "$backend" 2>/dev/null)")
  if python3 -c 'import torch' 2>/dev/null; then
    rows+=("$(python3 scripts/bench_torch.py --tokens "$tokens" --vocab "$vocab" --dtype "$dtype" 2>/dev/null)")
  else
    echo "torch not importable: PyTorch rows skipped (pip install torch)" >&2
  fi
done
printf '%s\n' "${rows[@]}" | python3 -c '
import json, sys
rows = [json.loads(l) for l in sys.stdin if l.strip()]
print("| implementation | dtype | N x V | median s | peak RSS delta MiB |")
print("|---|---|---|---|---|")
for r in rows:
    print("| {} | {} | {} x {} | {:.3f} | {:.1f} |".format(
        r["backend"], r["dtype"], r["tokens"], r["vocab"], r["median_s"],
        r["peak_rss_delta_bytes"] / 2**20))
'
