"""The verl example (python/examples/verl): its overrides compose with verl 0.9.1's own
ppo_trainer config and pass verl's `validate_config`; its agent-loop YAML loads as verl loads
it and names `supo_agent` with arguments SupoAgentLoop takes; `supo.verl.data` writes the
parquet rows the loop reads."""

from __future__ import annotations

import inspect
import json
import subprocess
from pathlib import Path

from conftest import ROOT, import_verl
from test_bfcl import bfcl_data

EXAMPLE = ROOT / "python" / "examples" / "verl"


def overrides() -> list[str]:
    script = EXAMPLE / "run_qwen3_bfcl_supo.sh"
    out = subprocess.run(
        ["bash", "-c", f'here={EXAMPLE}; data=data; eval "$(sed -n "/^overrides=(/,/^)/p" {script})"; printf "%s\\n" "${{overrides[@]}}"'],
        capture_output=True, text=True, check=True,
    )
    lines = out.stdout.splitlines()
    assert len(lines) > 20
    return lines


def test_the_launch_overrides_load_with_verls_config_code():
    verl = import_verl("test_the_launch_overrides_load_with_verls_config_code")
    from hydra import compose, initialize_config_dir
    from verl.trainer.ppo.utils import need_critic, need_reference_policy
    from verl.utils.config import validate_config

    config_dir = Path(verl.__file__).parent / "trainer" / "config"
    with initialize_config_dir(config_dir=str(config_dir), version_base=None):
        cfg = compose(config_name="ppo_trainer", overrides=overrides())
    assert cfg.actor_rollout_ref.rollout.agent.default_agent_loop == "supo_agent"
    assert cfg.algorithm.adv_estimator == "grpo" and cfg.trainer.use_v1
    validate_config(cfg, use_reference_policy=need_reference_policy(cfg), use_critic=need_critic(cfg))


def test_the_agent_loop_yaml_names_supo_agent():
    import_verl("test_the_agent_loop_yaml_names_supo_agent")
    import hydra
    from omegaconf import OmegaConf

    from supo.verl import SupoAgentLoop

    (entry,) = OmegaConf.load(EXAMPLE / "supo_agent.yaml")  # as AgentLoopWorker loads it
    assert entry.name == "supo_agent"
    assert hydra.utils.get_class(entry._target_) is SupoAgentLoop
    params = inspect.signature(SupoAgentLoop.__init__).parameters
    for key in entry:
        if key not in ("name", "_target_"):
            assert key in params, key


def test_bfcl_to_parquet(tmp_path):
    import_verl("test_bfcl_to_parquet")
    import pandas as pd

    from supo.verl import data as conv

    d = bfcl_data("test_bfcl_to_parquet")
    q = tmp_path / "q.jsonl"
    a = tmp_path / "a.jsonl"
    q.write_text("\n".join((d / "BFCL_v4_multi_turn_base.json").read_text().splitlines()[:3]))
    a.write_text((d / "possible_answer" / "BFCL_v4_multi_turn_base.json").read_text())
    out = tmp_path / "train.parquet"
    assert conv.main([str(q), str(a), str(out)]) == 0
    df = pd.read_parquet(out)
    assert len(df) == 3 and list(df["agent_name"]) == ["supo_agent"] * 3
    entry = json.loads(df["extra_info"][0]["bfcl_json"])
    assert entry["id"] == "multi_turn_base_0" and entry["ground_truth"][0][0] == "cd(folder='document')"
    assert df["prompt"][0][0]["role"] == "system" and df["prompt"][0][1]["role"] == "user"
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{not json\n")
    assert conv.main([str(bad), str(a), str(tmp_path / "x.parquet")]) == 2
    assert not (tmp_path / "x.parquet").exists()
