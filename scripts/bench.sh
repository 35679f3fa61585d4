#!/usr/bin/env bash
# Times supo's fused losses and PyTorch's CPU equivalents on the same shapes, in the same run,
# and prints one table.
#   scripts/bench.sh [TOKENS] [VOCAB] [BACKEND]                  the loss over logits (`supo bench
#       loss`, scripts/bench_torch.py); defaults 4096 32768 cpu
#   scripts/bench.sh linear [TOKENS] [HIDDEN] [VOCAB] [BACKEND]  the fused linear loss (`supo bench
#       linear`, scripts/bench_torch_linear.py: torch unfused, linear_cross_entropy plain and
#       chunked, verl's FusedLinearForPPO); defaults 4096 1024 32768 cpu
# BENCH_ROUNDS (default 1) repeats every measurement, each round running supo and the PyTorch
# paths back to back; the table shows each one's median over rounds. BENCH_THREADS (default 2)
# threads for both sides; BENCH_DTYPES (default "f32 bf16"). PyTorch is optional: without an
# importable `torch` only supo is timed (verl's path also needs `verl` importable).
set -euo pipefail
cd "$(dirname "$0")/.."
mode=loss
if [ "${1:-}" = linear ]; then
  mode=linear
  shift
fi
tokens=${1:-4096}
if [ $mode = linear ]; then
  hidden=${2:-1024}
  vocab=${3:-32768}
  backend=${4:-cpu}
else
  vocab=${2:-32768}
  backend=${3:-cpu}
fi
rounds=${BENCH_ROUNDS:-1}
threads=${BENCH_THREADS:-2}
dtypes=${BENCH_DTYPES:-f32 bf16}
export RAYON_NUM_THREADS=$threads
cargo build --release -q -p supo-cli
supo="${CARGO_TARGET_DIR:-target}/release/supo"
has_torch=0
if python3 -c 'import torch' 2>/dev/null; then
  has_torch=1
else
  echo "torch not importable: PyTorch rows skipped (pip install torch)" >&2
fi
torch_paths=(unfused lce lce-chunked)
if python3 -c 'import verl' 2>/dev/null; then
  torch_paths+=(verl)
elif [ $mode = linear ]; then
  echo "verl not importable: its FusedLinearForPPO row skipped" >&2
fi
load_before=$(uptime)
rows=()
for round in $(seq "$rounds"); do
  for dtype in $dtypes; do
    if [ $mode = linear ]; then
      rows+=("$($supo bench linear --tokens "$tokens" --hidden "$hidden" --vocab "$vocab" --dtype "$dtype" --backend "$backend" 2>/dev/null)")
      if [ $has_torch = 1 ]; then
        for path in "${torch_paths[@]}"; do
          rows+=("$(python3 scripts/bench_torch_linear.py --path "$path" --tokens "$tokens" --hidden "$hidden" --vocab "$vocab" --dtype "$dtype" --threads "$threads" 2>/dev/null)")
        done
      fi
    else
      rows+=("$($supo bench loss --tokens "$tokens" --vocab "$vocab" --dtype "$dtype" --backend "$backend" 2>/dev/null)")
      if [ $has_torch = 1 ]; then
        rows+=("$(python3 scripts/bench_torch.py --tokens "$tokens" --vocab "$vocab" --dtype "$dtype" --threads "$threads" 2>/dev/null)")
      fi
    fi
  done
done
echo "load before: $load_before" >&2
echo "load after:  $(uptime)" >&2
printf '%s\n' "${rows[@]}" | python3 -c '
import json, statistics, sys
rows = [json.loads(l) for l in sys.stdin if l.strip()]
groups = {}
for r in rows:
    groups.setdefault((r["dtype"], r["backend"]), []).append(r)
shape = " x ".join(str(rows[0][k]) for k in ("tokens", "hidden", "vocab") if k in rows[0])
print("Shape " + shape + ", medians over {} round(s)".format(len(next(iter(groups.values())))))
print("| implementation | dtype | median s | peak RSS delta MiB | time vs supo | memory vs supo |")
print("|---|---|---|---|---|---|")
for dtype in dict.fromkeys(d for d, _ in groups):
    mine = [(b, rs) for (d, b), rs in groups.items() if d == dtype]
    med = {b: (statistics.median(r["median_s"] for r in rs),
               statistics.median(r["peak_rss_delta_bytes"] for r in rs)) for b, rs in mine}
    supo = next((v for b, v in med.items() if not b.startswith("pytorch")), None)
    for b, (t, m) in med.items():
        ratio_t = "{:.2f}x".format(t / supo[0]) if supo else "-"
        ratio_m = "{:.2f}x".format(m / supo[1]) if supo and supo[1] else "-"
        print("| {} | {} | {:.3f} | {:.1f} | {} | {} |".format(b, dtype, t, m / 2**20, ratio_t, ratio_m))
'
