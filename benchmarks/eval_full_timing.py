"""Wall time of one full evaluation: all 30 categories x N episodes (20 training categories on unseen instances,
10 held-out categories), one contact proposer, the fast simulated arm, the worker pool of `manipllm eval`.

    .venv/bin/manipllm env -- .venv/bin/python benchmarks/eval_full_timing.py --proposer random-object
    .venv/bin/manipllm env -- .venv/bin/python benchmarks/eval_full_timing.py --proposer model-cot \
        --checkpoint checkpoints/small-gpu/full-s0

Writes benchmarks/eval_full_timing_<proposer>.json and .md (the table is appended to by later runs of other
proposers through their own files). The episodes themselves land in --out (resumable, so delete it to re-time).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import time
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--proposer", default="random-object",
                   choices=["random-object", "random-part", "model-cot", "model-direct"])
    p.add_argument("--checkpoint", default=None)
    p.add_argument("--pull", default="aia", choices=["aia", "straight"])
    p.add_argument("--episodes", type=int, default=20)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="results/bench_eval_full")
    a = p.parse_args()

    from manipllm_ros.evaluation.runner import EvalConfig, run_eval

    out = Path(a.out) / a.proposer
    shutil.rmtree(out, ignore_errors=True)  # a timing must not resume earlier episodes
    rows, total_t, total_n = [], 0.0, 0
    load0 = os.getloadavg()
    for split in ("test_seen", "test_unseen"):
        cfg = EvalConfig(out=out / split, proposer=a.proposer, checkpoint=a.checkpoint, pull=a.pull, split=split,
                         episodes_per_category=a.episodes, seed=a.seed, workers=a.workers)
        t0 = time.perf_counter()
        s = run_eval(cfg)
        dt = time.perf_counter() - t0
        n = s["overall"]["n"]
        cats = len(s["per_category"])
        rows.append({"split": split, "categories": cats, "episodes": n, "wall_s": dt, "episodes_per_s": n / dt,
                     "initial": s["overall"]["initial"], "long": s["overall"]["long"]})
        total_t, total_n = total_t + dt, total_n + n
    res = {
        "proposer": a.proposer, "checkpoint": a.checkpoint, "pull": a.pull, "episodes_per_category": a.episodes,
        "workers": a.workers, "seed": a.seed, "splits": rows, "total_wall_s": total_t, "total_episodes": total_n,
        "cpu_count": os.cpu_count(), "loadavg_before": load0, "loadavg_after": os.getloadavg(),
        "machine": platform.platform(), "date_utc": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }
    stem = HERE / f"eval_full_timing_{a.proposer}"
    stem.with_suffix(".json").write_text(json.dumps(res, indent=2) + "\n")
    lines = [
        f"# Full evaluation wall time: {a.proposer}" + (f" ({a.checkpoint})" if a.checkpoint else ""),
        "",
        f"`benchmarks/eval_full_timing.py --proposer {a.proposer}` on {res['date_utc']}: 30 categories x "
        f"{a.episodes} episodes, pull {a.pull}, fast simulated arm, {a.workers} worker processes, "
        f"{res['cpu_count']} CPU cores (load average before/after: {load0[0]:.2f} / {res['loadavg_after'][0]:.2f}; "
        "the machine is shared, so this is an upper bound for an idle one).",
        "",
        "| split | categories | episodes | wall time (s) | episodes/s | initial | long |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['split']} | {r['categories']} | {r['episodes']} | {r['wall_s']:.0f} | "
                     f"{r['episodes_per_s']:.2f} | {r['initial']:.2f} | {r['long']:.2f} |")
    lines.append(f"| **total** | 30 | {total_n} | {total_t:.0f} ({total_t / 60:.1f} min) | {total_n / total_t:.2f} "
                 "| | |")
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
