"""The model's up against the up measured in depth, on the same episodes and the same contact pixels.

Reads a matrix run of config/eval_depth_up.yaml, where each contact source ran twice: `<src>` (the model's up)
and `<src>-depthup` (minus the surface normal fitted to the depth at the contact, geometry.up_from_depth). The
pixel is the same in both, so the paired test isolates the up direction. Also: how often the contact is on the
movable part, success given that, and how often the depth had no plane there (the model's up kept).

    .venv/bin/python benchmarks/depth_up.py results/eval_depth_up --out benchmarks/eval_depth_up_paired.md

(benchmarks/eval_depth_up.md reads the tables this prints; the paired table is paired_rows.py's.)
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from manipllm_ros.evaluation.paired import pooled_episodes
from paired_rows import paired_table


def pooled(root: Path, row: str, split: str, seeds: list[int]) -> dict:
    eps = pooled_episodes(root, row, split, seeds)
    on = np.array([bool(e["on_part"]) for e in eps])
    ok = np.array([bool(e["initial_success"]) for e in eps])
    kept = sum(e.get("up_note", "") not in ("depth", "up from depth") for e in eps)  # (older runs: "up from depth")
    rate = lambda m: float(ok[m].mean()) if m.any() else float("nan")  # noqa: E731
    return {"on_part": float(on.mean()), "open_on": rate(on), "open_off": rate(~on), "kept": kept / len(eps),
            "pixels": {e["key"]: (e["u"], e["v"]) for e in eps}}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("root", help="matrix output folder of config/eval_depth_up.yaml")
    ap.add_argument("--out")
    a = ap.parse_args()
    root = Path(a.root)
    summary = json.loads((root / "summary.json").read_text())
    seeds, splits = summary["seeds"], summary["splits"]
    sources = [r["name"][: -len("-depthup")] for r in summary["rows"] if r["name"].endswith("-depthup")]
    lines = paired_table(root, [(src, f"{src}-depthup") for src in sources], seeds, splits)
    detail = ["| split | contact | up | on part | P(open \\| on part) | P(open \\| off part) | depth had no plane "
              "(model up kept) |", "|" + "---|" * 7]
    for split in splits:
        for src in sources:
            m, d = pooled(root, src, split, seeds), pooled(root, f"{src}-depthup", split, seeds)
            if m["pixels"] != d["pixels"]:
                raise SystemExit(f"{src} and {src}-depthup put the contact at different pixels in {split}: not "
                                 "the same episodes, or the model's answer changed between the rows")
            for up, p in (("model", m), ("depth", d)):
                kept = f"{p['kept']:.2f}" if up == "depth" else "-"
                detail.append(f"| {split} | {src} | {up} | {p['on_part']:.2f} | {p['open_on']:.2f} | "
                              f"{p['open_off']:.2f} | {kept} |")
    head = " | ".join(f"{src}: on part | {src}: model up | {src}: depth up" for src in sources)
    percat = [f"| split | category | episodes | {head} |", "|" + "---|" * (3 + 3 * len(sources))]
    for split in splits:
        runs = {row: pooled_episodes(root, row, split, seeds) for src in sources for row in (src, f"{src}-depthup")}
        for cat in sorted({e["category"] for e in runs[sources[0]]}):
            def rate(row: str, key: str = "initial_success") -> float:
                return float(np.mean([e[key] for e in runs[row] if e["category"] == cat]))

            n = sum(e["category"] == cat for e in runs[sources[0]])
            cells = " | ".join(f"{rate(src, 'on_part'):.2f} | {rate(src):.2f} | {rate(src + '-depthup'):.2f}"
                               for src in sources)
            percat.append(f"| {split} | {cat} | {n} | {cells} |")
    text = "\n".join(lines) + "\n\n" + "\n".join(detail) + "\n\n" + "\n".join(percat)
    print(text)
    if a.out:
        Path(a.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
