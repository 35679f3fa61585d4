"""supo.bfcl: the Rust BFCL environments and checker on real BFCL entries (from the installed
`bfcl-eval`, SUPO_REQUIRE_BFCL): ground-truth calls replayed turn by turn, states, verdicts."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

import supo
from supo import bfcl
from conftest import need


def bfcl_data(what: str) -> Path:
    d = os.environ.get("BFCL_EVAL_DIR", "")
    ok = bool(d) and (Path(d) / "data" / "BFCL_v4_multi_turn_base.json").is_file()
    need(what, "SUPO_REQUIRE_BFCL", ok, "BFCL data not found (set BFCL_EVAL_DIR; scripts/install-bfcl.sh DIR)")
    return Path(d) / "data"


def entries(data: Path, n: int, category: str = "multi_turn_base"):
    qs = [json.loads(l) for l in (data / f"BFCL_v4_{category}.json").read_text().splitlines()[:n]]
    gts = {
        g["id"]: g["ground_truth"]
        for g in map(json.loads, (data / "possible_answer" / f"BFCL_v4_{category}.json").read_text().splitlines())
    }
    return [(q, gts[q["id"]]) for q in qs]


def test_ground_truth_replays_and_checks_valid():
    data = bfcl_data("test_ground_truth_replays_and_checks_valid")
    for entry, gt in entries(data, 5):
        env = bfcl.Environment.from_entry(entry)
        results = [env.execute_all(turn) for turn in gt]
        assert all(isinstance(r, str) for turn in results for r in turn)
        states = env.states()
        assert states and set(states) <= set(entry["involved_classes"])
        # replay gives the same results and final states as the step-by-step environment.
        out = bfcl.replay({**entry, "long_context": False, "turns": gt})
        assert out["id"] == entry["id"] and out["results"] == results
        assert out["states"][-1] == states
        # The ground truth itself, one step per turn, is valid; dropping the last turn's calls
        # is not (or the turn is empty).
        assert bfcl.check(entry, gt, [[t] for t in gt])["valid"], entry["id"]
        bad = [[t] for t in gt[:-1]] + [[["cd(folder='nowhere')"]]]
        v = bfcl.check(entry, gt, bad)
        assert not v["valid"] and v["error_type"].startswith("multi_turn:") and v["turn"] == len(gt) - 1
        assert bfcl.check(entry, gt, [[t] for t in gt[:-1]])["error_type"] == "multi_turn:force_terminated"


def test_errors_and_tool_docs():
    data = bfcl_data("test_errors_and_tool_docs")
    assert "GorillaFileSystem" in bfcl.classes() and "ls" in bfcl.classes()["GorillaFileSystem"]
    with pytest.raises(supo.SupoError, match="not implemented"):
        bfcl.Environment(["NoSuchAPI"])
    env = bfcl.Environment(["MathAPI"])
    assert json.loads(env.execute("add(a=2, b=3)")) == {"result": 5}
    assert env.execute("add(a=2,").startswith(bfcl.ERROR_PREFIX)
    with pytest.raises(supo.SupoError, match="JSON"):
        bfcl.Environment(["MathAPI"], {"x": float("nan")})
    entry, _ = entries(data, 1)[0]
    docs, added = bfcl.tool_docs(entry["involved_classes"], {"0": ["ls"]})
    names = {d["name"] for d in docs}
    assert "ls" not in names and [d["name"] for d in added[0]] == ["ls"] and "cd" in names
