#!/usr/bin/env bash
# SUPO on BFCL multi-turn with verl 0.9.1's V1 trainer, Qwen3-8B, one node of 8 GPUs (FSDP
# actor, vLLM rollout). Not run by the tests (no GPU there); python/tests/test_examples.py
# composes these overrides with verl's own ppo_trainer config and validates them.
#
#   pip install "supo-rs[verl] @ ./python" vllm          # on the cluster, with a Rust toolchain
#   supo synth --mode template --samples 2000 --seed 7 --out data/synth
#   python3 -m supo.verl.data data/synth/bfcl_questions.jsonl data/synth/bfcl_possible_answers.jsonl data/train.parquet
#   python3 -m supo.verl.data "$BFCL_EVAL_DIR/data/BFCL_v4_multi_turn_base.json" \
#       "$BFCL_EVAL_DIR/data/possible_answer/BFCL_v4_multi_turn_base.json" data/val.parquet
#   python/examples/verl/run_qwen3_bfcl_supo.sh
#
# Advantages: with adv_estimator=grpo the V1 trainer computes the group statistics from each
# session's final output and broadcasts them to all its segments (compute_advantage_for_multi_
# trajectories), which is SUPO's trajectory-level Eq. 3; supo_agent gives every segment the
# trajectory's reward and zero masks to overlong trajectories.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
data=${DATA:-data}
overrides=(
  algorithm.adv_estimator=grpo
  algorithm.norm_adv_by_std_in_grpo=true
  algorithm.use_kl_in_reward=false
  trainer.use_v1=true
  data.train_files=${data}/train.parquet
  data.val_files=${data}/val.parquet
  data.train_batch_size=64
  data.max_prompt_length=3072
  data.max_response_length=1024
  data.return_raw_chat=true
  actor_rollout_ref.model.path=Qwen/Qwen3-8B
  actor_rollout_ref.actor.strategy=fsdp
  actor_rollout_ref.actor.ppo_mini_batch_size=32
  actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=2
  actor_rollout_ref.actor.clip_ratio_low=0.2
  actor_rollout_ref.actor.clip_ratio_high=0.28
  actor_rollout_ref.actor.clip_ratio_c=3.0
  actor_rollout_ref.actor.loss_agg_mode=token-mean
  actor_rollout_ref.actor.use_kl_loss=false
  actor_rollout_ref.actor.entropy_coeff=0
  actor_rollout_ref.actor.optim.lr=1e-6
  actor_rollout_ref.rollout.name=vllm
  actor_rollout_ref.rollout.mode=async
  actor_rollout_ref.rollout.n=8
  actor_rollout_ref.rollout.prompt_length=3072
  actor_rollout_ref.rollout.response_length=1024
  actor_rollout_ref.rollout.calculate_log_probs=true
  actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=4
  actor_rollout_ref.rollout.tensor_model_parallel_size=2
  actor_rollout_ref.rollout.agent.default_agent_loop=supo_agent
  actor_rollout_ref.rollout.agent.agent_loop_config_path=${here}/supo_agent.yaml
  trainer.n_gpus_per_node=8
  trainer.nnodes=1
  trainer.total_epochs=3
  trainer.project_name=supo-bfcl
  trainer.experiment_name=qwen3-8b-supo-4k-x8
  trainer.logger=[console]
)
exec python3 -m verl.trainer.main_ppo "${overrides[@]}" "$@"
