#!/usr/bin/env bash
# Fuzzes the parsers and loaders for a fixed budget with cargo fuzz (libFuzzer; needs a nightly
# toolchain and `cargo install cargo-fuzz`):
#   call_string      BFCL call strings, parsed and executed on all eight classes
#   loss_input       `supo loss` input documents, parsed and run through the estimator
#   bfcl_entry       BFCL entries as `supo bfcl replay` and the checker read them
#   checkpoint       checkpoint files of the built-in model
#   serve_request    HTTP requests to `supo serve`'s router
#   client_response  chat-completions bodies as the client parses them
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]      (default: 60 s, every target)
#
# Seeds come from the repo's test data; the corpus grows in target/fuzz/corpus/TARGET and a
# crash lands in fuzz/artifacts/TARGET (each crash found becomes a regression test). Prints one
# line per target with the executions run; exits 1 when a target crashed.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(call_string loss_input bfcl_entry checkpoint serve_request client_response)
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  echo "fuzz.sh: needs a nightly toolchain and cargo-fuzz (cargo install cargo-fuzz)" >&2
  exit 2
fi

seeds=target/fuzz/seeds
rm -rf "$seeds" && mkdir -p "$seeds"/{call_string,loss_input,bfcl_entry,checkpoint,serve_request,client_response}
python3 - "$seeds" <<'PY'
import json, os, sys, glob
seeds = sys.argv[1]
def put(target, name, data):
    with open(os.path.join(seeds, target, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())
golden = [json.loads(l) for l in open("harness/bfcl/tests/data/bfcl_replay_multi_turn_base.jsonl")]
for i, e in enumerate(golden[:40]):
    put("call_string", f"g{i}", "\n".join(c for t in e["turns"] for c in t))
    put("bfcl_entry", f"g{i}", json.dumps({k: e[k] for k in ("id", "involved_classes", "initial_config", "long_context", "turns")}))
for p in ["examples/batch.json", *sorted(glob.glob("harness/cli/tests/data/supo-loss/batch-*.json"))]:
    put("loss_input", os.path.basename(p), open(p, "rb").read())
put("checkpoint", "magic", b"SUPO-CKPT\n\x01\x00\x00\x00")
chat = {"model": "builtin", "messages": [{"role": "user", "content": "find k1 k2 p3"}], "max_tokens": 4, "logprobs": True, "top_logprobs": 2, "seed": 7}
put("serve_request", "chat", b"\x00" + json.dumps(chat).encode())
put("serve_request", "tokenize", b"\x01" + json.dumps({"prompt": "find k1"}).encode())
put("serve_request", "models", b"\x02")
put("serve_request", "completions", b"\x03" + json.dumps({"model": "builtin", "prompt": [1, 2, 3], "max_tokens": 2}).encode())
msg = {"role": "assistant", "content": None, "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "ls", "arguments": "{\"a\": true}"}}]}
lp = {"content": [{"token": "token_id:5", "logprob": -0.5, "bytes": None, "top_logprobs": []}]}
put("client_response", "tool_call", json.dumps({"id": "x", "object": "chat.completion", "created": 1, "model": "m", "choices": [{"index": 0, "message": msg, "logprobs": lp, "finish_reason": "tool_calls"}], "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}}))
put("client_response", "text", json.dumps({"choices": [{"index": 0, "message": {"role": "assistant", "content": "hi", "tool_calls": None}, "logprobs": None, "finish_reason": "stop"}]}))
PY

status=0
for t in "${targets[@]}"; do
  corpus=target/fuzz/corpus/$t
  mkdir -p "$corpus"
  log=target/fuzz/$t.log
  if (cd fuzz && cargo +nightly fuzz run -s none "$t" "../$corpus" "../$seeds/$t" -- \
        -max_total_time="$seconds" -max_len=65536 -rss_limit_mb=4096 -print_final_stats=1) >"$log" 2>&1; then
    result=ok
  else
    result="CRASH (see $log and fuzz/artifacts/$t)"
    status=1
  fi
  runs=$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$' | tail -1)
  cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -1 | grep -oE '[0-9]+')
  echo "$t: ${runs:-?} executions in ${seconds} s, coverage ${cov:-?} edges, corpus $(ls "$corpus" | wc -l) inputs: $result"
done
exit $status
