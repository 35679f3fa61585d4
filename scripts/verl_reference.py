#!/usr/bin/env python3
"""The `supo loss` contract (DESIGN.md) computed with verl 0.9.1's own functions, in float64.

    scripts/verl_reference.py BATCH.json          # one input document -> one output document
    scripts/verl_reference.py --lines < IN.jsonl  # one input per line -> one output per line

The input and output are `supo loss`'s (see DESIGN.md, "Command-line contracts"). Needs verl 0.9.1
and torch on PYTHONPATH (scripts/install-verl.sh DIR prints the folder). What comes from verl:

* advantages: `core_algos.compute_grpo_outcome_advantage` (Bessel std, `(R - mean)/(std + eps)`,
  a group of one has mean 0 and std 1, Dr. GRPO without the std);
* the loss: `workers/utils/losses.ppo_loss`, the actor loss verl trains with, on one row per
  segment padded to the longest segment: `compute_policy_loss_vanilla` (clip-higher, dual clip,
  the log-ratio clamp), `kl_penalty` (k1, k2, low_var_kl), `agg_loss` (verl's four modes,
  `loss_scale_factor` = `norm_length`, the horizon = the padded response length otherwise), and
  `pg_loss + kl_loss_coef * kl_loss`;
* statistics: `pg_clipfrac`, `pg_clipfrac_lower`, `ppo_kl` from the same call;
* `grad_logp`: torch autograd of that loss with respect to each token's log-prob.

Where the contract differs from verl on purpose (a test comparing the two must know):

1. Group statistics are over trajectories (SUPO's Eq. 3), not over rows: verl's estimator is
   called with one row per trajectory, as verl's V1 trainer does for multi-output sessions
   (`compute_advantage_for_multi_trajectories`), and each trajectory's advantage is broadcast to
   all its segments' rows. Handing verl one row per segment would repeat a trajectory's reward
   once per segment (the paper's Eq. 4 ablation) and give different advantages.
2. `masked_in_group_stats: false` has no verl switch: the masked (overlong) trajectories are left
   out of that call and get advantage 0. Their tokens have weight 0 either way (response_mask 0,
   as verl's overlong filtering does).
3. `dual_clip: null` has no verl switch either (`compute_policy_loss_vanilla` always applies
   `clip_ratio_c`): it is verl with `clip_ratio_c` = 1e300, a bound no token's loss reaches, so
   the dual clip never binds and `pg_clipfrac_lower` is 0.
4. A batch without a trained token: verl divides 0 by 0 (NaN); the contract's answer is loss 0,
   statistics 0, zero gradients, and this script gives that without calling the loss.
5. `kl_loss` is 0 when `kl_coef` is 0 (verl computes no KL then: `use_kl_loss` false).
6. verl's `masked_mean` divides by `count + 1e-8` and `seq-mean-token-mean` by `n_s + 1e-8`: the
   statistics and that mode deviate from the exact means by at most 1e-8 relative.
7. `traj-mean-token-mean` and `traj-mean-token-sum` are not verl's (verl weighs rows alike):
   here they are an independent implementation straight from the formulas,
   `(1/|T|) sum_tau sum_{t in tau} w_t l_t / sum_{t in tau} w_t` and
   `(1/|T|) sum_tau sum_{t in tau} w_t l_t` (T: the trajectories with a trained token), as
   per-token coefficients written from them and handed to verl's `token-sum` aggregation over
   verl's own per-token surrogate and KL terms.
"""

import json
import math
import sys

import numpy as np
import torch

from verl.trainer.ppo.core_algos import (
    agg_loss,
    compute_grpo_outcome_advantage,
    compute_policy_loss_vanilla,
    kl_penalty,
)
from verl.utils import tensordict_utils as tu
from verl.workers.config import ActorConfig
from verl.workers.utils import losses

DTYPE = torch.float64
VERL_MODES = ("token-mean", "seq-mean-token-sum", "seq-mean-token-mean", "seq-mean-token-sum-norm")
TRAJ_MODES = ("traj-mean-token-mean", "traj-mean-token-sum")
# `dual_clip: null` as verl: a dual-clip bound that no loss reaches (see the module docstring).
NO_DUAL_CLIP = 1e300

DEFAULTS = {
    "clip_low": 0.2,
    "clip_high": 0.28,
    "dual_clip": 3.0,
    "agg": "token-mean",
    "norm_adv_by_std": True,
    "eps": 1e-6,
    "masked_finish": ["MaxSteps", "MaxSummaries", "ContextOverflow"],
    "masked_in_group_stats": True,
    "kl_coef": 0.0,
    "kl_type": "low_var_kl",
    "norm_length": None,
}
KL_TYPES = {"k1": "k1", "kl": "k1", "k2": "k2", "mse": "k2", "low_var_kl": "low_var_kl", "k3": "low_var_kl"}


def config_of(doc):
    cfg = dict(DEFAULTS)
    cfg.update(doc.get("config") or {})
    if cfg["agg"] not in VERL_MODES + TRAJ_MODES:
        raise ValueError(f"unknown agg mode {cfg['agg']!r}")
    cfg["kl_type"] = KL_TYPES[cfg["kl_type"]]
    return cfg


def group_key(g):
    # `supo loss` accepts numbers as group ids and compares them by their JSON text.
    return g if isinstance(g, str) else json.dumps(g)


def advantages_of(trajs, cfg):
    """verl's GRPO estimator over trajectories (differences 1 and 2)."""
    masked = [t["finish"] in cfg["masked_finish"] for t in trajs]
    counted = [i for i, m in enumerate(masked) if cfg["masked_in_group_stats"] or not m]
    adv = [0.0] * len(trajs)
    if counted:
        rewards = torch.tensor([[float(trajs[i]["reward"])] for i in counted], dtype=DTYPE)
        index = np.array([group_key(trajs[i]["group"]) for i in counted], dtype=object)
        scores, _ = compute_grpo_outcome_advantage(
            token_level_rewards=rewards,
            response_mask=torch.ones_like(rewards),
            index=index,
            epsilon=float(cfg["eps"]),
            norm_adv_by_std_in_grpo=bool(cfg["norm_adv_by_std"]),
        )
        for k, i in enumerate(counted):
            adv[i] = float(scores[k, 0])
    return adv, masked


def actor_config(cfg, agg):
    return ActorConfig(
        strategy="fsdp",
        rollout_n=1,
        ppo_mini_batch_size=1,
        ppo_micro_batch_size_per_gpu=1,
        clip_ratio=cfg["clip_low"],
        clip_ratio_low=cfg["clip_low"],
        clip_ratio_high=cfg["clip_high"],
        clip_ratio_c=NO_DUAL_CLIP if cfg["dual_clip"] is None else float(cfg["dual_clip"]),
        loss_agg_mode=agg,
        loss_scale_factor=cfg["norm_length"],
        use_kl_loss=cfg["kl_coef"] != 0,
        kl_loss_coef=float(cfg["kl_coef"]),
        kl_loss_type=cfg["kl_type"],
    )


def reference(doc):
    cfg = config_of(doc)
    trajs = doc["trajectories"]
    adv, masked = advantages_of(trajs, cfg)

    # One row per segment, padded to the longest segment (verl's response length).
    rows = [(i, s) for i, t in enumerate(trajs) for s in t["segments"]]
    leaves = [torch.tensor([float(x) for x in s["logp"]], dtype=DTYPE, requires_grad=True) for _, s in rows]
    width = max((len(s["logp"]) for _, s in rows), default=0)
    shape = (len(rows), width)
    mask = torch.zeros(shape, dtype=DTYPE)
    old = torch.zeros(shape, dtype=DTYPE)
    ref = torch.zeros(shape, dtype=DTYPE)
    advantages = torch.zeros(shape, dtype=DTYPE)
    for r, (i, s) in enumerate(rows):
        n = len(s["logp"])
        if not masked[i]:
            mask[r, :n] = torch.tensor([float(m) for m in s["mask"]], dtype=DTYPE)
        old[r, :n] = torch.tensor([float(x) for x in s["old_logp"]], dtype=DTYPE)
        if s.get("ref_logp") is not None:
            ref[r, :n] = torch.tensor([float(x) for x in s["ref_logp"]], dtype=DTYPE)
        advantages[r, :n] = adv[i]

    out = {
        "advantages": adv,
        "loss": 0.0,
        "pg_loss": 0.0,
        "kl_loss": 0.0,
        "clipfrac": 0.0,
        "clipfrac_lower": 0.0,
        "approx_kl": 0.0,
    }
    if mask.sum() == 0:  # difference 4
        out["grad_logp"] = [[[0.0] * len(s["logp"]) for s in t["segments"]] for t in trajs]
        return out

    if cfg["agg"] in VERL_MODES:
        loss, pg_loss, kl_loss, stats = verl_actor_loss(cfg, leaves, rows, width, mask, old, ref, advantages)
    else:
        loss, pg_loss, kl_loss, stats = trajectory_balanced_loss(cfg, leaves, rows, width, mask, old, ref, advantages)
    loss.backward()
    out.update(
        loss=float(loss.detach()),
        pg_loss=float(torch.as_tensor(pg_loss).detach()),
        kl_loss=float(torch.as_tensor(kl_loss).detach()),
        clipfrac=float(stats["actor/pg_clipfrac"]),
        clipfrac_lower=float(stats["actor/pg_clipfrac_lower"]),
        approx_kl=float(stats["actor/ppo_kl"]),
    )
    grads = iter([(l.grad if l.grad is not None else torch.zeros_like(l)).tolist() for l in leaves])
    out["grad_logp"] = [[next(grads) for _ in t["segments"]] for t in trajs]
    return out


def verl_actor_loss(cfg, leaves, rows, width, mask, old, ref, advantages):
    """verl's `losses.ppo_loss` on the padded rows: every row a prompt of one token followed by
    its response; the model output is the flat (no-padding) log-prob sequence verl slices."""
    n_rows = len(rows)
    # `no_padding_2_padding` reads the response log-probs one position early (next-token
    # prediction): row r's values are [logp_0 .. logp_{n-1}, unused].
    values = torch.cat([torch.cat([leaf, torch.zeros(1, dtype=DTYPE)]) for leaf in leaves])
    attention = torch.zeros((n_rows, 1 + width), dtype=torch.long)
    attention[:, 0] = 1
    for r, leaf in enumerate(leaves):
        attention[r, 1 : 1 + leaf.numel()] = 1
    fields = {
        "prompts": torch.zeros((n_rows, 1), dtype=torch.long),
        "responses": torch.zeros((n_rows, width), dtype=torch.long),
        "attention_mask": attention,
        "response_mask": mask,
        "old_log_probs": old,
        "advantages": advantages,
    }
    if cfg["kl_coef"] != 0:
        fields["ref_log_prob"] = ref
    data = tu.get_tensordict(fields, {"dp_size": 1, "batch_num_tokens": None, "global_batch_size": None})
    config = actor_config(cfg, cfg["agg"])
    loss, metrics = losses.ppo_loss(config, {"log_probs": values}, data)

    def metric(name):
        m = metrics.get(name)
        return 0.0 if m is None else float(torch.as_tensor(m.values[0]).detach())

    stats = {k: metric(k) for k in ("actor/pg_clipfrac", "actor/pg_clipfrac_lower", "actor/ppo_kl")}
    return loss, metric("actor/pg_loss"), metric("kl_loss"), stats


def trajectory_weights(cfg, rows, mask):
    """The trajectory-balanced modes' coefficient of each token, from their formulas."""
    per_traj = {}
    for r, (i, _) in enumerate(rows):
        per_traj[i] = per_traj.get(i, 0.0) + float(mask[r].sum())
    trained = [i for i, n in per_traj.items() if n > 0]
    weights = torch.zeros_like(mask)
    for r, (i, _) in enumerate(rows):
        if per_traj[i] == 0:
            continue
        if cfg["agg"] == "traj-mean-token-mean":
            weights[r] = mask[r] / (len(trained) * per_traj[i])
        else:  # traj-mean-token-sum
            weights[r] = mask[r] / len(trained)
    return weights


def trajectory_balanced_loss(cfg, leaves, rows, width, mask, old, ref, advantages):
    """Difference 7: verl's per-token terms, aggregated by the trajectory-balanced formulas."""
    logp = torch.stack([torch.nn.functional.pad(leaf, (0, width - leaf.numel())) for leaf in leaves])
    weights = trajectory_weights(cfg, rows, mask)
    # Statistics do not depend on the aggregation: verl's, over the trained tokens.
    with torch.no_grad():
        _, stats = compute_policy_loss_vanilla(
            old, logp.detach(), advantages, mask.bool(), "token-mean", actor_config(cfg, "token-mean")
        )
    # sum_t w_t l_t: verl's token-sum with the coefficients as its (numeric) mask.
    pg_loss, _ = compute_policy_loss_vanilla(old, logp, advantages, weights, "token-sum", actor_config(cfg, "token-sum"))
    if cfg["kl_coef"] != 0:
        kl = kl_penalty(logprob=logp, ref_logprob=ref, kl_penalty=cfg["kl_type"])
        kl_loss = agg_loss(loss_mat=kl, loss_mask=weights, loss_agg_mode="token-sum")
    else:
        kl_loss = torch.zeros((), dtype=DTYPE)
    loss = pg_loss + kl_loss * float(cfg["kl_coef"])
    return loss, pg_loss, kl_loss, stats


def dumps(out):
    def check(x):
        if isinstance(x, float) and not math.isfinite(x):
            raise ValueError(f"non-finite output {x}")
        if isinstance(x, list):
            for y in x:
                check(y)

    for v in out.values():
        check(v)
    return json.dumps(out)


def main(argv):
    torch.set_num_threads(1)
    # float64 throughout, verl's own constants included (its group of one is `torch.tensor(1.0)`,
    # whose `+ eps` would otherwise round to float32).
    torch.set_default_dtype(DTYPE)
    if argv == ["--lines"]:
        for line in sys.stdin:
            if line.strip():
                print(dumps(reference(json.loads(line))), flush=True)
        return 0
    if len(argv) != 1:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    with open(argv[0]) as f:
        print(dumps(reference(json.load(f))))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
