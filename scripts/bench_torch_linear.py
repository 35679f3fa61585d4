#!/usr/bin/env python3
"""PyTorch's and verl's equivalents of `supo bench linear`, on the CPU, for the same shapes.

Hidden states [N, D] and a vocabulary head [V, D] → per-token log-probs of the targets → verl's
vanilla clipped surrogate with dual clip (clamp ±20, clip 0.2/0.28, c = 3) → token-mean →
backward into the hidden states and the head. The log-probs come from one of the paths a verl
user would run instead (--path):

  unfused      logits = h·Wᵀ, log_softmax in float32 (verl's `logprobs_from_logits`), gather
  lce          torch.nn.functional.linear_cross_entropy(reduction='none'), reference path
  lce-chunked  the same with LinearCrossEntropyOptions(batch_chunk_size=--chunk)
  verl         verl 0.9.1's FusedLinearForPPO(chunk_size=--chunk, impl_backend='torch')

Median of --repeats runs after --warmup runs; peak growth of resident memory during a run
(VmHWM after resetting it via /proc/self/clear_refs), gradients included. Prints one JSON line
like `supo bench linear`.
"""
import argparse
import json
import statistics
import time

import torch


def rss_kib(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1])
    return 0


def reset_peak():
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    return rss_kib("VmRSS:") * 1024


def logprobs_fn(path, chunk):
    """The function (hidden, weight, targets) -> log π(target) of one path."""
    if path == "unfused":
        def f(h, w, t):
            logits = h @ w.T
            return torch.log_softmax(logits.float(), dim=-1).gather(-1, t[:, None]).squeeze(-1)
        return f
    if path in ("lce", "lce-chunked"):
        options = (torch.nn.LinearCrossEntropyOptions(batch_chunk_size=chunk)
                   if path == "lce-chunked" else None)

        def f(h, w, t):
            ce = torch.nn.functional.linear_cross_entropy(
                h, w, t, reduction="none", options=options)
            return -ce.float()
        return f
    if path == "verl":
        from verl.utils.experimental.torch_functional import FusedLinearForPPO
        fused = FusedLinearForPPO(chunk_size=chunk, impl_backend="torch")

        def f(h, w, t):
            logp, _entropy = fused(h, w, t)
            return logp.float()
        return f
    raise ValueError(path)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--path", choices=["unfused", "lce", "lce-chunked", "verl"], required=True)
    p.add_argument("--tokens", type=int, default=4096)
    p.add_argument("--hidden", type=int, default=1024)
    p.add_argument("--vocab", type=int, default=32768)
    p.add_argument("--chunk", type=int, default=512)
    p.add_argument("--dtype", choices=["f32", "bf16"], default="f32")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    dtype = {"f32": torch.float32, "bf16": torch.bfloat16}[a.dtype]
    g = torch.Generator().manual_seed(0)
    n, d, v = a.tokens, a.hidden, a.vocab
    hidden = (torch.rand(n, d, generator=g) * 2 - 1).to(dtype).requires_grad_()
    weight = ((torch.rand(v, d, generator=g) - 0.5) * (2 / d**0.5)).to(dtype).requires_grad_()
    targets = torch.randint(0, v, (n,), generator=g)
    old = -torch.log(torch.tensor(float(v))) + 0.3 * (torch.rand(n, generator=g) - 0.5)
    adv = 2 * torch.rand(n, generator=g) - 1
    mask = torch.ones(n)
    logprobs = logprobs_fn(a.path, a.chunk)

    def step():
        logp = logprobs(hidden, weight, targets)
        neg_kl = torch.clamp(logp - old, min=-20.0, max=20.0)
        ratio = torch.exp(neg_kl)
        pg1 = -adv * ratio
        pg2 = -adv * torch.clamp(ratio, 1 - 0.2, 1 + 0.28)
        clip1 = torch.maximum(pg1, pg2)
        clip2 = torch.min(-adv * 3.0, clip1)
        pg = torch.where(adv < 0, clip2, clip1)
        loss = (pg * mask).sum() / mask.sum()
        loss.backward()
        return loss.item()

    runs, peak, loss = [], 0, 0.0
    for i in range(a.warmup + a.repeats):
        hidden.grad = None
        weight.grad = None
        before = reset_peak()
        t0 = time.perf_counter()
        loss = step()
        dt = time.perf_counter() - t0
        peak = max(peak, rss_kib("VmHWM:") * 1024 - before)
        if i >= a.warmup:
            runs.append(dt)
    median = statistics.median(runs)
    print(json.dumps({
        "median_s": median,
        "peak_rss_delta_bytes": peak,
        "runs_s": runs,
        "backend": f"pytorch {torch.__version__} {a.path} ({torch.get_num_threads()} threads)",
        "dtype": a.dtype,
        "tokens": n,
        "hidden": d,
        "vocab": v,
        "chunk": a.chunk,
        "gflop_per_s": 6.0 * n * d * v / median / 1e9,
        "loss": loss,
    }))


if __name__ == "__main__":
    main()
