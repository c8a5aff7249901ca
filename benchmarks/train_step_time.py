"""Seconds per optimizer step of the `small` preset on this machine, at several input sizes: what a fine-tune at
a higher resolution would cost on CPU. Real trainer (batch 8 x 2 accumulation, part supervision, the shipped
task mix), toy samples (training/synthetic.py), steps 10-30 timed after warm-up. Prints a Markdown table.

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/train_step_time.py 224x168 336x252 > benchmarks/train_step_time.md
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
from pathlib import Path

from manipllm_ros.training.config import preset
from manipllm_ros.training.data import prepare_samples
from manipllm_ros.training.synthetic import synthetic_sample
from manipllm_ros.training.trainer import train

TASKS = {"category": 0.0, "affordance": 1.0, "pose": 1.0, "masked_pose": 1.0, "cot": 0.0, "grounding": 2.0}


def seconds_per_step(width: int, height: int, steps: int = 30) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        cfg = preset("small", output_dir=tmp, max_steps=steps, eval_every=0, save_every=0, part_supervision=1.0,
                     progress=False, log_every=10, model={"image_width": width, "image_height": height,
                                                          "device": "cpu", "cpu_threads": 2},
                     data={"task_weights": TASKS, "max_val_samples": 1})
        samples = prepare_samples([synthetic_sample(i) for i in range(64)], (width, height))
        train(cfg, samples, samples[:1])
        log = [json.loads(x) for x in (Path(tmp) / "metrics.jsonl").read_text().splitlines()]
        t = {r["step"]: r["elapsed_s"] for r in log if r.get("kind") == "train"}
        return (t[steps] - t[10]) / (steps - 10)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("sizes", nargs="+", help="WxH, multiples of 28")
    args = ap.parse_args()
    print(f"`small` preset training steps (batch 8 x 2, part supervision), {os.cpu_count()} CPU cores, "
          f"{platform.processor() or platform.machine()}, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}.\n")
    print("| input | merged image tokens | s per step | 1000 steps |")
    print("|---|---|---|---|")
    for size in args.sizes:
        w, h = (int(x) for x in size.split("x"))
        s = seconds_per_step(w, h)
        print(f"| {w}x{h} | {w // 28}x{h // 28} | {s:.2f} | {s * 1000 / 60:.0f} min |", flush=True)


if __name__ == "__main__":
    main()
