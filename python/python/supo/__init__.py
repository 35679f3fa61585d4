"""supo: SUPO (summarization-augmented policy optimisation) from Rust, for Python.

- :class:`ContextConfig`, :class:`TrajectoryBuilder`: the working-context rule on token ids
  (``Continue``, ``Summarize``, ``Stop(reason)`` decisions; summary segments out).
- :func:`estimate`: trajectory-level group advantages (Eq. 3), overlong masks and per-token
  aggregation weights as numpy arrays, one row per segment.
- :func:`loss`: exactly the ``supo loss`` command-line contract (a JSON string or a dict in,
  a dict out).
- :mod:`supo.bfcl`: BFCL's multi-turn environments and checker in Rust.
- :mod:`supo.verl`: the verl 0.9 plugin (imports verl; ``import supo`` does not).

Every error is a :class:`SupoError` (a ``ValueError``); long calls release the GIL.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

from ._native import (
    ContextConfig,
    Decision,
    Segment,
    SupoError,
    Trajectory,
    TrajectoryBuilder,
    __version__,
)
from . import _native, bfcl

__all__ = [
    "bfcl",
    "ContextConfig",
    "Decision",
    "Segment",
    "SupoError",
    "Trajectory",
    "TrajectoryBuilder",
    "estimate",
    "group_advantages",
    "loss",
    "__version__",
]


def _json(value: str | Mapping[str, Any], what: str) -> str:
    if isinstance(value, str):
        return value
    if not isinstance(value, Mapping):
        raise SupoError(f"{what} must be a JSON string or a dict, not {type(value).__name__}")
    try:
        # NaN and infinities are not JSON: they are refused here as the contract refuses them.
        return json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise SupoError(f"{what} is not JSON: {e}") from None


def _warn_ignored(ignored: Sequence[str]) -> None:
    for name in ignored:
        warnings.warn(f"supo: ignoring unknown config field {name!r}", stacklevel=3)


def loss(batch: str | Mapping[str, Any]) -> dict[str, Any]:
    """The ``supo loss`` contract: ``{"config": {...}, "trajectories": [...]}`` in (JSON text or
    a dict), ``{"advantages", "loss", "pg_loss", "kl_loss", "clipfrac", "clipfrac_lower",
    "approx_kl", "grad_logp"}`` out, the same numbers ``supo loss`` prints."""
    out, ignored = _native.loss_json(_json(batch, "the batch"))
    _warn_ignored(ignored)
    return out


def estimate(
    trajectories: Sequence[Trajectory],
    config: Mapping[str, Any] | str | None = None,
    micro_batch: int | None = None,
) -> dict[str, Any]:
    """Advantages, masks and aggregation weights for trajectories of token ids.

    ``config`` is the contract's ``config`` object. Returns numpy arrays: per trajectory
    ``advantages`` (float32); per row (one per segment, then zero-weight padding rows when
    ``micro_batch`` is given) ``row_trajectory`` (int64, -1 for padding) and ``row_length``
    (int64); per response token, rows concatenated, ``targets`` (uint32), ``old_logprobs``
    and ``token_advantages`` and ``weights`` (float32), ``mask`` (uint8: trained tokens).
    """
    text = None if config is None else _json(config, "the config")
    out, ignored = _native.estimate(list(trajectories), text, micro_batch)
    _warn_ignored(ignored)
    return out


def group_advantages(
    rewards: Any,
    groups: Sequence[Any],
    masked: Sequence[bool] | None = None,
    config: Mapping[str, Any] | str | None = None,
) -> Any:
    """Eq. 3 over one reward per trajectory: ``(R - mean) / (std + eps)`` within each group
    (float64 numpy array); ``masked`` trajectories (overlong) count in their group's statistics
    unless ``config["masked_in_group_stats"]`` is false, and then get 0."""
    import numpy as np

    r = np.ascontiguousarray(rewards, dtype=np.float64)
    if r.ndim != 1:
        raise SupoError(f"rewards must be one-dimensional, got shape {r.shape}")
    m = [False] * len(r) if masked is None else [bool(x) for x in masked]
    text = None if config is None else _json(config, "the config")
    return _native.group_advantages(r, [str(g) for g in groups], m, text)
