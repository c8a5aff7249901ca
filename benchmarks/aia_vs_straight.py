"""AIA against the straight pull on the same episodes: per contact source, long-distance success with the
run-to-run spread and a paired test over episodes.

Reads matrix results where every contact source ran twice, `<name>-aia` and `<name>-straight`
(config/eval_aia_revolute.yaml). Both pulls start from the same contact, directions and world, so the fair test
is paired (manipllm_ros.evaluation.paired): episodes only AIA opened against episodes only the straight pull
opened, with the exact sign test.

    .venv/bin/python benchmarks/aia_vs_straight.py results/eval_aia_revolute/test_seen \
        results/eval_aia_revolute/test_unseen --out benchmarks/eval_aia_revolute.md --plot benchmarks/eval_aia_revolute.png
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from manipllm_ros.evaluation.paired import compare_rows


def compare(root: Path, source: str, split: str, seeds: list[int], metric: str = "long_success") -> dict:
    r = compare_rows(root, f"{source}-straight", f"{source}-aia", split, seeds, metric)
    return {"source": source, "split": split, "n": r["n"], "aia": r["b"], "aia_sd": r["b_sd"],
            "straight": r["a"], "straight_sd": r["a_sd"], "diff": r["diff"], "diff_sd": r["diff_sd"],
            "only_aia": r["only_b"], "only_straight": r["only_a"], "p": r["p"]}


def plot(rows: list[dict], path: str) -> None:
    """Long-distance success, AIA vs straight, per split and contact source (error bars: std over seeds)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    long = [r for r in rows if r["metric"] == "long"]
    x = np.arange(len(long))
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(long) + 2), 4))
    ax.bar(x - 0.2, [r["aia"] for r in long], 0.4, yerr=[r["aia_sd"] for r in long], capsize=3, label="AIA")
    ax.bar(x + 0.2, [r["straight"] for r in long], 0.4, yerr=[r["straight_sd"] for r in long], capsize=3,
           label="straight pull")
    ax.set_xticks(x, [f"{r['split']}\n{r['source']} (p={r['p']:.1g})" for r in long], fontsize=8)
    ax.set_ylim(0, 1)
    ax.set_ylabel("long-distance success (revolute)")
    ax.set_title("same episodes and contacts for both pulls; mean ± std over seeds", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("roots", nargs="+", help="matrix output folders (one per split)")
    ap.add_argument("--out")
    ap.add_argument("--plot", help="PNG of the long-distance rows")
    a = ap.parse_args()
    rows = []
    for root in map(Path, a.roots):
        summary = json.loads((root / "summary.json").read_text())
        seeds, splits = summary["seeds"], summary["splits"]
        sources = [r["name"][: -len("-aia")] for r in summary["rows"] if r["name"].endswith("-aia")]
        for split in splits:
            for src in sources:
                for metric in ("long_success", "initial_success"):
                    rows.append(compare(root, src, split, seeds, metric) | {"metric": metric.split("_")[0]})
    lines = ["| split | contact source | threshold | episodes | AIA | straight | AIA - straight (per-seed mean ± std) "
             "| only AIA opened | only straight opened | sign test p |", "|" + "---|" * 10]
    for r in rows:
        lines.append(f"| {r['split']} | {r['source']} | {r['metric']} | {r['n']} | {r['aia']:.2f} ± {r['aia_sd']:.2f} "
                     f"| {r['straight']:.2f} ± {r['straight_sd']:.2f} | {r['diff']:+.2f} ± {r['diff_sd']:.2f} | "
                     f"{r['only_aia']} | {r['only_straight']} | {r['p']:.2g} |")
    text = "\n".join(lines)
    print(text)
    if a.out:
        Path(a.out).write_text(text + "\n")
    if a.plot:
        plot(rows, a.plot)


if __name__ == "__main__":
    main()
