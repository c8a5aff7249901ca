"""Benchmark of `manipllm sim collect`: successful samples per second (per core) and per-stage time.

Runs real collections (training categories, default settings) into a temporary folder with 1 and 2 worker
processes and prints a Markdown table; `--write` also stores it as benchmarks/sim_collect.md.
Stage times are CPU-seconds spent per successful sample inside the workers: build (object generation + MuJoCo
compile), render (RGB + segmentation/depth + affordance, including renderer creation per object), physics
(approach, attach, pull, for every attempt), encode (PNG + row), write (parquet).

    .venv/bin/python benchmarks/sim_collect_bench.py --samples 300 --write
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

from manipllm_ros.sim.collect import CollectConfig, collect
from manipllm_ros.sim.objects import TRAIN_CATEGORIES

TARGET = 10_000


def run(samples: int, workers: int, seed: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        # one shard per training category, so every category (slow sliders included) is in the measurement
        cfg = CollectConfig(out=Path(tmp) / "ds", num_samples=samples, workers=workers, seed=seed,
                            categories=list(TRAIN_CATEGORIES), progress=False,
                            samples_per_shard=max(1, samples // len(TRAIN_CATEGORIES)))
        load0 = os.getloadavg()[0]
        t0 = time.perf_counter()
        s = collect(cfg)
        wall = time.perf_counter() - t0
        load1 = os.getloadavg()[0]
    n = s["successes"]
    st = s["this_run"]["stage_cpu_s"]
    per = {k: 1000 * st.get(k, 0.0) / max(n, 1) for k in ("build", "render", "physics", "encode", "write")}
    return {"workers": workers, "samples": n, "attempts": s["attempts"], "wall": wall, "sps": n / wall,
            "sps_core": n / wall / workers, "per": per, "eta_10k_min": TARGET / (n / wall) / 60,
            "load": (load0 + load1) / 2, "per_category": s["per_category"], "errors": s["errors"]}


def table(rows: list[dict]) -> str:
    out = ["| workers | samples | attempts | success % | wall s | samples/s | samples/s/core | 10k samples (min) "
           "| build ms | render ms | physics ms | encode ms | write ms | load avg |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        p = r["per"]
        rate = 100 * r["samples"] / r["attempts"]
        out.append(f"| {r['workers']} | {r['samples']} | {r['attempts']} | {rate:.0f} "
                   f"| {r['wall']:.1f} | {r['sps']:.2f} | {r['sps_core']:.2f} | {r['eta_10k_min']:.0f} "
                   f"| {p['build']:.0f} | {p['render']:.0f} | {p['physics']:.0f} | {p['encode']:.0f} "
                   f"| {p['write']:.1f} | {r['load']:.1f} |")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=400)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--write", action="store_true", help="write benchmarks/sim_collect.md")
    args = ap.parse_args()
    rows = [run(args.samples if w > 1 else max(args.samples // 2, 20), w, args.seed) for w in args.workers]
    md = table(rows)
    print(md)
    if args.write:
        cats = rows[-1]["per_category"]
        cmd = f"benchmarks/sim_collect_bench.py --samples {args.samples} --write"
        text = (f"# sim collect benchmark\n\n`{cmd}`"
                f" on {platform.node()} ({os.cpu_count()} cores, CPU-only EGL/llvmpipe rendering), "
                f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.\n\n{md}\n\n"
                "Stage columns: CPU milliseconds per successful sample inside the workers (physics counts every "
                "attempt, failed ones too). `load avg` is the machine's 1-minute load during the run: other jobs "
                "shared the 2 cores, so numbers on an idle machine are better.\n\n"
                f"Per-category successes of the last run: {', '.join(f'{k} {v}' for k, v in cats.items())}.\n")
        Path(__file__).with_name("sim_collect.md").write_text(text)


if __name__ == "__main__":
    main()
