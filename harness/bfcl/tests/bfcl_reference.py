#!/usr/bin/env python3
"""BFCL's own Python reference replaying `supo bfcl replay` inputs.

Usage: bfcl_reference.py INPUT.jsonl OUTPUT.jsonl
       bfcl_reference.py check INPUT.jsonl OUTPUT.jsonl
       bfcl_reference.py time INPUT.jsonl RUNS [cpu|wall]

Replay: each input line is {id, involved_classes, initial_config, long_context, turns}; each
output line is {id, results, states} exactly as `supo bfcl replay` writes it, produced by the
installed bfcl-eval package's executor (`execute_multi_turn_func_call`) and classes.

Check: each input line is {id, involved_classes, initial_config, ground_truth, model} (`model`:
per turn, the decoded steps, each a list of call strings); each output line is
{id, valid, error_type}, the verdict of BFCL's `multi_turn_checker` with the evaluation
runner's force-termination rule and empty-step decoding. The package must be
importable (`pip install --no-deps bfcl-eval==2026.3.23 mpmath`, or PYTHONPATH pointing at the
folder holding `bfcl_eval`). Prints the seconds spent executing calls on standard error.

Time (`supo bench bfcl`): executes every entry's calls RUNS times, each run from fresh instances,
and prints one JSON line {calls, runs_s}: per run, the seconds spent in the executor
(`execute_multi_turn_func_call`, instances created and scenarios loaded included; reading the
input and showing states are not timed), on the thread's CPU clock (`cpu`, the default: other
processes on a loaded machine do not count) or the wall clock (`wall`).
"""

import json
import sys
import time

from bfcl_eval.eval_checker.multi_turn_eval import multi_turn_checker, multi_turn_utils
from bfcl_eval.eval_checker.multi_turn_eval.func_source_code import posting_api


def to_state(value):
    """An instance's public attributes as JSON values (a directory's parent link left out)."""
    if isinstance(value, dict):
        return {json_key(k): to_state(v) for k, v in value.items()}
    if isinstance(value, (set, frozenset)):
        # Sets are shown with their elements sorted (hash order varies between processes).
        try:
            return [to_state(v) for v in sorted(value)]
        except TypeError:
            return sorted((to_state(v) for v in value), key=json.dumps)
    if isinstance(value, (list, tuple)):
        return [to_state(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if hasattr(value, "__dict__"):
        return {
            k: to_state(v)
            for k, v in vars(value).items()
            if not k.startswith("_") and not (k == "parent" and v is not None)
        }
    return str(value)


def json_key(k):
    if isinstance(k, str):
        return k
    return json.dumps(k) if isinstance(k, (bool, type(None))) else str(k)


def check(src, dst):
    with open(src) as fin, open(dst, "w") as fout:
        for index, line in enumerate(fin):
            if not line.strip():
                continue
            entry = json.loads(line)
            posting_api.TwitterAPI.post_tweet.__defaults__ = ([], [])
            truth, model = entry["ground_truth"], entry["model"]
            if len(model) != len(truth):
                verdict = {"valid": False, "error_type": "multi_turn:force_terminated"}
            else:
                decoded = [
                    [step for step in turn if not multi_turn_utils.is_empty_execute_response(step)]
                    for turn in model
                ]
                verdict = multi_turn_checker.multi_turn_checker(
                    decoded, truth, entry, entry["id"].rsplit("_", 1)[0], f"supo_check_{index}"
                )
            out = {"id": entry["id"], "valid": verdict["valid"], "error_type": verdict.get("error_type")}
            fout.write(json.dumps(out) + "\n")


def time_runs(src, runs, clock):
    now = time.thread_time if clock == "cpu" else time.perf_counter
    with open(src) as fin:
        entries = [json.loads(line) for line in fin if line.strip()]
    calls = sum(len(turn) for entry in entries for turn in entry["turns"])
    runs_s = []
    for run in range(runs):
        spent = 0.0
        for index, entry in enumerate(entries):
            posting_api.TwitterAPI.post_tweet.__defaults__ = ([], [])
            for turn in entry["turns"]:
                start = now()
                # A new entry id per run: the executor keeps instances by id, so each run
                # starts from fresh ones.
                multi_turn_utils.execute_multi_turn_func_call(
                    turn,
                    entry.get("initial_config", {}),
                    entry["involved_classes"],
                    "supo_bench",
                    f"run_{run}_entry_{index}",
                    long_context=entry.get("long_context", False),
                )
                spent += now() - start
        runs_s.append(spent)
    print(json.dumps({"calls": calls, "runs_s": runs_s}))


def main():
    if sys.argv[1] == "time":
        time_runs(sys.argv[2], int(sys.argv[3]), sys.argv[4] if len(sys.argv) > 4 else "cpu")
        return
    if sys.argv[1] == "check":
        check(sys.argv[2], sys.argv[3])
        return
    src, dst = sys.argv[1], sys.argv[2]
    spent = 0.0
    with open(src) as fin, open(dst, "w") as fout:
        for index, line in enumerate(fin):
            if not line.strip():
                continue
            entry = json.loads(line)
            # The reference's mutable default arguments would carry state from one entry to
            # the next; every entry starts from fresh defaults, as a fresh process would.
            posting_api.TwitterAPI.post_tweet.__defaults__ = ([], [])
            results, states = [], []
            try:
                for turn in entry["turns"]:
                    start = time.perf_counter()
                    out, instances = multi_turn_utils.execute_multi_turn_func_call(
                        turn,
                        entry.get("initial_config", {}),
                        entry["involved_classes"],
                        "supo_reference",
                        f"entry_{index}",
                        long_context=entry.get("long_context", False),
                    )
                    spent += time.perf_counter() - start
                    results.append(out)
                    states.append({c: to_state(i) for c, i in instances.items()})
                line = {"id": entry["id"], "results": results, "states": states}
            except (Exception, RecursionError) as e:
                # Outside the executor's own error handling (a scenario that does not load,
                # a state that cannot be shown): the entry is reported as failed.
                line = {"id": entry["id"], "error": f"{type(e).__name__}: {e}"}
            fout.write(json.dumps(line))
            fout.write("\n")
    print(f"python executed calls in {spent:.3f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
