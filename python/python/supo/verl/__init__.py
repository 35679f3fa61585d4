"""supo.verl: SUPO as a verl 0.9.x plugin, with no fork of verl.

Importing this module imports verl and registers, in verl's own registries:

- the agent loop ``supo_agent`` (:class:`SupoAgentLoop`, an ``AgentLoopBase``): multi-turn
  tool use under SUPO's working-context rule (the Rust :class:`supo.TrajectoryBuilder`) on
  BFCL's environments or on tools from verl's tool configuration, one ``AgentLoopOutput`` per
  summary segment, for verl's V1 trainer;
- the advantage estimator ``supo`` (:func:`compute_supo_advantage`): trajectory-level group
  advantages (Eq. 3) for trainers that hand it one row per segment;
- the policy loss ``supo_trajectory_balanced`` (:func:`trajectory_balanced_policy_loss`):
  verl's vanilla clipped surrogate aggregated so that every trajectory weighs the same however
  many segments it was cut into.

:class:`CompletionsClient` is an ``LLMServerClient`` that sends token-id prompts to any
vLLM-compatible ``/v1/completions`` endpoint (vLLM, SGLang, ``supo serve``).
"""

from .estimator import (
    compute_supo_advantage,
    trajectory_balanced_policy_loss,
    trajectory_ids_from_keys,
)
from .client import CompletionsClient
from .agent_loop import SupoAgentLoop

__all__ = [
    "CompletionsClient",
    "SupoAgentLoop",
    "compute_supo_advantage",
    "trajectory_balanced_policy_loss",
    "trajectory_ids_from_keys",
]
