"""supo.verl inside verl 0.9.1: the registrations (seen from a fresh interpreter), the `supo`
estimator and verl's V1 multi-output advantage path against `supo.loss`, and `supo_agent`
instantiated from verl's own agent-loop registry, rolling out BFCL entries against a real
`supo serve` through `CompletionsClient`, with a working context small enough to force
summaries. Needs verl (SUPO_REQUIRE_VERL), BFCL's data (SUPO_REQUIRE_BFCL) and the built
`supo` binary."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import supo
from conftest import GOLDENS, ROOT, import_verl


def verl_reference():
    """scripts/verl_reference.py: the `supo loss` contract computed with verl's own
    `compute_grpo_outcome_advantage`, `ppo_loss` and `agg_loss`."""
    spec = importlib.util.spec_from_file_location("verl_reference", ROOT / "scripts" / "verl_reference.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_a_fresh_script_finds_the_registrations_and_the_contract_numbers():
    import_verl("test_a_fresh_script_finds_the_registrations_and_the_contract_numbers")
    script = f"""
import json, supo.verl, supo
from verl.experimental.agent_loop.agent_loop import _agent_loop_registry
from verl.trainer.ppo.core_algos import ADV_ESTIMATOR_REGISTRY, POLICY_LOSS_REGISTRY, get_adv_estimator_fn
assert _agent_loop_registry["supo_agent"] == {{"_target_": "supo.verl.agent_loop.SupoAgentLoop"}}
assert get_adv_estimator_fn("supo") is supo.verl.compute_supo_advantage
assert "supo_trajectory_balanced" in POLICY_LOSS_REGISTRY
print(json.dumps(supo.loss(open({str(GOLDENS / "batch-1003.json")!r}).read())))
"""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(os.path.abspath(p) for p in sys.path if p)}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd="/", env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    want = json.loads((GOLDENS / "expected-1003.json").read_text())
    got = json.loads(out.stdout.strip().splitlines()[-1])
    for k in ("loss", "pg_loss", "clipfrac", "approx_kl"):
        assert abs(got[k] - want[k]) <= 1e-6 * max(1e-6, abs(want[k])), k


def test_import_supo_does_not_import_verl():
    path = [p for p in sys.path if "verl" not in p]
    out = subprocess.run(
        [sys.executable, "-c", "import sys, supo, supo.bfcl; assert 'verl' not in sys.modules; assert 'torch' not in sys.modules"],
        env={**os.environ, "PYTHONPATH": os.pathsep.join(os.path.abspath(p) for p in path if p)},
        capture_output=True, text=True, cwd="/",
    )
    assert out.returncode == 0, out.stderr


def rows_of(doc):
    """One row per segment, as verl's V1 trainer holds them: keys `{uid}_{session}_{index}`."""
    keys, rows = [], []
    sessions: dict[str, int] = {}
    for t in doc["trajectories"]:
        uid = str(t["group"]).replace("_", "-")
        s = sessions.setdefault(uid, 0)
        sessions[uid] += 1
        for i, seg in enumerate(t["segments"]):
            keys.append(f"{uid}_{s}_{i}")
            rows.append((t, seg))
    return keys, rows


def verl_multi_trajectory_advantages(doc):
    """verl's `compute_advantage_for_multi_trajectories` (GRPO from each session's final output,
    broadcast) on the rows of `doc`, and supo's estimator on the same rows."""
    import torch
    from verl import DataProto
    from verl.trainer.ppo.core_algos import AdvantageEstimator
    from verl.trainer.ppo.v1.utils import compute_advantage_for_multi_trajectories

    keys, rows = rows_of(doc)
    cfg = {**verl_reference().DEFAULTS, **(doc.get("config") or {})}
    width = max(len(s["logp"]) for _, s in rows)
    mask = torch.zeros(len(rows), width, dtype=torch.float64)
    rewards = torch.zeros(len(rows), width, dtype=torch.float64)
    for r, (t, s) in enumerate(rows):
        n = len(s["logp"])
        if t["finish"] not in cfg["masked_finish"]:
            mask[r, :n] = torch.tensor([float(m) for m in s["mask"]])
        rewards[r, n - 1] = float(t["reward"])
    uid = np.array([k.rsplit("_", 2)[0] for k in keys], dtype=object)
    data = DataProto.from_dict(
        tensors={"response_mask": mask, "token_level_rewards": rewards}, non_tensors={"uid": uid}
    )
    data = compute_advantage_for_multi_trajectories(
        data, batch_keys=keys, adv_estimator=AdvantageEstimator.GRPO,
        norm_adv_by_std_in_grpo=bool(cfg["norm_adv_by_std"]),
    )
    from supo.verl import compute_supo_advantage, trajectory_ids_from_keys

    ours, _ = compute_supo_advantage(
        rewards, mask, uid, epsilon=float(cfg["eps"]), norm_adv_by_std_in_grpo=bool(cfg["norm_adv_by_std"]),
        trajectory_index=trajectory_ids_from_keys(keys),
        masked_in_group_stats=bool(cfg["masked_in_group_stats"]),
    )
    return keys, rows, mask, data.batch["advantages"], ours


@pytest.mark.parametrize("name", sorted(p.name for p in GOLDENS.glob("batch-*.json")))
def test_verl_v1_advantages_equal_supo(name):
    """verl's V1 path and the `supo` estimator give every row its trajectory's `supo.loss`
    advantage (verl's GRPO has no switch for leaving masked trajectories out of the group
    statistics: for `masked_in_group_stats: false` only the `supo` estimator is compared)."""
    import_verl("test_verl_v1_advantages_equal_supo")
    import torch

    torch.set_default_dtype(torch.float64)
    try:
        doc = json.loads((GOLDENS / name).read_text())
        keys, rows, mask, verl_adv, ours = verl_multi_trajectory_advantages(doc)
        with_verl = (doc.get("config") or {}).get("masked_in_group_stats", True)
        want = supo.loss(doc)["advantages"]
        traj = {id(t): i for i, t in enumerate(doc["trajectories"])}
        for r, (t, s) in enumerate(rows):
            a = want[traj[id(t)]]
            n = len(s["logp"])
            expect = torch.tensor([a * float(m) for m in mask[r, :n]], dtype=torch.float64)
            if with_verl:
                assert torch.allclose(verl_adv[r, :n].double(), expect, rtol=1e-6, atol=1e-9), (name, r)
            assert torch.allclose(ours[r, :n].double(), expect, rtol=1e-6, atol=1e-9), (name, r)
    finally:
        torch.set_default_dtype(torch.float32)


def test_supo_estimator_is_trajectory_level_not_segment_level():
    import_verl("test_supo_estimator_is_trajectory_level_not_segment_level")
    import torch
    from verl.trainer.ppo.core_algos import compute_grpo_outcome_advantage
    from supo.verl import compute_supo_advantage

    # Group of 2 trajectories: A cut into 3 segments (reward 1), B one segment (reward 0).
    rewards = torch.tensor([[1.0], [1.0], [1.0], [0.0]], dtype=torch.float64)
    mask = torch.ones_like(rewards)
    uid = np.array(["g"] * 4, dtype=object)
    ours, _ = compute_supo_advantage(rewards, mask, uid, trajectory_index=["A", "A", "A", "B"])
    one_row_each, _ = compute_grpo_outcome_advantage(
        torch.tensor([[1.0], [0.0]], dtype=torch.float64), torch.ones(2, 1, dtype=torch.float64),
        np.array(["g", "g"], dtype=object),
    )
    assert torch.allclose(ours[:, 0], one_row_each[[0, 0, 0, 1], 0])
    per_segment, _ = compute_grpo_outcome_advantage(rewards, mask, uid)  # Eq. 4, the ablation
    assert not torch.allclose(ours, per_segment)
    with pytest.raises(supo.SupoError, match="different rewards"):
        compute_supo_advantage(torch.tensor([[1.0], [0.0]]), torch.ones(2, 1), uid[:2], trajectory_index=["A", "A"])


@pytest.mark.parametrize("mode", ["traj-mean-token-mean", "traj-mean-token-sum"])
def test_trajectory_balanced_policy_loss_equals_supo_loss(mode):
    import_verl("test_trajectory_balanced_policy_loss_equals_supo_loss")
    import torch
    from verl.trainer.ppo.core_algos import get_policy_loss_fn

    ref = verl_reference()
    doc = json.loads((GOLDENS / "batch-1002.json").read_text())
    doc["config"] = {**(doc.get("config") or {}), "agg": mode, "kl_coef": 0.0}
    want = supo.loss(doc)
    keys, rows = rows_of(doc)
    cfg = ref.config_of(doc)
    adv_of = {id(t): a for t, a in zip(doc["trajectories"], want["advantages"])}
    width = max(len(s["logp"]) for _, s in rows)
    shape = (len(rows), width)
    old = torch.zeros(shape, dtype=torch.float64)
    logp = torch.zeros(shape, dtype=torch.float64)
    mask = torch.zeros(shape, dtype=torch.float64)
    adv = torch.zeros(shape, dtype=torch.float64)
    for r, (t, s) in enumerate(rows):
        n = len(s["logp"])
        logp[r, :n] = torch.tensor(s["logp"])
        old[r, :n] = torch.tensor(s["old_logp"])
        if t["finish"] not in cfg["masked_finish"]:
            mask[r, :n] = torch.tensor([float(m) for m in s["mask"]])
        adv[r, :n] = adv_of[id(t)]
    logp.requires_grad_(True)
    fn = get_policy_loss_fn("supo_trajectory_balanced")
    from supo.verl import trajectory_ids_from_keys

    loss, metrics = fn(old, logp, adv, mask.bool(), mode, ref.actor_config(cfg, "token-mean"),
                       trajectory_index=trajectory_ids_from_keys(keys))
    assert abs(float(loss) - want["loss"]) <= 1e-6 * max(1e-9, abs(want["loss"]))
    loss.backward()
    flat = [g for r, (t, s) in enumerate(rows) for g in logp.grad[r, : len(s["logp"])].tolist()]
    want_flat = [g for traj in want["grad_logp"] for seg in traj for g in seg]
    assert np.allclose(flat, want_flat, rtol=1e-6, atol=1e-12)
    assert abs(float(metrics["actor/pg_clipfrac"]) - want["clipfrac"]) <= 1e-6
