"""Does asking the grounding question on several views of the image (test-time augmentation) put the contact on
the movable part more often than asking once? Views: the image, its mirror, four shifts, two brightness changes;
each view's point is mapped back to the original image and the per-coordinate median is the contact.

    python benchmarks/grounding_views.py --checkpoint models/small-grounded --data data/sim-v2 --max-per-split 150
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from model_eval import centre, decoded, on_part, stratified  # noqa: E402

from manipllm_ros import prompts as P  # noqa: E402
from manipllm_ros.model.policy import GROUNDING_TOKENS, PosePredictor  # noqa: E402
from manipllm_ros.sim.dataset import iter_samples  # noqa: E402


def shift(img: np.ndarray, dx: int, dy: int) -> np.ndarray:
    """Content moves by (dx, dy) pixels; the uncovered border repeats the edge."""
    h, w = img.shape[:2]
    ys = np.clip(np.arange(h) - dy, 0, h - 1)
    xs = np.clip(np.arange(w) - dx, 0, w - 1)
    return img[ys][:, xs]


def views(img: np.ndarray, d: int) -> list[tuple[str, np.ndarray, callable]]:
    w = img.shape[1]
    out = [("id", img, lambda u, v: (u, v)),
           ("mirror", img[:, ::-1].copy(), lambda u, v: (w - 1 - u, v))]
    for dx, dy in ((d, 0), (-d, 0), (0, d), (0, -d)):
        out.append((f"shift{dx:+d},{dy:+d}", shift(img, dx, dy), lambda u, v, dx=dx, dy=dy: (u - dx, v - dy)))
    for g in (0.8, 1.2):
        out.append((f"gain{g}", np.clip(img.astype(np.float32) * g, 0, 255).astype(np.uint8), lambda u, v: (u, v)))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--max-per-split", type=int, default=150)
    ap.add_argument("--splits", nargs="+", default=["test_seen", "test_unseen"])
    ap.add_argument("--shift", type=int, default=16, help="shift in pixels of the original image")
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    pred = PosePredictor.load(a.checkpoint)
    report = {}
    for split in a.splits:
        samples = [decoded(s) for s in stratified(iter_samples(a.data, split=split, decode=False), a.max_per_split)]
        per_view: dict[str, list] = {}
        for s in samples:
            vs = views(s["rgb"], a.shift)
            q = P.grounding_question(s["instruction"])
            texts = pred.ask([v[1] for v in vs], [q] * len(vs), max_new_tokens=GROUNDING_TOKENS)
            frame = pred.vlm.processor.frame(s["width"], s["height"])
            pts = {}
            for (name, _, back), t in zip(vs, texts):
                try:
                    pts[name] = back(*P.parse_grounding(t, frame)[1])
                except P.PromptParseError:
                    pts[name] = None
            for name, p in pts.items():
                per_view.setdefault(name, []).append(p)
            ok = [p for p in pts.values() if p is not None]
            med = tuple(np.median(np.array(ok), 0)) if ok else None
            per_view.setdefault("median-all", []).append(med)
            nm = [pts[k] for k in pts if k != "mirror" and pts[k] is not None]
            per_view.setdefault("median-no-mirror", []).append(tuple(np.median(np.array(nm), 0)) if nm else None)
        rows = {}
        for name, ps in per_view.items():
            onp = [p is not None and on_part(p, s) for p, s in zip(ps, samples)]
            err = [float(np.hypot(*(np.asarray(p) - centre(s)))) for p, s in zip(ps, samples) if p is not None]
            rows[name] = {"on_part": float(np.mean(onp)), "centre_err_median": float(np.median(err)) if err else None,
                          "parse_rate": float(np.mean([p is not None for p in ps]))}
        report[split] = rows
        print(f"\n{split} ({len(samples)} images)\n| view | on movable part | centre err median (px) | parsed |\n|---|---|---|---|")
        for name, r in rows.items():
            err = "-" if r["centre_err_median"] is None else f"{r['centre_err_median']:.1f}"
            print(f"| {name} | {r['on_part']:.2f} | {err} | {r['parse_rate']:.2f} |")
    if a.json:
        Path(a.json).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
