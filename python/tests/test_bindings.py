"""The Rust bindings: round trips, errors as exceptions, numpy dtypes, the GIL released, and
`supo.loss` giving the `supo loss` contract's golden numbers (and the CLI's own, bit for bit)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import threading

import numpy as np
import pytest

import supo
from conftest import GOLDENS, supo_binary


def close(want, got, path="", rel=1e-6, floor=1e-12):
    if isinstance(want, dict):
        assert set(want) == set(got), path
        for k in want:
            close(want[k], got[k], f"{path}.{k}", rel, floor)
    elif isinstance(want, list):
        assert len(want) == len(got), path
        for i, (a, b) in enumerate(zip(want, got)):
            close(a, b, f"{path}[{i}]", rel, floor)
    else:
        assert math.isfinite(got), path
        assert abs(want - got) <= max(floor, rel * abs(want)), f"{path}: {want} vs {got}"


def golden_pairs():
    pairs = sorted(GOLDENS.glob("batch-*.json"))
    assert len(pairs) >= 14
    return [(p, GOLDENS / p.name.replace("batch-", "expected-")) for p in pairs]


@pytest.mark.parametrize("batch,expected", golden_pairs(), ids=lambda p: p.stem)
def test_loss_matches_the_goldens(batch, expected):
    want = json.loads(expected.read_text())
    text = batch.read_text()
    close(want, supo.loss(text))
    # A dict in gives the same numbers as the JSON text.
    assert supo.loss(json.loads(text)) == supo.loss(text)


def test_loss_is_the_cli_bit_for_bit():
    exe = supo_binary("test_loss_is_the_cli_bit_for_bit")
    for batch, _ in golden_pairs():
        out = subprocess.run([str(exe), "loss", "--input", str(batch)], capture_output=True, check=True)
        assert json.loads(out.stdout) == supo.loss(batch.read_text()), batch.name


def test_loss_errors_are_exceptions():
    good = json.loads((GOLDENS / "batch-1001.json").read_text())
    bad_docs = {
        "not json": "{",
        "unknown mode": {**good, "config": {"agg": "token-median"}},
        "unknown finish": {"trajectories": [{**good["trajectories"][0], "finish": "Bored"}]},
        "ragged": {
            "trajectories": [
                {"group": 1, "reward": 1.0, "finish": "Answered",
                 "segments": [{"logp": [-1.0, -2.0], "old_logp": [-1.0], "mask": [1, 1]}]}
            ]
        },
        "bad mask": {
            "trajectories": [
                {"group": 1, "reward": 1.0, "finish": "Answered",
                 "segments": [{"logp": [-1.0], "old_logp": [-1.0], "mask": [2]}]}
            ]
        },
    }
    for what, doc in bad_docs.items():
        with pytest.raises(supo.SupoError):
            supo.loss(doc)
        with pytest.raises(ValueError):  # SupoError is a ValueError
            supo.loss(doc)
    nan = {"trajectories": [{"group": 1, "reward": float("nan"), "finish": "Answered", "segments": []}]}
    with pytest.raises(supo.SupoError, match="JSON"):
        supo.loss(nan)
    with pytest.raises(supo.SupoError):
        supo.loss(42)  # type: ignore[arg-type]
    with pytest.warns(UserWarning, match="colour"):
        supo.loss({**good, "config": {**(good.get("config") or {}), "colour": "red"}})


def test_empty_batch_has_zero_loss():
    out = supo.loss({"trajectories": []})
    assert out["loss"] == 0.0 and out["advantages"] == [] and out["grad_logp"] == []


def build_two_segments():
    """A trajectory cut by one summary: the rule's decisions, the context, the segments."""
    cfg = supo.ContextConfig(12, max_summaries=1)
    assert (cfg.working_context, cfg.threshold, cfg.max_summaries, cfg.max_steps) == (12, 11, 1, 100)
    b = supo.TrajectoryBuilder(cfg, [1, 2, 3], [4], [5])
    d = b.push_step([7, 7], [-0.5, -0.5], [9, 9, 9])
    assert d.kind == "Continue" and d.reason is None and repr(d) == "Continue"
    d = b.push_step([7, 7], [-0.5, -0.5], [9, 9, 9])
    assert d.kind == "Summarize" and b.awaiting_summary
    with pytest.raises(supo.SupoError, match="summary is expected"):
        b.push_step([7], [-0.1], [9])
    assert b.push_summary([8, 8], [-0.1, -0.2]).kind == "Continue"
    assert b.context() == [1, 2, 3, 5, 8, 8]
    assert b.summaries == 1 and b.steps == 2
    d = b.push_answer([6], [-0.3])
    assert d.kind == "Stop" and d.reason == "Answered" and repr(d) == "Stop(Answered)"
    assert b.finished == "Answered"
    return b.finish("task", 1.0)


def test_builder_round_trip_and_numpy_dtypes():
    t = build_two_segments()
    assert (t.group, t.reward, t.finish, t.overlong) == ("task", 1.0, "Answered", False)
    s1, s2 = t.segments
    assert s1.prompt.dtype == np.uint32 and s1.response.dtype == np.uint32
    assert s1.mask.dtype == np.uint8 and s1.logprobs.dtype == np.float32
    assert s1.prompt.tolist() == [1, 2, 3]
    # y_1: kept pair, the instruction, the summary (the discarded pair is gone).
    assert s1.response.tolist() == [7, 7, 9, 9, 9, 4, 8, 8]
    assert s1.mask.tolist() == [1, 1, 0, 0, 0, 0, 1, 1]
    assert s1.summary == [8, 8]
    assert s1.turns == [("assistant", 2), ("tool", 3), ("user", 1), ("assistant", 2)]
    assert np.allclose(s1.logprobs, [-0.5, -0.5, 0, 0, 0, 0, -0.1, -0.2])
    assert s2.prompt.tolist() == [1, 2, 3, 5, 8, 8] and s2.response.tolist() == [6]
    assert len(s1) == 8 and s2.summary is None


def test_builder_errors():
    with pytest.raises(supo.SupoError, match="threshold"):
        supo.ContextConfig(0)
    with pytest.raises(OverflowError):
        supo.ContextConfig(-1)
    b = supo.TrajectoryBuilder(supo.ContextConfig(100), [1], [2], [3])
    with pytest.raises(supo.SupoError, match="log-probs|logprobs"):
        b.push_answer([5, 6], [-0.1])
        b.finish("g", 0.0)
    b2 = supo.TrajectoryBuilder(supo.ContextConfig(100), [1], [2], [3])
    with pytest.raises(supo.SupoError, match="not finished"):
        b2.finish("g", 0.0)
    b3 = supo.TrajectoryBuilder(supo.ContextConfig(100), [1], [2], [3])
    b3.push_answer([5], [-0.1])
    b3.finish("g", 0.0)
    with pytest.raises(supo.SupoError, match="already finished"):
        b3.context()
    with pytest.raises(supo.SupoError, match="finish reason"):
        supo.Trajectory("g", 1.0, "Bored", [])
    with pytest.raises(supo.SupoError):
        supo.Segment([1], [2, 3], [1], [0.0, 0.0])
    with pytest.raises(supo.SupoError, match="non-finite|finite"):
        supo.Trajectory("g", float("nan"), "Answered", [])


def test_segment_from_arrays_round_trips():
    t = build_two_segments()
    s = t.segments[0]
    again = supo.Segment(s.prompt.tolist(), s.response.tolist(), s.mask.tolist(), s.logprobs.tolist(), (6, 8))
    assert again.summary == [8, 8]
    assert again.response.tolist() == s.response.tolist() and again.mask.tolist() == s.mask.tolist()
    with pytest.raises(supo.SupoError, match="summary"):
        supo.Segment(s.prompt.tolist(), s.response.tolist(), s.mask.tolist(), s.logprobs.tolist(), (5, 8))


def test_estimate_broadcasts_trajectory_advantages():
    good = build_two_segments()
    seg = supo.Segment([1], [5, 6, 9], [1, 1, 0], [-0.2, -0.3, 0.0])
    bad = supo.Trajectory("task", 0.0, "Answered", [seg])
    overlong = supo.Trajectory("task", 0.0, "MaxSteps", [seg])
    out = supo.estimate([good, bad, overlong], micro_batch=4)
    adv = supo.group_advantages([1.0, 0.0, 0.0], ["task"] * 3)
    assert adv.dtype == np.float64
    assert np.allclose(out["advantages"], adv.astype(np.float32))
    assert out["advantages"].dtype == np.float32 and out["weights"].dtype == np.float32
    assert out["mask"].dtype == np.uint8 and out["targets"].dtype == np.uint32
    assert out["row_trajectory"].tolist() == [0, 0, 1, 2]  # 4 rows, no padding needed
    assert out["row_length"].tolist() == [8, 1, 3, 3]
    n = int(out["row_length"].sum())
    for k in ("targets", "old_logprobs", "token_advantages", "mask", "weights"):
        assert out[k].shape == (n,)
    # Every token of trajectory 0's two segments carries A(τ_0); the overlong one trains nothing.
    assert np.all(out["token_advantages"][:9] == out["advantages"][0])
    assert out["mask"][-3:].tolist() == [0, 0, 0] and np.all(out["weights"][-3:] == 0)
    # token-mean: weight 1/(trained tokens) on every trained token.
    trained = out["mask"].sum()
    assert np.allclose(out["weights"][out["mask"] == 1], 1.0 / trained)
    padded = supo.estimate([good, bad], micro_batch=4)
    assert padded["row_trajectory"].tolist() == [0, 0, 1, -1]
    # Overlong left out of the group statistics: advantage 0, the others as a group of two.
    out2 = supo.estimate([good, bad, overlong], {"masked_in_group_stats": False})
    assert out2["advantages"][2] == 0.0
    assert np.allclose(out2["advantages"][:2], supo.group_advantages([1.0, 0.0], ["t", "t"]))
    with pytest.raises(supo.SupoError, match="agg"):
        supo.estimate([good], {"agg": "nope"})
    with pytest.raises(supo.SupoError):
        supo.group_advantages([[1.0]], ["a"])
    with pytest.raises(supo.SupoError, match="finite"):
        supo.group_advantages([float("inf")], ["a"])


def test_long_calls_release_the_gil():
    """With thread switching by time turned off, another thread can run Python code while a
    thread is inside `supo.loss` only if the call released the GIL."""
    rng = np.random.default_rng(0)
    segs = [
        {"logp": rng.normal(-1, 0.1, 2000).tolist(), "old_logp": rng.normal(-1, 0.1, 2000).tolist(),
         "mask": [1] * 2000}
        for _ in range(4)
    ]
    doc = json.dumps({"trajectories": [
        {"group": i % 8, "reward": float(i % 3), "finish": "Answered", "segments": segs} for i in range(32)
    ]})
    started = threading.Event()
    state = {"finished": False}

    def work():
        started.set()
        supo.loss(doc)
        state["finished"] = True

    old = sys.getswitchinterval()
    sys.setswitchinterval(1000.0)  # no preemption: the GIL changes hands only when released
    try:
        t = threading.Thread(target=work)
        t.start()
        started.wait()
        # We run again only once the worker let go of the GIL, i.e. inside supo.loss.
        seen_running = not state["finished"]
    finally:
        sys.setswitchinterval(old)
    t.join()
    assert state["finished"]
    assert seen_running, "the main thread only ran after supo.loss returned: the GIL was held"


def test_version_and_typing_files():
    assert supo.__version__ == "0.1.0" and supo.bfcl.Environment is not None
    pkg = __import__("pathlib").Path(supo.__file__).parent
    assert (pkg / "py.typed").is_file() and (pkg / "_native.pyi").is_file()
