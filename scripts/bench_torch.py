#!/usr/bin/env python3
"""PyTorch's equivalent of `supo bench loss`, on the CPU, for the same shapes.

log_softmax (in float32, as verl's `logprobs_from_logits` does) → gather → verl's vanilla
clipped surrogate with dual clip (`compute_policy_loss`: clamp ±20, clip 0.2/0.28, c = 3) →
token-mean → backward into the logits. Median of --repeats runs after --warmup runs; peak growth
of resident memory during a run (VmHWM after resetting it via /proc/self/clear_refs). Prints one
JSON line like `supo bench loss`.
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


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--tokens", type=int, default=4096)
    p.add_argument("--vocab", type=int, default=32768)
    p.add_argument("--dtype", choices=["f32", "bf16", "f16"], default="f32")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    dtype = {"f32": torch.float32, "bf16": torch.bfloat16, "f16": torch.float16}[a.dtype]
    g = torch.Generator().manual_seed(0)
    n, v = a.tokens, a.vocab
    logits = (torch.rand(n, v, generator=g) * 4 - 2).to(dtype).requires_grad_()
    targets = torch.randint(0, v, (n,), generator=g)
    old = -torch.log(torch.tensor(float(v))) + 0.3 * (torch.rand(n, generator=g) - 0.5)
    adv = 2 * torch.rand(n, generator=g) - 1
    mask = torch.ones(n)

    def step():
        logp_all = torch.log_softmax(logits.float(), dim=-1)
        logp = logp_all.gather(-1, targets[:, None]).squeeze(-1)
        neg_kl = torch.clamp(logp - old, min=-20.0, max=20.0)
        ratio = torch.exp(neg_kl)
        pg1 = -adv * ratio
        pg2 = -adv * torch.clamp(ratio, 1 - 0.2, 1 + 0.28)
        clip1 = torch.maximum(pg1, pg2)
        pg3 = -adv * 3.0
        clip2 = torch.min(pg3, clip1)
        pg = torch.where(adv < 0, clip2, clip1)
        loss = (pg * mask).sum() / mask.sum()
        loss.backward()
        return loss.item()

    runs, peak, loss = [], 0, 0.0
    for i in range(a.warmup + a.repeats):
        logits.grad = None
        before = reset_peak()
        t0 = time.perf_counter()
        loss = step()
        dt = time.perf_counter() - t0
        peak = max(peak, rss_kib("VmHWM:") * 1024 - before)
        if i >= a.warmup:
            runs.append(dt)
    print(json.dumps({
        "median_s": statistics.median(runs),
        "peak_rss_delta_bytes": peak,
        "runs_s": runs,
        "backend": f"pytorch {torch.__version__} cpu ({torch.get_num_threads()} threads)",
        "dtype": a.dtype,
        "tokens": n,
        "vocab": v,
        "loss": loss,
    }))


if __name__ == "__main__":
    main()
