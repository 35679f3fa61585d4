"""`supo_agent` instantiated from verl's own agent-loop registry (as verl's AgentLoopWorker does,
with hydra), rolling out real BFCL entries against a real `supo serve` through
`CompletionsClient`, with a working context small enough to force summaries; then verl's own
V1 advantage path and loss functions on its outputs against `supo.loss`."""

from __future__ import annotations

import asyncio
import json
import urllib.request

import numpy as np
import pytest

import supo
from conftest import Server, import_verl, supo_binary
from test_bfcl import bfcl_data, entries
from test_verl import verl_reference


class ServeTokenizer:
    """The served model's own tokenizer (`supo serve`'s /tokenize and /detokenize), with a chat
    template of role markers: what the loop needs of a Hugging Face tokenizer."""

    def __init__(self, root: str) -> None:
        self.root = root

    def _post(self, path: str, body: dict) -> dict:
        req = urllib.request.Request(
            self.root + path, json.dumps(body).encode(), {"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.load(r)

    def apply_chat_template(self, messages, tools=None, add_generation_prompt=False, tokenize=False, **_):
        assert not tokenize
        parts = [f"<tools>\n{json.dumps(tools)}"] if tools else []
        parts += [f"<{m['role']}>\n{m['content']}" for m in messages]
        if add_generation_prompt:
            parts.append("<assistant>\n")
        return "\n".join(parts)

    def encode(self, text, add_special_tokens=False):
        return self._post("/tokenize", {"prompt": text})["tokens"]

    def decode(self, ids, skip_special_tokens=True):
        return self._post("/detokenize", {"tokens": list(ids)})["prompt"]


class Recorder:
    """Wraps the client: every generation's token ids and log-probs, in order."""

    def __init__(self, client) -> None:
        self.client = client
        self.calls = []

    async def generate(self, request_id, *, prompt_ids, sampling_params, **kw):
        out = await self.client.generate(request_id, prompt_ids=prompt_ids, sampling_params=sampling_params, **kw)
        self.calls.append((list(prompt_ids), list(out.token_ids), list(out.log_probs), sampling_params["max_tokens"]))
        return out


@pytest.fixture(scope="module")
def server():
    import_verl("test_agent_loop")
    s = Server(supo_binary("test_agent_loop"), "--truncate-prompt", "--seed", "3")
    yield s
    s.close()


def rollouts(server, group_size=3):
    import hydra
    from omegaconf import OmegaConf
    from verl.experimental.agent_loop.agent_loop import DictConfigWrap, ToolListWrap, _agent_loop_registry

    import supo.verl  # registers supo_agent

    data = bfcl_data("test_agent_loop")
    config = OmegaConf.create(
        {"actor_rollout_ref": {"rollout": {"prompt_length": 512, "response_length": 24, "name": "vllm"}}, "data": {}}
    )
    tokenizer = ServeTokenizer(server.base_url.removesuffix("/v1"))
    client = Recorder(supo.verl.CompletionsClient(config, server.base_url))
    loop_config = {
        **_agent_loop_registry["supo_agent"],
        "working_context": 150,
        "max_summaries": 2,
        "max_steps": 12,
        "max_tokens_per_generation": 24,
    }
    picked = entries(data, 2)
    # A second copy of the first entry whose turns ask for no calls: the checker passes it when
    # the loop reaches its last turn, so a group holds different rewards.
    easy = dict(picked[0][0], id="multi_turn_base_9000")
    picked.append((easy, [[] for _ in picked[0][1]]))
    out = []
    for e, (entry, gt) in enumerate(picked):
        for g in range(group_size):
            loop = hydra.utils.instantiate(
                config=loop_config,
                trainer_config=DictConfigWrap(config=config),
                server_manager=client,
                tokenizer=tokenizer,
                processor=None,
                hf_model_type=None,
                dataset_cls=None,
                data_config=DictConfigWrap(config.data),
                tools=ToolListWrap([]),
            )
            assert type(loop).__name__ == "SupoAgentLoop"
            row = {
                "raw_prompt": list(entry["question"][0]),
                "extra_info": {"bfcl": {**entry, "ground_truth": gt, "tools": []}},
                "uid": "task-0" if e != 1 else "task-1",  # entries 0 and 2 share a group
                "session_id": f"{e}{g}",
            }
            calls_before = len(client.calls)
            outputs = asyncio.run(loop.run({"temperature": 1.0, "top_p": 1.0, "top_k": -1}, **row))
            out.append((entry, gt, row, outputs, client.calls[calls_before:]))
    return out


def test_supo_agent_against_supo_serve_then_verl_equals_supo_loss(server):
    import torch
    from verl.experimental.agent_loop.agent_loop import AgentLoopOutput

    runs = rollouts(server)
    summaries = 0
    doc = {"config": {"masked_in_group_stats": True}, "trajectories": []}
    for entry, gt, row, outputs, calls in runs:
        assert outputs and all(isinstance(o, AgentLoopOutput) for o in outputs)
        x = [o.extra_fields for o in outputs]
        assert [f["supo_segment"] for f in x] == list(range(len(outputs)))
        assert {f["supo_trajectory"] for f in x} == {f"{row['uid']}_{row['session_id']}"}
        finish = x[0]["supo_finish"]
        overlong = finish in ("MaxSteps", "MaxSummaries", "ContextOverflow")
        reward = outputs[0].reward_score
        assert {o.reward_score for o in outputs} == {reward} and reward in (0.0, 1.0)
        # Reward: the checker's verdict; a run that did not reach every turn is force-terminated.
        if overlong:
            assert reward == 0.0
        assert (reward == 1.0) == x[-1]["reward_extra_info"]["bfcl_valid"]
        # Segments: c_1 is the task prompt; c_k (k > 1) starts with it and ends with the summary
        # that closed segment k-1, which is the last agent run of y_{k-1}.
        first = outputs[0].prompt_ids
        for k, o in enumerate(outputs):
            assert len(o.response_ids) == len(o.response_mask) == len(o.response_logprobs)
            if overlong:
                assert set(o.response_mask) <= {0}
            else:
                assert set(o.response_mask) <= {0, 1}
            if k > 0:
                summary = x[k - 1]["supo_summary"]
                assert summary is not None
                assert o.prompt_ids[: len(first)] == first and len(o.prompt_ids) > len(first)
                summaries += 1
            # Working-context bound: prompt + response never exceed W plus one generation.
            assert len(o.prompt_ids) + len(o.response_ids) <= 150 + 24 + 40
        # Log-probs: every agent run of every segment is one generation's tokens and log-probs
        # (non-agent positions 0), and generations the rule discarded are in no segment.
        gens = {tuple(c[1]): c[2] for c in calls}
        for o in outputs:
            assert np.all(np.array(o.response_logprobs) <= 0.0)
            resp, lps = o.response_ids, o.response_logprobs
            i = 0
            while i < len(resp):
                if lps[i] == 0.0:
                    i += 1
                    continue
                j = i
                while j < len(resp) and lps[j] != 0.0:
                    j += 1
                run = tuple(resp[i:j])
                assert any(run == g[: len(run)] for g in gens), "an agent run that no generation produced"
                i = j
        assert all(c[3] <= 24 for c in calls)
        rng = np.random.default_rng(len(doc["trajectories"]))
        doc["trajectories"].append(
            {
                "group": row["uid"],
                "reward": reward,
                "finish": finish,
                "segments": [
                    {
                        "old_logp": o.response_logprobs,
                        # The policy after an update: the old log-probs moved a little.
                        "logp": [l + float(d) for l, d in zip(o.response_logprobs, rng.normal(0, 0.1, len(o.response_ids)))],
                        "mask": [m for m in o.response_mask] if not overlong else supo_mask(o),
                    }
                    for o in outputs
                ],
            }
        )
    assert summaries >= 1, "the working context forced no summary"
    rewards = {t["reward"] for t in doc["trajectories"] if t["group"] == "task-0"}

    # verl's V1 advantages (compute_advantage_for_multi_trajectories) on the outputs' rows.
    from test_verl import verl_multi_trajectory_advantages

    torch.set_default_dtype(torch.float64)
    try:
        keys, rows, mask, verl_adv, ours = verl_multi_trajectory_advantages(doc)
        want = supo.loss(doc)
        ref = verl_reference().reference(doc)  # verl's ppo_loss / agg_loss
    finally:
        torch.set_default_dtype(torch.float32)
    traj = {id(t): i for i, t in enumerate(doc["trajectories"])}
    for r, (t, s) in enumerate(rows):
        n = len(s["logp"])
        expect = torch.tensor([want["advantages"][traj[id(t)]] * float(m) for m in mask[r, :n]], dtype=torch.float64)
        assert torch.allclose(verl_adv[r, :n].double(), expect, rtol=1e-6, atol=1e-9)
        assert torch.allclose(ours[r, :n].double(), expect, rtol=1e-6, atol=1e-9)
    for k in ("loss", "pg_loss", "clipfrac", "clipfrac_lower", "approx_kl"):
        assert abs(ref[k] - want[k]) <= 1e-6 * max(1.0, abs(want[k])), k
    flat = lambda g: [v for traj in g for seg in traj for v in seg]  # noqa: E731
    assert np.allclose(flat(ref["grad_logp"]), flat(want["grad_logp"]), rtol=1e-6, atol=1e-9)
    print(f"supo_agent: {len(doc['trajectories'])} trajectories, {summaries} summaries, task-0 rewards {rewards}")


def supo_mask(o):
    """An overlong output's agent tokens (its response_mask is 0): where log-probs were kept."""
    return [1 if l != 0.0 else 0 for l in o.response_logprobs]


def test_completions_client_maps_server_errors(server):
    from omegaconf import OmegaConf

    import supo.verl

    config = OmegaConf.create({"actor_rollout_ref": {"rollout": {"response_length": 4}}})
    client = supo.verl.CompletionsClient(config, server.base_url)
    out = asyncio.run(client.generate("r", prompt_ids=[1, 2, 3], sampling_params={"temperature": 1.0, "seed": 5}))
    assert 1 <= len(out.token_ids) <= 4 and len(out.log_probs) == len(out.token_ids)
    again = asyncio.run(client.generate("r", prompt_ids=[1, 2, 3], sampling_params={"temperature": 1.0, "seed": 5}))
    assert again.token_ids == out.token_ids  # the seed reaches the server
    with pytest.raises(supo.SupoError, match="HTTP 400"):
        asyncio.run(client.generate("r", prompt_ids=[10**9], sampling_params={}))
    closed = supo.verl.CompletionsClient(config, "http://127.0.0.1:9/v1", timeout_s=5)
    with pytest.raises(supo.SupoError, match="failed"):
        asyncio.run(closed.generate("r", prompt_ids=[1], sampling_params={}))


@pytest.mark.parametrize("in_stats", [True, False])
def test_overlong_trajectories_keep_zero_masks_or_leave(server, in_stats):
    import hydra
    from omegaconf import OmegaConf
    from verl.experimental.agent_loop.agent_loop import DictConfigWrap, ToolListWrap, _agent_loop_registry

    import supo.verl

    entry, gt = entries(bfcl_data("test_overlong_trajectories_keep_zero_masks_or_leave"), 1)[0]
    config = OmegaConf.create({"actor_rollout_ref": {"rollout": {"prompt_length": 512, "response_length": 8}}, "data": {}})
    loop = hydra.utils.instantiate(
        config={**_agent_loop_registry["supo_agent"], "max_steps": 1, "overlong_in_group_stats": in_stats},
        trainer_config=DictConfigWrap(config=config),
        server_manager=supo.verl.CompletionsClient(config, server.base_url),
        tokenizer=ServeTokenizer(server.base_url.removesuffix("/v1")),
        processor=None, hf_model_type=None, dataset_cls=None,
        data_config=DictConfigWrap(config.data), tools=ToolListWrap([]),
    )
    row = {"raw_prompt": list(entry["question"][0]), "uid": "t", "session_id": "0",
           "extra_info": {"bfcl_json": json.dumps({**entry, "ground_truth": gt, "tools": []})}}
    outputs = asyncio.run(loop.run({"temperature": 1.0}, **row))
    if not in_stats:
        assert outputs == []  # verl's V1 trainer then has no row of it: out of the statistics
        return
    assert outputs and outputs[-1].extra_fields["supo_finish"] == "MaxSteps"
    assert all(set(o.response_mask) == {0} for o in outputs) and outputs[0].reward_score == 0.0
    assert any(l != 0.0 for l in outputs[0].response_logprobs)  # the tokens are there, untrained
