"""``supo_agent``: a verl agent loop under SUPO's working-context rule, on BFCL's multi-turn
environments (the Rust ones of :mod:`supo.bfcl`), one ``AgentLoopOutput`` per summary segment.

Dataset rows (verl's RLHF parquet): ``prompt`` (the chat messages of the first turn, system
included) and ``extra_info.bfcl`` = ``{id, involved_classes, initial_config, question,
ground_truth}`` (a BFCL multi-turn entry, or its JSON text as ``extra_info.bfcl_json``, as
:mod:`supo.verl.data` writes it; ``question[t]`` the user messages of turn ``t``;
``missed_function`` and ``tools`` optional). The model calls tools as Hermes
``<tool_call>{"name": …, "arguments": {…}}</tool_call>`` blocks; a generation without a call
ends the turn (the next turn's user messages are its observation, mask 0); after the last turn
it is the answer. When a step brings the working context to the threshold the step is
discarded, the summarization instruction is appended, and the model's next generation is the
summary that starts the next segment (prompt = task prompt ⊕ prefix ⊕ summary). The reward is
BFCL's multi-turn checker verdict (1.0 valid, 0.0 otherwise), the same for every segment.

Options (keyword arguments, e.g. from ``rollout.agent.agent_loop_config_path``):
``working_context`` (default ``rollout.prompt_length + rollout.response_length``),
``threshold``, ``max_summaries`` (7), ``max_steps`` (100), ``summary_instruction``,
``summary_prefix``, ``max_tokens_per_generation`` (``rollout.response_length``),
``overlong_in_group_stats`` (True: an overlong trajectory's outputs stay with ``response_mask``
0 so its reward counts in its group's statistics; False: ``run`` returns no output for it, so
verl's V1 trainer leaves it out of them).
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

from verl.experimental.agent_loop.agent_loop import (
    AgentLoopBase,
    AgentLoopMetrics,
    AgentLoopOutput,
    register,
)

import supo
from supo import bfcl

_TOOL_CALL = re.compile(r"<tool_call>\s*(.*?)\s*</tool_call>", re.S)


def py_literal(v: Any) -> str:
    """A JSON value as the Python literal of a BFCL call string."""
    if v is None or isinstance(v, bool):
        return repr(v)
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return repr(v)
    if isinstance(v, list):
        return "[" + ", ".join(py_literal(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{py_literal(str(k))}: {py_literal(x)}" for k, x in v.items()) + "}"
    raise supo.SupoError(f"not a JSON value: {v!r}")


def parse_tool_calls(text: str) -> list[str] | None:
    """BFCL call strings of a generation's Hermes ``<tool_call>`` blocks (``None``: no block;
    a block that is not a call becomes a call that BFCL's executor reports as an error)."""
    blocks = _TOOL_CALL.findall(text)
    if not blocks:
        return None
    calls = []
    for b in blocks:
        try:
            c = json.loads(b)
            name, args = c["name"], c.get("arguments", {})
            if isinstance(args, str):
                args = json.loads(args)
            if not isinstance(name, str) or not isinstance(args, dict):
                raise TypeError
            calls.append(f"{name}(" + ", ".join(f"{k}={py_literal(v)}" for k, v in args.items()) + ")")
        except (ValueError, KeyError, TypeError, supo.SupoError):
            calls.append(b.strip() or "<empty call>")
    return calls


@register("supo_agent")
class SupoAgentLoop(AgentLoopBase):
    """SUPO's summarization agent loop on BFCL multi-turn entries (see the module docstring)."""

    def __init__(
        self,
        *args: Any,
        working_context: int | None = None,
        threshold: int | None = None,
        max_summaries: int = 7,
        max_steps: int = 100,
        summary_instruction: str | None = None,
        summary_prefix: str | None = None,
        max_tokens_per_generation: int | None = None,
        overlong_in_group_stats: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        rollout = self.rollout_config
        w = working_context or int(rollout.prompt_length) + int(rollout.response_length)
        self.context_config = supo.ContextConfig(
            int(w),
            threshold=threshold,
            max_summaries=int(max_summaries),
            max_steps=int(max_steps),
            summary_instruction=summary_instruction,
            summary_prefix=summary_prefix,
        )
        self.max_tokens = int(max_tokens_per_generation or rollout.response_length)
        self.overlong_in_group_stats = bool(overlong_in_group_stats)

    # Token ids of chat messages, through the tokenizer's chat template.
    def _render(self, messages: list[dict], tools: list | None, add_generation_prompt: bool) -> str:
        return self.tokenizer.apply_chat_template(
            messages,
            tools=tools,
            add_generation_prompt=add_generation_prompt,
            tokenize=False,
            **(self.apply_chat_template_kwargs or {}),
        )

    def _encode(self, text: str) -> list[int]:
        return list(self.tokenizer.encode(text, add_special_tokens=False))

    def _delta(self, messages: list[dict]) -> list[int]:
        """The tokens ``messages`` add after an assistant turn, up to the next generation prompt."""
        base = [{"role": "user", "content": ""}, {"role": "assistant", "content": ""}]
        before = self._render(base, None, False)
        after = self._render(base + messages, None, True)
        if not after.startswith(before):
            raise supo.SupoError("the chat template does not render messages incrementally")
        return self._encode(after[len(before):])

    async def _generate(self, prompt: list[int], budget: int, sampling_params: dict, request_id: str):
        params = dict(sampling_params)
        params["max_tokens"] = max(1, min(self.max_tokens, budget))
        out = await self.server_manager.generate(request_id, prompt_ids=prompt, sampling_params=params)
        ids = list(out.token_ids)
        lps = list(out.log_probs) if out.log_probs is not None else None
        if lps is None or len(lps) != len(ids):
            raise supo.SupoError("the server returned no log-probs for every token (rollout.calculate_log_probs)")
        return ids, lps

    async def run(self, sampling_params: dict[str, Any], **kwargs: Any) -> list[AgentLoopOutput]:
        extra = kwargs.get("extra_info") or {}
        entry = extra.get("bfcl") or (json.loads(extra["bfcl_json"]) if extra.get("bfcl_json") else None)
        if not entry:
            raise supo.SupoError("supo_agent needs extra_info.bfcl (a BFCL multi-turn entry)")
        messages = list(kwargs["raw_prompt"])
        question = entry.get("question") or []
        tools = entry.get("tools")
        if tools is None:
            docs, _ = bfcl.tool_docs(entry["involved_classes"], entry.get("missed_function"))
            tools = [{"type": "function", "function": d} for d in docs]
        env = bfcl.Environment.from_entry(entry)
        request_id = uuid.uuid4().hex
        trajectory_id = f"{kwargs.get('uid', request_id)}_{kwargs.get('session_id', 0)}"

        task_prompt = self._encode(self._render(messages, tools, True))
        cfg = self.context_config
        instruction = self._delta([{"role": "user", "content": cfg.summary_instruction}])
        prefix = self._encode(cfg.summary_prefix)
        builder = supo.TrajectoryBuilder(cfg, task_prompt, instruction, prefix)

        turn = 0
        model_steps: list[list[list[str]]] = [[]]
        summaries: list[str] = []
        generations = 0
        while builder.finished is None:
            prompt = builder.context()
            ids, lps = await self._generate(prompt, builder.generation_budget, sampling_params, request_id)
            generations += 1
            if builder.awaiting_summary:
                builder.push_summary(ids, lps)
                summaries.append(self.tokenizer.decode(ids, skip_special_tokens=True))
                continue
            text = self.tokenizer.decode(ids, skip_special_tokens=True)
            calls = parse_tool_calls(text)
            if calls is not None:
                results = env.execute_all(calls)
                model_steps[turn].append(calls)
                observation = self._delta([{"role": "tool", "content": r} for r in results])
                builder.push_step(ids, lps, observation)
                continue
            if turn + 1 < len(question):
                turn += 1
                model_steps.append([])
                builder.push_step(ids, lps, self._delta(list(question[turn])))
            else:
                builder.push_answer(ids, lps)

        verdict = bfcl.check(entry, entry["ground_truth"], model_steps)
        reward = 1.0 if verdict["valid"] else 0.0
        trajectory = builder.finish(str(kwargs.get("uid", entry["id"])), reward)
        if trajectory.overlong and not self.overlong_in_group_stats:
            return []
        segments = trajectory.segments
        outputs = []
        for k, seg in enumerate(segments):
            mask = [0] * len(seg) if trajectory.overlong else seg.mask.tolist()
            outputs.append(
                AgentLoopOutput(
                    prompt_ids=seg.prompt.tolist(),
                    response_ids=seg.response.tolist(),
                    response_mask=mask,
                    response_logprobs=seg.logprobs.tolist(),
                    reward_score=reward,
                    num_turns=sum(1 for role, _ in seg.turns if role == "assistant"),
                    metrics=AgentLoopMetrics(),
                    extra_fields={
                        "supo_trajectory": trajectory_id,
                        "supo_segment": k,
                        "supo_segments": len(segments),
                        "supo_summary": summaries[k] if k < len(summaries) and seg.summary is not None else None,
                        "supo_finish": trajectory.finish,
                        "supo_generations": generations,
                        "reward_extra_info": {
                            "bfcl_valid": bool(verdict["valid"]),
                            "bfcl_error_type": verdict.get("error_type"),
                        },
                    },
                )
            )
        return outputs
