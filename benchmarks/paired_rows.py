"""Pairs of matrix rows on the same episodes: success of each, B - A per seed, the paired sign test, and how
often each row's contact was on the movable part.

    .venv/bin/python benchmarks/paired_rows.py results/eval_contact_agreement grounded-depthup:agreed-depthup \
        pose-depthup:pose-snap60-depthup --out benchmarks/eval_contact_agreement_paired.md
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from manipllm_ros.evaluation.paired import compare_rows, pooled_episodes


def on_part(root: Path, row: str, split: str, seeds: list[int]) -> float:
    return float(np.mean([bool(e["on_part"]) for e in pooled_episodes(root, row, split, seeds)]))


def paired_table(root: Path, pairs: list[tuple[str, str]], seeds: list[int], splits: list[str]) -> list[str]:
    """Markdown rows: per split and pair A:B, both thresholds."""
    lines = ["| split | A | B | threshold | episodes | A | B | B - A (per-seed mean ± std) | only B opened | "
             "only A opened | sign test p | on part A / B |", "|" + "---|" * 12]
    for split in splits:
        for ra, rb in pairs:
            parts = f"{on_part(root, ra, split, seeds):.2f} / {on_part(root, rb, split, seeds):.2f}"
            for metric in ("initial_success", "long_success"):
                r = compare_rows(root, ra, rb, split, seeds, metric)
                lines.append(f"| {split} | {ra} | {rb} | {metric.split('_')[0]} | {r['n']} | {r['a']:.2f} ± "
                             f"{r['a_sd']:.2f} | {r['b']:.2f} ± {r['b_sd']:.2f} | {r['diff']:+.2f} ± {r['diff_sd']:.2f}"
                             f" | {r['only_b']} | {r['only_a']} | {r['p']:.2g} | {parts} |")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("root", help="matrix output folder")
    ap.add_argument("pairs", nargs="+", help="A:B, two row names of that run")
    ap.add_argument("--seeds", type=int, nargs="+", help="only these seeds of the run (default: all of them)")
    ap.add_argument("--out")
    a = ap.parse_args()
    root = Path(a.root)
    summary = json.loads((root / "summary.json").read_text())
    pairs = [tuple(p.split(":")) for p in a.pairs]
    text = "\n".join(paired_table(root, pairs, a.seeds or summary["seeds"], summary["splits"]))
    print(text)
    if a.out:
        Path(a.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
