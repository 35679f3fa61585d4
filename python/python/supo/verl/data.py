"""BFCL multi-turn questions (BFCL's own files, or ``supo synth``'s ``bfcl_questions.jsonl``
and ``bfcl_possible_answers.jsonl``) to verl's RLHF parquet rows for ``supo_agent``:
``data_source``, ``prompt`` (the first turn's messages), ``ability``, ``reward_model``,
``agent_name`` and ``extra_info.bfcl`` (the entry the loop plays, its ground truth included).

    python3 -m supo.verl.data QUESTIONS.jsonl ANSWERS.jsonl OUT.parquet
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import supo

#: The system message of every prompt.
SYSTEM = (
    "You are an expert in composing functions. Call the provided tools with "
    '<tool_call>{"name": ..., "arguments": {...}}</tool_call> blocks; answer without a call when '
    "the task of the turn is done."
)


def _jsonl(path: Path) -> list[dict[str, Any]]:
    out = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if line.strip():
            try:
                out.append(json.loads(line))
            except ValueError as e:
                raise supo.SupoError(f"{path}:{n}: not JSON: {e}") from None
    return out


def bfcl_rows(questions: list[dict[str, Any]], answers: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One verl row per question that has a ground truth."""
    truth = {a["id"]: a["ground_truth"] for a in answers}
    rows = []
    for q in questions:
        if q["id"] not in truth:
            raise supo.SupoError(f"no ground truth for {q['id']}")
        turns = q["question"]
        if not turns:
            raise supo.SupoError(f"{q['id']} has no turns")
        entry = {
            "id": q["id"],
            "involved_classes": q["involved_classes"],
            "initial_config": q.get("initial_config") or {},
            "question": turns,
            "ground_truth": truth[q["id"]],
            "missed_function": q.get("missed_function"),
        }
        rows.append(
            {
                "data_source": "bfcl_multi_turn",
                "prompt": [{"role": "system", "content": SYSTEM}, *turns[0]],
                "ability": "tool_use",
                "reward_model": {"style": "rule", "ground_truth": json.dumps(truth[q["id"]])},
                "agent_name": "supo_agent",
                # JSON text: the scenarios' nested dicts have no fixed parquet schema.
                "extra_info": {"bfcl_json": json.dumps(entry)},
            }
        )
    return rows


def write_parquet(rows: list[dict[str, Any]], out: Path) -> None:
    """Writes the rows (pandas + pyarrow, as verl's own data scripts do), atomically."""
    import pandas as pd

    tmp = out.with_name(out.name + ".tmp")
    pd.DataFrame(rows).to_parquet(tmp)
    tmp.replace(out)


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__.strip().splitlines()[-1].strip(), file=sys.stderr)
        return 2
    try:
        rows = bfcl_rows(_jsonl(Path(argv[0])), _jsonl(Path(argv[1])))
        write_parquet(rows, Path(argv[2]))
    except (OSError, KeyError, supo.SupoError) as e:
        print(f"supo.verl.data: {e}", file=sys.stderr)
        return 2
    print(f"{len(rows)} rows -> {argv[2]}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
