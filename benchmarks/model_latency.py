"""Latency of PosePredictor on CPU: tiny and small presets, chain of thought vs direct, image-prefix (KV cache)
reuse on vs off, batch 1 and 4. Prints a Markdown table; `--out` writes it to a file.

The models are untrained (random init): their answers do not parse, so each turn's decoding budget is set to the
real answer's token length (category, the templated reasoning, the pose) and the table reports how many tokens
were actually generated. Timings are medians over --runs calls after one warm-up call.

    .venv/bin/python benchmarks/model_latency.py --runs 5 --out benchmarks/model_latency.md
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch

from manipllm_ros import prompts as P
from manipllm_ros.model.policy import PosePredictor
from manipllm_ros.training.config import preset
from manipllm_ros.training.synthetic import synthetic_sample


def answer_lengths(pred: PosePredictor, sample: dict) -> tuple[int, int, int]:
    pr = pred.vlm.processor
    ex = P.cot_example(sample, model_size=(pr.image_width, pr.image_height))
    return tuple(len(pr.answer_ids(t.answer)) for t in ex.turns)  # type: ignore[return-value]


def bench(name: str, runs: int, batch_sizes: list[int]) -> list[dict]:
    cfg = preset(name).model.model_copy(update={"device": "cpu"})
    pred = PosePredictor.from_config(cfg)
    s = synthetic_sample(0)
    lc, lr, lp = answer_lengths(pred, s)
    pred.vlm.cfg = cfg.model_copy(update={"max_new_tokens_category": lc, "max_new_tokens_reasoning": lr,
                                          "max_new_tokens_pose": lp})  # fmt: skip
    n_params = sum(p.numel() for p in pred.vlm.peft.parameters())
    rows = []
    for bs in batch_sizes:
        imgs = [synthetic_sample(i)["rgb"] for i in range(bs)]
        ins = [s["instruction"]] * bs
        for mode, cot, reuse in (("CoT, prefix reuse on", True, True), ("CoT, prefix reuse off", True, False),
                                 ("direct", False, True)):  # fmt: skip
            pred.predict_batch(imgs, ins, chain_of_thought=cot, reuse_prefix=reuse)  # warm-up
            totals, turns = [], []
            for _ in range(runs):
                t0 = time.perf_counter()
                pred.predict_batch(imgs, ins, chain_of_thought=cot, reuse_prefix=reuse)
                totals.append((time.perf_counter() - t0) * 1e3)
            tok = (lc + lr + lp) if cot else lp
            gen = statistics.mean(pred.last_generated_tokens)
            rows.append(dict(model=name, params=n_params, image=f"{cfg.image_width}x{cfg.image_height}",
                             image_tokens=pred.vlm.processor.n_image_tokens, batch=bs, mode=mode,
                             budget_tokens=tok, generated=gen, median_ms=statistics.median(totals),
                             min_ms=min(totals), per_image_ms=statistics.median(totals) / bs))  # fmt: skip
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--models", nargs="+", default=["tiny", "small"])
    ap.add_argument("--batch", nargs="+", type=int, default=[1, 4])
    ap.add_argument("--out")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    rows = []
    for m in a.models:
        rows += bench(m, a.runs, a.batch)
    lines = [
        "# PosePredictor latency on CPU",
        "",
        f"Machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, {a.threads} thread(s), "
        f"shared with other jobs (numbers are medians of {a.runs} runs; expect noise). Untrained random-init "
        "models; decoding budgets = the real answers' token lengths (category + templated reasoning + pose), "
        "greedy, float32.",
        "",
        "| model | params | model image | image tokens | batch | mode | token budget | tokens generated (incl. 1 end-of-turn per turn) | median ms | min ms | ms per image |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['model']} | {r['params'] / 1e6:.2f} M | {r['image']} | {r['image_tokens']} | {r['batch']} | "
                     f"{r['mode']} | {r['budget_tokens']} | {r['generated']:.0f} | {r['median_ms']:.0f} | {r['min_ms']:.0f} | "
                     f"{r['per_image_ms']:.0f} |")  # fmt: skip
    text = "\n".join(lines) + "\n"
    print(text)
    if a.out:
        with open(a.out, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
