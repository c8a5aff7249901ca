"""How well the object window found in the depth (object_view.py) frames the object, against the simulator's
masks, and what it costs per frame: prints a Markdown table (split, samples, no object found, blob IoU with the
object mask, share of the object and of the movable part inside the window, contact inside, zoom, ms).

    .venv/bin/python benchmarks/object_view_quality.py data/sim-v2 --every 10 > benchmarks/object_view_quality.md
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from manipllm_ros.object_view import ObjectViewConfig, ObjectViewError, box_window, foreground_mask
from manipllm_ros.sim.dataset import SPLITS, iter_samples
from manipllm_ros.training.data import intrinsics


def measure(path: str, split: str, every: int, cfg: ObjectViewConfig) -> dict:
    rows, failed, ms = [], [], []
    for i, s in enumerate(iter_samples(path, split)):
        if i % every:
            continue
        t0 = time.perf_counter()
        try:
            fg = foreground_mask(s["depth"], intrinsics(s), cfg)
        except ObjectViewError as exc:
            failed.append(f"{s['category']}: {exc}")
            continue
        vs, us = np.nonzero(fg)
        win = box_window(us.min(), vs.min(), us.max() + 1, vs.max() + 1, fg.shape[1], fg.shape[0], cfg)
        ms.append((time.perf_counter() - t0) * 1e3)
        seg = s["segmentation"]
        obj, part = seg > 0, seg == 2
        inside = np.zeros_like(obj)
        inside[win.y0:win.y0 + win.height, win.x0:win.x0 + win.width] = True
        rows.append((
            (fg & obj).sum() / max(1, (fg | obj).sum()),
            (obj & inside).sum() / max(1, obj.sum()),
            (part & inside).sum() / max(1, part.sum()),
            float(win.contains(*s["contact_uv"])),
            fg.shape[1] / win.width,
        ))
    a = np.array(rows, float)
    return {"split": split, "n": len(rows) + len(failed), "failed": failed, "iou": a[:, 0], "obj": a[:, 1],
            "part": a[:, 2], "contact": a[:, 3], "zoom": a[:, 4], "ms": np.array(ms)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dataset", help="a `manipllm sim collect` folder (with masks)")
    ap.add_argument("--every", type=int, default=10, help="every N-th sample of each split")
    args = ap.parse_args()
    cfg = ObjectViewConfig()
    print(f"Object windows with the defaults ({cfg.model_dump()}), every {args.every}th sample of "
          f"`{args.dataset}`; one CPU core.\n")
    print("| split | samples | no object found | blob IoU with object mask (median / 5th pct) | object inside "
          "(5th pct) | part inside (1st pct) | contact inside | zoom (10th / 50th / 90th pct) | ms per frame "
          "(median) |")
    print("|---|---|---|---|---|---|---|---|---|")
    fails = []
    for split in SPLITS:
        r = measure(args.dataset, split, args.every, cfg)
        fails += r["failed"]
        z = np.percentile(r["zoom"], [10, 50, 90])
        print(f"| {split} | {r['n']} | {len(r['failed'])} | {np.median(r['iou']):.3f} / "
              f"{np.percentile(r['iou'], 5):.3f} | {np.percentile(r['obj'], 5):.3f} | "
              f"{np.percentile(r['part'], 1):.3f} | {r['contact'].mean():.3f} | {z[0]:.2f} / {z[1]:.2f} / "
              f"{z[2]:.2f} | {np.median(r['ms']):.0f} |")
    if fails:
        print("\nNo object found:\n")
        for f in sorted(set(fails)):
            print(f"- {f} ({fails.count(f)}x)")


if __name__ == "__main__":
    main()
