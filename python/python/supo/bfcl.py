"""BFCL's multi-turn world in Rust (``supo-bfcl``): the eight stateful tool environments,
call strings, replay and the multi-turn checker, a faster drop-in for BFCL's Python executor
inside rollouts. BFCL's data (tool docs, long-context filler) is read from the installed
``bfcl-eval`` package (or ``BFCL_EVAL_DIR``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from . import _native
from ._native import SupoError

__all__ = ["ERROR_PREFIX", "Environment", "check", "classes", "replay", "tool_docs"]

#: How an exception raised by a tool is rendered in a result.
ERROR_PREFIX = "Error during execution: "


def _dumps(value: Any, what: str) -> str:
    try:
        return json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise SupoError(f"{what} is not JSON: {e}") from None


class Environment:
    """The live instances of one entry's ``involved_classes``, loaded from its
    ``initial_config``, kept across calls (BFCL's ``execute_multi_turn_func_call``)."""

    def __init__(
        self,
        involved_classes: Sequence[str],
        initial_config: Mapping[str, Any] | None = None,
        long_context: bool = False,
    ) -> None:
        self._ex = _native.BfclExecutor(
            list(involved_classes), _dumps(initial_config or {}, "initial_config"), long_context
        )

    @classmethod
    def from_entry(cls, entry: Mapping[str, Any]) -> "Environment":
        """The environment of a BFCL question (``id``, ``involved_classes``,
        ``initial_config``; the long-context variant for its categories)."""
        category = str(entry.get("id", "")).rsplit("_", 1)[0]
        long = "long_context" in category or "composite" in category
        return cls(entry["involved_classes"], entry.get("initial_config") or {}, long)

    def execute(self, call: str) -> str:
        """Runs one call string (``cd(folder='docs')``); BFCL's result text, an exception as
        ``"Error during execution: …"``."""
        return self._ex.execute(call)

    def execute_all(self, calls: Sequence[str]) -> list[str]:
        """Runs call strings in order."""
        return [self._ex.execute(c) for c in calls]

    def states(self) -> dict[str, Any]:
        """Each instance's public attributes, ``{class: state}``."""
        return json.loads(self._ex.states_json())


def check(
    entry: Mapping[str, Any],
    ground_truth: Sequence[Sequence[str]],
    model: Sequence[Sequence[Sequence[str]]],
) -> dict[str, Any]:
    """BFCL's multi-turn checker: ``model[t]`` holds turn ``t``'s decoded steps, each a list of
    call strings. Returns ``{"valid", "error_type", "error_message", "turn"}``."""
    e = {
        "id": entry["id"],
        "involved_classes": list(entry["involved_classes"]),
        "initial_config": entry.get("initial_config") or {},
    }
    gt = [list(t) for t in ground_truth]
    m = [[list(s) for s in t] for t in model]
    return json.loads(_native.bfcl_check(_dumps(e, "the entry"), gt, m))


def replay(entry: Mapping[str, Any]) -> dict[str, Any]:
    """``supo bfcl replay`` on one input (``id``, ``involved_classes``, ``initial_config``,
    ``long_context``, ``turns``): ``{"id", "results", "states"}``."""
    return json.loads(_native.bfcl_replay(_dumps(entry, "the replay input")))


def tool_docs(
    involved_classes: Sequence[str], missed_function: Mapping[str, Any] | None = None
) -> tuple[list[dict[str, Any]], dict[int, list[dict[str, Any]]]]:
    """The tool docs the model sees for an entry (from ``bfcl-eval``), and the withheld ones
    BFCL adds per turn."""
    out = json.loads(
        _native.bfcl_tool_docs(list(involved_classes), _dumps(missed_function, "missed_function"))
    )
    return out["docs"], {int(k): v for k, v in out["added"].items()}


def classes() -> dict[str, list[str]]:
    """The BFCL classes implemented, with their tool names."""
    return {name: funcs for name, funcs in _native.bfcl_classes()}
