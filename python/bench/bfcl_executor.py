"""Benchmark: replaying the ground-truth calls of BFCL's multi_turn_base entries, turn by turn,
with supo.bfcl (Rust) and with BFCL's own Python executor (`execute_multi_turn_func_call` of the
pinned bfcl-eval), in the same run, checking both give the same results.

    BFCL_EVAL_DIR=... PYTHONPATH=target/pydeps/supo:target/pydeps/bfcl python3 python/bench/bfcl_executor.py [N]
"""

import json
import os
import sys
import time
from pathlib import Path

from bfcl_eval.eval_checker.multi_turn_eval.multi_turn_utils import execute_multi_turn_func_call

from supo import bfcl

data = Path(os.environ["BFCL_EVAL_DIR"]) / "data"
n = int(sys.argv[1]) if len(sys.argv) > 1 else 200
qs = [json.loads(l) for l in (data / "BFCL_v4_multi_turn_base.json").read_text().splitlines()[:n]]
gt = {g["id"]: g["ground_truth"] for g in map(json.loads, (data / "possible_answer" / "BFCL_v4_multi_turn_base.json").read_text().splitlines())}


def run_bfcl(i):
    out = []
    for e in qs:
        for turn in gt[e["id"]]:
            res, _ = execute_multi_turn_func_call(turn, e["initial_config"], e["involved_classes"], f"bench{i}", e["id"])
            out.append(res)
    return out


def run_supo():
    out = []
    for e in qs:
        env = bfcl.Environment.from_entry(e)
        for turn in gt[e["id"]]:
            out.append(env.execute_all(turn))
    return out


def best(f, reps=3):
    times = []
    for i in range(reps):
        t = time.perf_counter()
        r = f(i) if f is run_bfcl else f()
        times.append(time.perf_counter() - t)
    return min(times), r


calls = sum(len(t) for e in qs for t in gt[e["id"]])
tb, rb = best(run_bfcl)
ts, rs = best(run_supo)
same = sum(a == b for x, y in zip(rb, rs) for a, b in zip(x, y))
print(f"{len(qs)} entries, {calls} calls: BFCL Python {tb*1e3:.1f} ms, supo.bfcl {ts*1e3:.1f} ms "
      f"({tb/ts:.1f}x); identical results {same}/{calls}")
