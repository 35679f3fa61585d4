"""`supo_agent` on tools from verl's tool configuration: a tool YAML loaded by verl's own
`load_all_tools` naming verl's `BaseTool` (and a subclass that records its lifecycle), a
`@function_tool` file, rolled out against a real `supo serve` (its built-in model's vocabulary
cannot write `<tool_call>`, so it makes no call), and by a scripted policy over a byte tokenizer
whose calls reach the real verl tool objects, also under a working context that forces summaries."""

from __future__ import annotations

import asyncio
import re

import pytest

import supo
from conftest import Server, import_verl, supo_binary
from test_agent_loop import Recorder, ServeTokenizer

try:
    from verl.tools.base_tool import BaseTool
except ImportError:  # the tests below skip (SUPO_REQUIRE_VERL) through import_verl
    BaseTool = object


class RecordingTool(BaseTool):
    """verl's `BaseTool`, recording every lifecycle call it gets; its reward is how many times
    it was executed with `{"value": 7}`."""

    def __init__(self, config, tool_schema):
        super().__init__(config, tool_schema)
        self.log = []
        self.hits = {}

    async def create(self, instance_id=None, **kwargs):
        instance_id, response = await super().create(instance_id, **kwargs)
        self.log.append(("create", instance_id, kwargs))
        self.hits[instance_id] = 0
        return instance_id, response

    async def execute(self, instance_id, parameters, **kwargs):
        self.log.append(("execute", instance_id, dict(parameters)))
        self.hits[instance_id] += parameters.get("value") == 7
        return await super().execute(instance_id, parameters, **kwargs)

    async def calc_reward(self, instance_id, **kwargs):
        self.log.append(("calc_reward", instance_id, kwargs))
        return float(self.hits[instance_id])

    async def release(self, instance_id, **kwargs):
        self.log.append(("release", instance_id, kwargs))
        await super().release(instance_id, **kwargs)


SCHEMA = """    tool_schema:
      type: function
      function:
        name: {name}
        description: {desc}
        parameters:
          type: object
          properties:
            value: {{type: integer, description: a number}}
          required: [value]
"""


@pytest.fixture(scope="module")
def tool_files(tmp_path_factory):
    """A verl tool YAML (verl's BaseTool as `touch`, the recording subclass as `record`) and a
    `@function_tool` file (`add`), once per module: verl's function-tool registry is global."""
    return tool_config(tmp_path_factory.mktemp("verl-tools"))


def tool_config(tmp_path):
    text = "tools:\n"
    for cls, name, desc in (
        ("verl.tools.base_tool.BaseTool", "touch", "Updates the state."),
        (f"{__name__}.RecordingTool", "record", "Records a value."),
    ):
        text += f"  - class_name: {cls}\n    config: {{type: native}}\n" + SCHEMA.format(name=name, desc=desc)
    path = tmp_path / "tools.yaml"
    path.write_text(text)
    functions = tmp_path / "functions.py"
    functions.write_text(
        "from verl.tools.function_tool import function_tool\n\n"
        "@function_tool\n"
        "def add(a: int, b: int) -> str:\n"
        '    """Adds two numbers.\n\n    Args:\n        a: the first\n        b: the second\n    """\n'
        "    return str(a + b)\n"
    )
    return path, functions


def make_loop(config, client, tokenizer, **options):
    import hydra
    from verl.experimental.agent_loop.agent_loop import DictConfigWrap, ToolListWrap, _agent_loop_registry

    import supo.verl  # noqa: F401  (registers supo_agent)

    worker_tools = options.pop("worker_tools", [])
    return hydra.utils.instantiate(
        config={**_agent_loop_registry["supo_agent"], **options},
        trainer_config=DictConfigWrap(config=config),
        server_manager=client,
        tokenizer=tokenizer,
        processor=None,
        hf_model_type=None,
        dataset_cls=None,
        data_config=DictConfigWrap(config.data),
        tools=ToolListWrap(worker_tools),
    )


def rollout_config(response_length):
    from omegaconf import OmegaConf

    return OmegaConf.create(
        {"actor_rollout_ref": {"rollout": {"prompt_length": 512, "response_length": response_length}}, "data": {}}
    )


def check_segments(outputs, reward):
    """Outputs of one trajectory: consecutive segments, aligned masks, one reward."""
    assert outputs
    first = outputs[0].prompt_ids
    for k, o in enumerate(outputs):
        f = o.extra_fields
        assert f["supo_segment"] == k and f["supo_segments"] == len(outputs)
        assert len(o.response_ids) == len(o.response_mask) == len(o.response_logprobs)
        assert set(o.response_mask) <= {0, 1}
        assert o.reward_score == reward
        # Log-probs exactly where the mask is 1 (agent tokens), none elsewhere.
        assert all((m == 1) == (l != 0.0) for m, l in zip(o.response_mask, o.response_logprobs))
        if k > 0:
            assert outputs[k - 1].extra_fields["supo_summary"] is not None
            assert o.prompt_ids[: len(first)] == first and len(o.prompt_ids) > len(first)


@pytest.fixture(scope="module")
def server():
    import_verl("test_verl_tools")
    s = Server(supo_binary("test_verl_tools"), "--truncate-prompt", "--seed", "5")
    yield s
    s.close()


def test_verl_tool_config_against_supo_serve(server, tool_files):
    """The YAML's tools reach the prompt, each trajectory creates, scores and releases one
    instance of each BaseTool, and the outputs are SUPO segments with the tools' reward (the
    built-in model cannot write a call, so every trajectory answers at once)."""
    from verl.tools.tool_registry import initialize_tools_from_config

    import supo.verl

    path, functions = tool_files
    config = rollout_config(24)
    tokenizer = ServeTokenizer(server.base_url.removesuffix("/v1"))
    client = Recorder(supo.verl.CompletionsClient(config, server.base_url))
    # The worker's tools (rollout.multi_turn.tool_config_path, as verl loads them) plus the
    # loop's own function_tool_path.
    worker_tools = initialize_tools_from_config(str(path))
    loop = make_loop(
        config, client, tokenizer, worker_tools=worker_tools, function_tool_path=str(functions),
        max_steps=8, max_tokens_per_generation=24,
    )
    assert sorted(loop.verl_tools) == ["add", "record", "touch"]
    record = loop.verl_tools["record"]
    prompt = [{"role": "system", "content": "Use the tools."}, {"role": "user", "content": "Record 7."}]
    for i in range(3):
        before = len(record.log)
        outputs = asyncio.run(loop.run(
            {"temperature": 1.0}, raw_prompt=prompt, uid="t", session_id=str(i),
            tools_kwargs={"record": {"create_kwargs": {"seed": i}}},
        ))
        log = record.log[before:]
        # Lifecycle: one instance, created with the row's create_kwargs, scored, released.
        assert [e[0] for e in log if e[0] != "execute"] == ["create", "calc_reward", "release"]
        assert log[0][2] == {"create_kwargs": {"seed": i}}
        assert len({e[1] for e in log}) == 1
        reward = float(sum(1 for e in log if e[0] == "execute" and e[2].get("value") == 7))
        check_segments(outputs, reward)
        # The task prompt holds the three tools' OpenAI schemas.
        schemas = [t.tool_schema.model_dump(exclude_unset=True, exclude_none=True) for t in loop.verl_tools.values()]
        want = tokenizer.encode(tokenizer.apply_chat_template(prompt, tools=schemas, add_generation_prompt=True))
        assert outputs[0].prompt_ids == want
        info = outputs[-1].extra_fields["reward_extra_info"]
        assert info["tool_calls"] == 0 and info["tool_rewards"] == []  # the built-in model writes no call


class ByteTokenizer(ServeTokenizer):
    """UTF-8 bytes as token ids, with the same role-marker chat template."""

    def __init__(self) -> None:
        pass

    def encode(self, text, add_special_tokens=False):
        return list(text.encode())

    def decode(self, ids, skip_special_tokens=True):
        return bytes(ids).decode(errors="replace")


class ScriptedPolicy:
    """Writes the given texts in turn (log-prob -0.5 a token), truncated to the request's
    max_tokens, and `summary` when the prompt asks for a summary: a stand-in for a model that
    can write tool calls."""

    def __init__(self, texts, summary="I recorded 7.") -> None:
        self.texts = list(texts)
        self.summary = summary
        self.summaries = 0

    async def generate(self, request_id, *, prompt_ids, sampling_params, **kw):
        from verl.workers.rollout.replica import TokenOutput

        if supo.ContextConfig(10).summary_instruction in bytes(prompt_ids).decode(errors="replace"):
            self.summaries += 1
            text = self.summary
        else:
            text = self.texts.pop(0)
        ids = list(text.encode())[: sampling_params["max_tokens"]]
        return TokenOutput(token_ids=ids, log_probs=[-0.5] * len(ids))


def call(name, **args):
    import json

    return f'<tool_call>{json.dumps({"name": name, "arguments": args})}</tool_call>'


@pytest.mark.parametrize("tool_reward", ["calc_reward", "reward_loop"])
def test_verl_tool_calls_reach_the_tools(tool_files, tool_reward):
    import_verl("test_verl_tool_calls_reach_the_tools")
    path, functions = tool_files
    texts = [
        call("record", value=7),
        call("touch", value=1) + call("add", a=2, b=3),
        call("nosuch", value=1) + "<tool_call>not json</tool_call>",
        call("record", value=7) + call("record", value=8),
        "done",
    ]
    policy = ScriptedPolicy(texts)
    loop = make_loop(
        rollout_config(512), policy, ByteTokenizer(), tool_config_path=str(path),
        function_tool_path=str(functions), tool_reward=tool_reward, max_tokens_per_generation=512,
        working_context=8192,
    )
    record = loop.verl_tools["record"]
    outputs = asyncio.run(loop.run({}, raw_prompt=[{"role": "user", "content": "go"}], uid="u"))
    assert policy.texts == []
    assert len(outputs) == 1 and outputs[0].extra_fields["supo_finish"] == "Answered"
    # The recording tool got both value-7 calls and the value-8 one, on one instance.
    executes = [e[2] for e in record.log if e[0] == "execute"]
    assert executes == [{"value": 7}, {"value": 7}, {"value": 8}]
    assert record.log[-1][0] == "release"
    want = 2.0 if tool_reward == "calc_reward" else None
    check_segments(outputs, want)
    o = outputs[0]
    observed = bytes(t for t, m in zip(o.response_ids, o.response_mask) if m == 0).decode()
    agent = bytes(t for t, m in zip(o.response_ids, o.response_mask) if m == 1).decode()
    assert agent == "".join(texts)
    # The tools' results are the observations (mask 0): verl BaseTool's text, the function's sum,
    # verl-style errors for an unknown name and a block that is not a call.
    assert observed.count("Updated the tool state.") == 4  # touch once, record three times
    assert "<tool>\n5" in observed
    assert "Unknown function 'nosuch'" in observed and "Not a tool call" in observed
    info = o.extra_fields["reward_extra_info"]
    # Five calls ran (the unknown name and the non-call are answered by the loop itself).
    assert info["tool_calls"] == 5 and info["tool_rewards"] == [0.0] * 5
    if tool_reward == "calc_reward":
        assert [e[0] for e in record.log].count("calc_reward") == 1
    else:
        assert "calc_reward" not in [e[0] for e in record.log]


def test_verl_tools_under_the_working_context_rule(tool_files):
    """Calls that fill the working context: summaries start new segments, the tool instance
    keeps its state across them, one instance is created and released."""
    import_verl("test_verl_tools_under_the_working_context_rule")
    path, _ = tool_files
    policy = ScriptedPolicy([call("record", value=7)] * 10 + ["done"])
    loop = make_loop(
        rollout_config(128), policy, ByteTokenizer(), tool_config_path=str(path),
        max_tokens_per_generation=128,
    )
    first = len(ByteTokenizer().encode(ByteTokenizer().apply_chat_template(
        [{"role": "user", "content": "go"}],
        tools=[t.tool_schema.model_dump(exclude_unset=True, exclude_none=True) for t in loop.verl_tools.values()],
        add_generation_prompt=True,
    )))
    loop.context_config = supo.ContextConfig(first + 800, threshold=first + 300, max_summaries=7, max_steps=100)
    record = loop.verl_tools["record"]
    before = len(record.log)
    outputs = asyncio.run(loop.run({}, raw_prompt=[{"role": "user", "content": "go"}], uid="u"))
    log = record.log[before:]
    executes = sum(1 for e in log if e[0] == "execute")
    assert executes == 10 and policy.texts == [] and policy.summaries >= 2
    assert [e[0] for e in log if e[0] != "execute"] == ["create", "calc_reward", "release"]
    assert outputs[-1].extra_fields["supo_finish"] == "Answered"
    assert len(outputs) == policy.summaries + 1
    check_segments(outputs, 10.0)  # calc_reward: the instance's state survived the summaries
    for k in range(len(outputs) - 1):
        assert outputs[k].extra_fields["supo_summary"] == policy.summary


def test_tool_selection_and_verl_truncation(tool_files):
    """A row's `extra_info.tool_selection` limits its tools (schemas, instances, calls), and
    `rollout.multi_turn.max_tool_response_length` cuts responses as verl does."""
    from omegaconf import OmegaConf

    import_verl("test_tool_selection_and_verl_truncation")
    path, functions = tool_files
    config = rollout_config(512)
    config.actor_rollout_ref.rollout.multi_turn = OmegaConf.create(
        {"max_tool_response_length": 3, "tool_response_truncate_side": "right"}
    )
    policy = ScriptedPolicy([call("touch", value=1) + call("record", value=7), "done"])
    loop = make_loop(config, policy, ByteTokenizer(), tool_config_path=str(path),
                     function_tool_path=str(functions), working_context=8192)
    record = loop.verl_tools["record"]
    before = len(record.log)
    prompt = [{"role": "user", "content": "go"}]
    row = {"raw_prompt": prompt, "uid": "u", "extra_info": {"tool_selection": ["touch", "add"]}}
    (o,) = asyncio.run(loop.run({}, **row))
    assert record.log[before:] == []  # not selected: never created
    schemas = [loop.verl_tools[n].tool_schema.model_dump(exclude_unset=True, exclude_none=True) for n in ("touch", "add")]
    tok = ByteTokenizer()
    assert o.prompt_ids == tok.encode(tok.apply_chat_template(prompt, tools=schemas, add_generation_prompt=True))
    observed = bytes(t for t, m in zip(o.response_ids, o.response_mask) if m == 0).decode()
    assert "<tool>\nUpd...(truncated)" in observed
    assert "Unknown function 'record'. Available tools: ['touch', 'add']" in observed
    row["extra_info"] = {"tool_selection": ["touch", "nosuch"]}
    with pytest.raises(supo.SupoError, match=r"unknown tools \['nosuch'\]"):
        asyncio.run(loop.run({}, **row))


class NoLogprobs(ScriptedPolicy):
    """Writes one call, then a generation without log-probs (a misconfigured server)."""

    async def generate(self, request_id, *, prompt_ids, sampling_params, **kw):
        from verl.workers.rollout.replica import TokenOutput

        out = await super().generate(request_id, prompt_ids=prompt_ids, sampling_params=sampling_params)
        return out if self.texts else TokenOutput(token_ids=out.token_ids, log_probs=None)


def test_a_failed_rollout_still_releases_the_tools(tool_files):
    import_verl("test_a_failed_rollout_still_releases_the_tools")
    path, _ = tool_files
    loop = make_loop(rollout_config(512), NoLogprobs([call("record", value=7), "done"]), ByteTokenizer(),
                     tool_config_path=str(path), working_context=8192)
    record = loop.verl_tools["record"]
    before = len(record.log)
    with pytest.raises(supo.SupoError, match="no log-probs"):
        asyncio.run(loop.run({}, raw_prompt=[{"role": "user", "content": "go"}], uid="u"))
    assert [e[0] for e in record.log[before:]] == ["create", "execute", "release"]


def supo_error(match):
    """A SupoError matching `match`, raised directly or through hydra's instantiate (whose
    InstantiationException carries it as its cause)."""

    class Check:
        def __enter__(self):
            return self

        def __exit__(self, kind, e, tb):
            assert e is not None, "no error"
            while not isinstance(e, supo.SupoError) and e.__cause__ is not None:
                e = e.__cause__
            assert isinstance(e, supo.SupoError), repr(e)
            assert re.search(match, str(e)), str(e)
            return True

    return Check()


def test_verl_tool_config_errors(tmp_path, tool_files):
    import_verl("test_verl_tool_config_errors")
    config = rollout_config(8)
    missing = tmp_path / "missing.yaml"
    with supo_error("cannot load the verl tools of .*missing.yaml"):
        make_loop(config, None, ByteTokenizer(), tool_config_path=str(missing))
    with supo_error("cannot load the verl tools of nosuch/tools.yaml: FileNotFoundError"):
        make_loop(config, None, ByteTokenizer(), tool_config_path="nosuch/tools.yaml")  # resolved as verl does
    bad_class = tmp_path / "bad.yaml"
    bad_class.write_text("tools:\n  - class_name: verl.tools.base_tool.NoSuchTool\n    config: {type: native}\n")
    with supo_error("bad.yaml: AttributeError: .*NoSuchTool"):
        make_loop(config, None, ByteTokenizer(), tool_config_path=str(bad_class))
    bad_type = tmp_path / "type.yaml"
    bad_type.write_text("tools:\n  - class_name: verl.tools.base_tool.BaseTool\n    config: {type: mcp}\n")
    with supo_error("type.yaml: ValueError: 'mcp'"):
        make_loop(config, None, ByteTokenizer(), tool_config_path=str(bad_type))
    path, _ = tool_files
    with supo_error("two verl tools are named 'touch'"):
        from verl.tools.tool_registry import initialize_tools_from_config

        make_loop(config, None, ByteTokenizer(), tool_config_path=str(path),
                  worker_tools=initialize_tools_from_config(str(path)))
    with supo_error("tool_reward must be"):
        make_loop(config, None, ByteTokenizer(), tool_config_path=str(path), tool_reward="sum")
    loop = make_loop(config, None, ByteTokenizer())
    with supo_error("needs extra_info.bfcl .* or verl tools"):
        asyncio.run(loop.run({}, raw_prompt=[{"role": "user", "content": "x"}]))
