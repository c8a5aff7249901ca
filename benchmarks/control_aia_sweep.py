#!/usr/bin/env python3
"""Sweep AIA's N (num_probes) and eps1 on the fast arm: long-distance success and time per episode.

    .venv/bin/python benchmarks/control_aia_sweep.py --episodes 30 --workers 2 >> benchmarks/control_aia.md
"""

from __future__ import annotations

import argparse
import itertools
import os
from concurrent.futures import ProcessPoolExecutor

import numpy as np

os.environ.setdefault("MUJOCO_GL", "egl")

from control_aia_bench import FAST_AIA  # noqa: E402

from manipllm_ros.control.config import AIAConfig  # noqa: E402
from manipllm_ros.control.episodes import REVOLUTE_CATEGORIES, run_flying_episode  # noqa: E402


def _one(args: tuple) -> tuple:
    n, eps1, i, noise_max = args
    rng = np.random.default_rng([0, 1000 + i, 7])
    noise = float(rng.uniform(0.0, noise_max))
    r = run_flying_episode(REVOLUTE_CATEGORIES[i % len(REVOLUTE_CATEGORIES)], 1000 + i, "aia",
                           AIAConfig(**FAST_AIA, num_probes=n, eps1=eps1), direction_noise_deg=noise, rng_seed=0)
    return n, eps1, r.long_success, r.joint_delta, r.wall_time, r.sim_time


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--episodes", type=int, default=30)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--noise-max", type=float, default=60.0)
    a = p.parse_args()
    grid = list(itertools.product((3, 5, 7), (0.25, 0.5, 1.0)))
    jobs = [(n, e, i, a.noise_max) for n, e in grid for i in range(a.episodes)]
    with ProcessPoolExecutor(a.workers) as ex:
        rows = list(ex.map(_one, jobs))
    print(f"\n## AIA parameter sweep (fast arm, run 0, first {a.episodes} episodes, direction error <= "
          f"{a.noise_max} deg)\n")
    print("| N | eps1 | long success | mean dq (rad) | sim s / episode | wall s / episode |")
    print("|---|---|---|---|---|---|")
    for n, e in grid:
        rs = [r for r in rows if r[0] == n and r[1] == e]
        print(f"| {n} | {e} | {np.mean([r[2] for r in rs]):.2f} | {np.mean([r[3] for r in rs]):.3f} | "
              f"{np.mean([r[5] for r in rs]):.1f} | {np.mean([r[4] for r in rs]):.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
