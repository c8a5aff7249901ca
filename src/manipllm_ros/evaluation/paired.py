"""Two matrix rows on the same episodes, compared episode by episode.

Rows of one matrix run see the same scenes (runner.episode_specs), so the fair test of "does B open more than A"
is paired: b = episodes only B opened, c = episodes only A opened, and the two-sided exact sign (McNemar) test
asks whether b and c could come from one coin. The per-seed difference of rates gives the run-to-run spread.
"""

from __future__ import annotations

from math import comb
from pathlib import Path

import numpy as np

from manipllm_ros.evaluation.runner import read_episodes


def sign_test(b: int, c: int) -> float:
    """Two-sided exact binomial p-value of b successes in b + c fair coin flips."""
    n = b + c
    if n == 0:
        return 1.0
    k = min(b, c)
    return min(1.0, 2 * sum(comb(n, i) for i in range(k + 1)) / 2**n)


def pooled_episodes(root: Path, row: str, split: str, seeds: list[int]) -> list[dict]:
    """Every finished episode of one row and split, over the seeds (for rates pooled over seeds)."""
    return [e for s in seeds for e in read_episodes(Path(root) / f"seed{s}" / split / row).values()]


def _sd(x: list[float]) -> float:
    return float(np.std(x, ddof=1)) if len(x) > 1 else 0.0


def compare_rows(root: Path, row_a: str, row_b: str, split: str, seeds: list[int],
                 metric: str = "initial_success") -> dict:
    """Rates of rows A and B (mean and std over seeds), B - A per seed, and the paired sign test over the
    episodes both finished. Raises when the rows share no episode (not the same matrix run)."""
    per_a, per_b, diffs, only_b, only_a, n = [], [], [], 0, 0, 0
    for seed in seeds:
        a = read_episodes(Path(root) / f"seed{seed}" / split / row_a)
        b = read_episodes(Path(root) / f"seed{seed}" / split / row_b)
        keys = sorted(set(a) & set(b))
        if not keys:
            raise ValueError(f"rows {row_a!r} and {row_b!r} share no finished episode in seed {seed}, {split} "
                             f"under {root}")
        ya = np.array([a[k][metric] for k in keys], float)
        yb = np.array([b[k][metric] for k in keys], float)
        per_a.append(float(ya.mean()))
        per_b.append(float(yb.mean()))
        diffs.append(float(yb.mean() - ya.mean()))
        only_b += int(((yb == 1) & (ya == 0)).sum())
        only_a += int(((yb == 0) & (ya == 1)).sum())
        n += len(keys)
    return {"split": split, "metric": metric, "n": n, "a": float(np.mean(per_a)), "a_sd": _sd(per_a),
            "b": float(np.mean(per_b)), "b_sd": _sd(per_b), "diff": float(np.mean(diffs)), "diff_sd": _sd(diffs),
            "only_a": only_a, "only_b": only_b, "p": sign_test(only_b, only_a)}
