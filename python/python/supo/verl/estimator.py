"""The ``supo`` advantage estimator and the trajectory-balanced policy loss, registered in
verl's ``core_algos`` registries (both computed by supo's Rust estimator where it is the
estimator's own arithmetic, by verl's functions where it is verl's)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from verl.trainer.ppo.core_algos import (
    compute_policy_loss_vanilla,
    register_adv_est,
    register_policy_loss,
)

import supo


def _get(config: Any, name: str, default: Any) -> Any:
    if config is None:
        return default
    if isinstance(config, dict):
        return config.get(name, default)
    getter = getattr(config, "get", None)
    if callable(getter):
        try:
            return getter(name, default)
        except Exception:  # noqa: BLE001 - dataclass configs without such a key
            pass
    return getattr(config, name, default)


def trajectory_ids_from_keys(batch_keys: Sequence[str]) -> list[str]:
    """The trajectory of each row of verl's V1 trainer, from its TransferQueue keys
    ``{uid}_{session_id}_{index}``: ``{uid}_{session_id}``."""
    out = []
    for k in batch_keys:
        parts = str(k).rsplit("_", 2)
        if len(parts) != 3:
            raise supo.SupoError(f"row key {k!r} is not {{uid}}_{{session_id}}_{{index}}")
        out.append(f"{parts[0]}_{parts[1]}")
    return out


@register_adv_est("supo")
def compute_supo_advantage(
    token_level_rewards: torch.Tensor,
    response_mask: torch.Tensor,
    index: np.ndarray,
    epsilon: float = 1e-6,
    norm_adv_by_std_in_grpo: bool = True,
    config: Any = None,
    trajectory_index: Sequence[Any] | None = None,
    masked_in_group_stats: bool | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, torch.Tensor]:
    """SUPO's Eq. 3 on one row per segment.

    ``index`` is each row's group (verl's ``uid``), ``trajectory_index`` each row's trajectory
    (rows of one trajectory carry its reward, as verl's V1 worker gives every output the final
    one's): the group mean and std are over trajectories, never over segments, and every row of
    a trajectory gets its advantage on its trained tokens. A trajectory whose rows have no
    trained token (overlong, masked by the agent loop) counts in its group's statistics unless
    ``masked_in_group_stats`` (or ``config.masked_in_group_stats``) is false, and then gets 0.
    Without ``trajectory_index`` each row is its own trajectory (verl's GRPO over rows).
    ``norm_adv_by_std_in_grpo`` (or the config's) switches the std division off (Dr. GRPO).
    """
    rows = token_level_rewards.shape[0]
    if index is None or len(index) != rows:
        raise supo.SupoError("the supo estimator needs the group index (uid) of every row")
    traj = list(range(rows)) if trajectory_index is None else list(trajectory_index)
    if len(traj) != rows:
        raise supo.SupoError(f"{len(traj)} trajectory ids for {rows} rows")
    norm = bool(_get(config, "norm_adv_by_std_in_grpo", norm_adv_by_std_in_grpo))
    in_stats = masked_in_group_stats
    if in_stats is None:
        in_stats = bool(_get(config, "masked_in_group_stats", True))
    scores = token_level_rewards.detach().sum(dim=-1).to(torch.float64).cpu().numpy()
    trained = (response_mask.detach().sum(dim=-1) > 0).cpu().numpy()

    order: dict[Any, int] = {}
    rewards: list[float] = []
    groups: list[str] = []
    masked: list[bool] = []
    row_traj = []
    for r in range(rows):
        key = (str(index[r]), traj[r])
        if key not in order:
            order[key] = len(rewards)
            rewards.append(float(scores[r]))
            groups.append(str(index[r]))
            masked.append(True)
        t = order[key]
        if rewards[t] != float(scores[r]):
            raise supo.SupoError(f"rows of trajectory {traj[r]!r} carry different rewards")
        masked[t] = masked[t] and not bool(trained[r])
        row_traj.append(t)
    adv = supo.group_advantages(
        np.asarray(rewards, dtype=np.float64),
        groups,
        masked,
        {"eps": float(epsilon), "norm_adv_by_std": norm, "masked_in_group_stats": in_stats},
    )
    per_row = torch.as_tensor(adv[row_traj], dtype=token_level_rewards.dtype, device=token_level_rewards.device)
    advantages = per_row.unsqueeze(-1) * response_mask
    return advantages, advantages


def trajectory_weights(
    response_mask: torch.Tensor, trajectory_index: Sequence[Any] | None, mode: str
) -> torch.Tensor:
    """Per-token coefficients ``c_t`` with ``loss = Σ_t c_t ℓ_t`` for the trajectory-balanced
    modes: ``traj-mean-token-mean`` ``c_t = 1 / (|T| n_τ)``, ``traj-mean-token-sum``
    ``c_t = 1 / |T|`` (``T`` the trajectories with a trained token, ``n_τ`` the trained tokens
    of ``τ`` over all its rows)."""
    mask = response_mask.to(torch.float64)
    rows = mask.shape[0]
    traj = list(range(rows)) if trajectory_index is None else list(trajectory_index)
    if len(traj) != rows:
        raise supo.SupoError(f"{len(traj)} trajectory ids for {rows} rows")
    ids: dict[Any, int] = {}
    dense = torch.tensor([ids.setdefault(t, len(ids)) for t in traj], dtype=torch.long, device=mask.device)
    per_traj = torch.zeros(len(ids), dtype=torch.float64, device=mask.device).index_add_(0, dense, mask.sum(-1))
    n_traj = int((per_traj > 0).sum())
    if n_traj == 0:
        return torch.zeros_like(mask)
    if mode == "traj-mean-token-mean":
        row_coef = 1.0 / (n_traj * per_traj[dense].clamp(min=1.0))
    elif mode == "traj-mean-token-sum":
        row_coef = torch.full((rows,), 1.0 / n_traj, dtype=torch.float64, device=mask.device)
    else:
        raise supo.SupoError(f"unknown trajectory-balanced mode {mode!r}")
    return mask * row_coef.unsqueeze(-1)


@register_policy_loss("supo_trajectory_balanced")
def trajectory_balanced_policy_loss(
    old_log_prob: torch.Tensor,
    log_prob: torch.Tensor,
    advantages: torch.Tensor,
    response_mask: torch.Tensor,
    loss_agg_mode: str = "token-mean",
    config: Any = None,
    rollout_is_weights: torch.Tensor | None = None,
    trajectory_index: Sequence[Any] | None = None,
    traj_agg_mode: str | None = None,
) -> tuple[torch.Tensor, dict[str, Any]]:
    """verl's vanilla surrogate (clip-higher, dual clip, the log-ratio clamp: its own
    ``compute_policy_loss_vanilla``) summed with the trajectory-balanced coefficients of
    :func:`trajectory_weights`. The mode is ``traj_agg_mode``, else ``loss_agg_mode`` when it
    names a trajectory-balanced mode, else ``traj-mean-token-mean``. verl's actor passes no
    trajectory ids: there each row counts as its own trajectory (the balance is then over
    rows, ``seq-mean-token-mean``); trainers that know the rows' trajectories pass
    ``trajectory_index``. Statistics are verl's, over the trained tokens."""
    mode = traj_agg_mode or (loss_agg_mode if str(loss_agg_mode).startswith("traj-") else "traj-mean-token-mean")
    weights = trajectory_weights(response_mask, trajectory_index, mode).to(log_prob.dtype)
    with torch.no_grad():
        _, metrics = compute_policy_loss_vanilla(
            old_log_prob, log_prob.detach(), advantages, response_mask.bool(), "token-mean", config, rollout_is_weights
        )
    if weights.sum() == 0:
        return (log_prob * 0.0).sum(), metrics
    loss, _ = compute_policy_loss_vanilla(
        old_log_prob, log_prob, advantages, weights, "token-sum", config, rollout_is_weights
    )
    return loss, metrics
