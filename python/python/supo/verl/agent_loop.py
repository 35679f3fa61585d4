"""``supo_agent``: a verl agent loop under SUPO's working-context rule, on BFCL's multi-turn
environments (the Rust ones of :mod:`supo.bfcl`) or on tools from verl's tool configuration, one
``AgentLoopOutput`` per summary segment.

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

verl tools: a row without a BFCL entry runs on the verl tools the worker passes
(``rollout.multi_turn.tool_config_path`` / ``function_tool_path``, loaded by verl) and those
of the loop's own ``tool_config_path`` / ``function_tool_path`` options (verl's tool YAML and
``@function_tool`` files, loaded with verl's ``load_all_tools``). Their OpenAI schemas go into
the prompt; each ``BaseTool`` gets one instance per trajectory (``create`` at the start with the
row's ``tools_kwargs[name].create_kwargs``, ``execute`` per call, ``release`` at the end, also on
errors); a tool's failure or an unknown name is the model's observation, as in verl's
``tool_agent`` loop. A generation without a call is the answer. The reward (``tool_reward``):
``calc_reward`` (default) the sum of the instances' ``calc_reward``; ``reward_loop``
``reward_score`` ``None``, so verl's configured reward scores the final segment and its V1 trainer
gives every segment that score. ``reward_extra_info`` holds ``tool_calls`` and the calls'
``tool_rewards``. ``extra_info.tool_selection`` (tool names) limits a row to some of the tools;
responses longer than ``rollout.multi_turn.max_tool_response_length`` are cut as verl cuts them.
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


def parse_tool_blocks(text: str) -> list[tuple[str, dict] | str] | None:
    """The calls of a generation's Hermes ``<tool_call>`` blocks, as ``(name, arguments)``
    (``None``: no block; a block that is not a call is kept as its text)."""
    blocks = _TOOL_CALL.findall(text)
    if not blocks:
        return None
    calls: list[tuple[str, dict] | str] = []
    for b in blocks:
        try:
            c = json.loads(b)
            name, args = c["name"], c.get("arguments", {})
            if isinstance(args, str):
                args = json.loads(args)
            if not isinstance(name, str) or not isinstance(args, dict):
                raise TypeError
            calls.append((name, args))
        except (ValueError, KeyError, TypeError):
            calls.append(b.strip() or "<empty call>")
    return calls


def parse_tool_calls(text: str) -> list[str] | None:
    """BFCL call strings of a generation's Hermes ``<tool_call>`` blocks (``None``: no block;
    a block that is not a call becomes a call that BFCL's executor reports as an error)."""
    calls = parse_tool_blocks(text)
    if calls is None:
        return None
    out = []
    for c in calls:
        if isinstance(c, str):
            out.append(c)
            continue
        out.append(f"{c[0]}(" + ", ".join(f"{k}={py_literal(v)}" for k, v in c[1].items()) + ")")
    return out


class BfclTask:
    """One BFCL multi-turn entry's environment for a trajectory: the Rust executor, the next
    turns' user messages, BFCL's checker as the reward."""

    def __init__(self, entry: dict) -> None:
        self.entry = entry
        self.tools = entry.get("tools")
        if self.tools is None:
            docs, _ = bfcl.tool_docs(entry["involved_classes"], entry.get("missed_function"))
            self.tools = [{"type": "function", "function": d} for d in docs]
        self.env = bfcl.Environment.from_entry(entry)
        self.question = entry.get("question") or []
        self.turn = 0
        self.model_steps: list[list[list[str]]] = [[]]

    async def start(self) -> None:
        """Nothing to set up: the environment is built from the entry."""

    async def execute(self, text: str) -> list[dict] | None:
        """The tool messages answering the generation's calls (``None``: it made none)."""
        calls = parse_tool_calls(text)
        if calls is None:
            return None
        results = self.env.execute_all(calls)
        self.model_steps[self.turn].append(calls)
        return [{"role": "tool", "content": r} for r in results]

    def next_turn(self) -> list[dict] | None:
        """The next turn's user messages (``None``: the last turn is over)."""
        if self.turn + 1 >= len(self.question):
            return None
        self.turn += 1
        self.model_steps.append([])
        return list(self.question[self.turn])

    async def finish(self) -> tuple[float, dict]:
        """The reward (BFCL's verdict: 1.0 valid) and its ``reward_extra_info``."""
        verdict = bfcl.check(self.entry, self.entry["ground_truth"], self.model_steps)
        info = {"bfcl_valid": bool(verdict["valid"]), "bfcl_error_type": verdict.get("error_type")}
        return (1.0 if verdict["valid"] else 0.0), info

    async def close(self) -> None:
        """Nothing to release."""


class VerlToolTask:
    """verl tools (``BaseTool`` subclasses and ``@function_tool`` functions) for a trajectory:
    one instance of each ``BaseTool`` created at the start (``create_kwargs`` from the row's
    ``tools_kwargs``), calls executed on it, the reward the sum of their ``calc_reward`` (or
    ``None``: verl's configured reward, ``tool_reward: reward_loop``), released at the end."""

    def __init__(
        self, tools: dict[str, Any], tools_kwargs: dict, tool_reward: str, max_response: int | None, side: str
    ) -> None:
        self.tools = [t.tool_schema.model_dump(exclude_unset=True, exclude_none=True) for t in tools.values()]
        self.by_name = tools
        self.max_response = max_response
        self.side = side
        self.kwargs = tools_kwargs or {}
        self.tool_reward = tool_reward
        self.instances: dict[str, str] = {}
        self.step_rewards: list[float] = []
        self.calls = 0

    def _kw(self, name: str, what: str) -> dict:
        return dict((self.kwargs.get(name) or {}).get(what) or {})

    async def start(self) -> None:
        """Creates an instance of every stateful tool."""
        from verl.tools.function_tool import FunctionTool

        for name, tool in self.by_name.items():
            if not isinstance(tool, FunctionTool):
                instance_id, _ = await tool.create(create_kwargs=self._kw(name, "create_kwargs"))
                self.instances[name] = instance_id

    async def _call(self, call: tuple[str, dict] | str) -> str:
        from verl.tools.function_tool import FunctionTool, normalize_function_tool_return

        if isinstance(call, str):
            return f"Not a tool call (a JSON object with name and arguments): {call}"
        name, args = call
        tool = self.by_name.get(name)
        if tool is None:
            return f"Unknown function '{name}'. Available tools: {list(self.by_name)}"
        try:
            if isinstance(tool, FunctionTool):
                response, reward, _ = normalize_function_tool_return(await tool.call(args))
            else:
                response, reward, _ = await tool.execute(
                    self.instances[name], args, **self._kw(name, "execute_kwargs")
                )
        except Exception as e:  # a failing tool is the model's observation, as in verl's loop
            return f"Error executing tool '{name}': {e}"
        if response.image or response.video:
            raise supo.SupoError(f"tool '{name}' returned images or videos; supo_agent passes text only")
        self.calls += 1
        if reward is not None:
            self.step_rewards.append(float(reward))
        return truncate(response.text or "", self.max_response, self.side)

    async def execute(self, text: str) -> list[dict] | None:
        """The tool messages answering the generation's calls (``None``: it made none)."""
        calls = parse_tool_blocks(text)
        if calls is None:
            return None
        return [{"role": "tool", "content": await self._call(c)} for c in calls]

    def next_turn(self) -> list[dict] | None:
        """No further user turns: a generation without a call is the answer."""
        return None

    async def finish(self) -> tuple[float | None, dict]:
        """The sum of the tools' ``calc_reward`` (``None`` for verl's reward loop)."""
        info = {"tool_calls": self.calls, "tool_rewards": list(self.step_rewards)}
        if self.tool_reward == "reward_loop":
            return None, info
        total = 0.0
        for name, instance_id in self.instances.items():
            total += float(await self.by_name[name].calc_reward(instance_id, **self._kw(name, "calc_reward_kwargs")))
        return total, info

    async def close(self) -> None:
        """Releases every instance ``start`` created."""
        for name, instance_id in self.instances.items():
            await self.by_name[name].release(instance_id, **self._kw(name, "release_kwargs"))
        self.instances = {}


def truncate(text: str, limit: int | None, side: str) -> str:
    """A tool response cut to ``limit`` characters as verl's ``tool_agent`` loop cuts it
    (``rollout.multi_turn.max_tool_response_length`` / ``tool_response_truncate_side``)."""
    if limit is None or len(text) <= limit:
        return text
    if side == "left":
        return "(truncated)..." + text[-limit:]
    if side == "right":
        return text[:limit] + "...(truncated)"
    half = limit // 2
    return text[:half] + "...(truncated)..." + text[-half:]


def load_verl_tools(tool_config_path: str | None, function_tool_path: str | None, given: list) -> dict[str, Any]:
    """verl tools by name: the worker's (``rollout.multi_turn.tool_config_path``), then those of
    the loop's own ``tool_config_path`` / ``function_tool_path``, loaded by verl's
    ``load_all_tools``; a bad configuration is a :class:`supo.SupoError` naming it."""
    tools = list(given)
    if tool_config_path or function_tool_path:
        from verl.tools.tool_registry import load_all_tools
        from verl.utils.import_utils import resolve_config_path

        try:  # relative paths resolved as verl's worker resolves its own
            tools += load_all_tools(
                resolve_config_path(tool_config_path) if tool_config_path else None,
                resolve_config_path(function_tool_path) if function_tool_path else None,
            )
        except Exception as e:
            where = " / ".join(p for p in (tool_config_path, function_tool_path) if p)
            raise supo.SupoError(f"supo_agent: cannot load the verl tools of {where}: {type(e).__name__}: {e}") from e
    by_name: dict[str, Any] = {}
    for t in tools:
        if t.name in by_name:
            raise supo.SupoError(f"supo_agent: two verl tools are named {t.name!r}")
        by_name[t.name] = t
    return by_name


@register("supo_agent")
class SupoAgentLoop(AgentLoopBase):
    """SUPO's summarization agent loop on BFCL multi-turn entries or verl tools (see the module
    docstring)."""

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
        tool_config_path: str | None = None,
        function_tool_path: str | None = None,
        tool_reward: str = "calc_reward",
        tools: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        if tool_reward not in ("calc_reward", "reward_loop"):
            raise supo.SupoError(f"supo_agent: tool_reward must be calc_reward or reward_loop, not {tool_reward!r}")
        self.tool_reward = tool_reward
        self.verl_tools = load_verl_tools(tool_config_path, function_tool_path, tools.tools if tools else [])
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

    def _task(self, kwargs: dict) -> BfclTask | VerlToolTask:
        """The row's environment: its BFCL entry, else the configured verl tools."""
        extra = kwargs.get("extra_info") or {}
        entry = extra.get("bfcl") or (json.loads(extra["bfcl_json"]) if extra.get("bfcl_json") else None)
        if entry:
            return BfclTask(entry)
        if self.verl_tools:
            tools = self.verl_tools
            if extra.get("tool_selection"):  # the row's subset, as in verl's tool_agent loop
                unknown = [n for n in extra["tool_selection"] if n not in tools]
                if unknown:
                    raise supo.SupoError(f"supo_agent: extra_info.tool_selection names unknown tools {unknown}")
                tools = {n: tools[n] for n in extra["tool_selection"]}
            multi_turn = self.rollout_config.get("multi_turn") or {}
            return VerlToolTask(
                tools,
                kwargs.get("tools_kwargs") or {},
                self.tool_reward,
                multi_turn.get("max_tool_response_length"),
                multi_turn.get("tool_response_truncate_side") or "middle",
            )
        raise supo.SupoError(
            "supo_agent needs extra_info.bfcl (a BFCL multi-turn entry) or verl tools "
            "(rollout.multi_turn.tool_config_path, or the loop's tool_config_path / function_tool_path)"
        )

    async def run(self, sampling_params: dict[str, Any], **kwargs: Any) -> list[AgentLoopOutput]:
        task = self._task(kwargs)
        try:
            await task.start()
            return await self._rollout(task, sampling_params, kwargs)
        finally:
            await task.close()

    async def _rollout(self, task: BfclTask | VerlToolTask, sampling_params: dict, kwargs: dict) -> list[AgentLoopOutput]:
        messages = list(kwargs["raw_prompt"])
        request_id = uuid.uuid4().hex
        trajectory_id = f"{kwargs.get('uid', request_id)}_{kwargs.get('session_id', 0)}"

        task_prompt = self._encode(self._render(messages, task.tools, True))
        cfg = self.context_config
        instruction = self._delta([{"role": "user", "content": cfg.summary_instruction}])
        prefix = self._encode(cfg.summary_prefix)
        builder = supo.TrajectoryBuilder(cfg, task_prompt, instruction, prefix)

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
            results = await task.execute(self.tokenizer.decode(ids, skip_special_tokens=True))
            if results is not None:
                builder.push_step(ids, lps, self._delta(results))
                continue
            user = task.next_turn()
            if user is not None:
                builder.push_step(ids, lps, self._delta(user))
            else:
                builder.push_answer(ids, lps)

        reward, reward_info = await task.finish()
        trajectory = builder.finish(str(kwargs.get("uid", trajectory_id)), 0.0 if reward is None else reward)
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
                        "reward_extra_info": dict(reward_info),
                    },
                )
            )
        return outputs
