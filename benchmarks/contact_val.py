"""Two ways to put the model's contact on the movable part more often, chosen on validation: asking on jittered
object windows and combining the answers (model/views.py), and moving the contact onto a raised part nearby
found in the depth (contact.snap_to_protrusion).

Why on validation: the dataset's test_seen split holds unseen instances drawn by the collection seed, not by the
evaluation's seeds (as in val_on_part.py), so the setting chosen here is then measured on episodes it never saw.

Every sample is asked once per candidate view (18: the window, shifts of 4 % and 8 % of its size each way,
scales 0.85-1.16, and five mirrored copies); the answers, mapped back to camera pixels, are then combined per
subset of views and per rule (mean, median, medoid, trimmed mean as in model/views.py), and scored exactly
against the movable part's mask. A sample whose window-alone answer does not parse counts as a miss for every
row. The raised-part snap is applied to the window-alone answer, for a small grid of its settings around the
defaults (a flat table means the choice is not tuned to these samples).

    .venv/bin/python benchmarks/contact_val.py --checkpoint models/small-objview-hard --data data/sim-v2 \
        --out benchmarks/contact_val
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from manipllm_ros.contact import PROTRUSION_MAX_M, PROTRUSION_MIN_M, PROTRUSION_RING_PX, snap_to_protrusion
from manipllm_ros.model.policy import PosePredictor, Prediction
from manipllm_ros.model.views import TRIM_FACTOR, TRIM_MIN_PX, combine_points, jittered_windows
from manipllm_ros.model.zoom import crop
from manipllm_ros.object_view import ObjectViewError
from manipllm_ros.training.data import intrinsics
from val_on_part import pick_samples, pixel_on_part  # benchmarks/val_on_part.py, beside this script

SHIFTS = [(0.0, 0.0, 1.0)] + [j for d in (0.04, 0.08) for j in ((d, 0, 1.0), (-d, 0, 1.0), (0, d, 1.0), (0, -d, 1.0))]
CANDIDATES = [(j, False) for j in SHIFTS + [(0, 0, 0.92), (0, 0, 1.08), (0, 0, 0.85), (0, 0, 1.16)]]
CANDIDATES += [(j, True) for j in SHIFTS[:5]]  # mirrored: the answer's u is mirrored back
SUBSETS = {
    "window alone": [0],
    "shift 4 % (5)": [0, 1, 2, 3, 4],
    "shift 8 % (5)": [0, 5, 6, 7, 8],
    "shift 4 % + 8 % (9)": list(range(9)),
    "shift 4 % + scale 0.92/1.08 (7)": [0, 1, 2, 3, 4, 9, 10],
    "all unmirrored (13)": list(range(13)),
    "window + 5 mirrored (6)": [0, 13, 14, 15, 16, 17],
    "shift 4 % + scale 8 % + 5 mirrored (12)": [0, 1, 2, 3, 4, 9, 10, 13, 14, 15, 16, 17],
    "all (18)": list(range(18)),
}
RULES = ("mean", "median", "medoid", "trimmed mean")
# (radius px, ring px, min m, max m) of the raised-part snap; the first is the default the evaluation uses
RAISED = [(40, PROTRUSION_RING_PX, PROTRUSION_MIN_M, PROTRUSION_MAX_M), (30, 16, 0.006, 0.06), (50, 16, 0.006, 0.06),
          (40, 12, 0.006, 0.06), (40, 24, 0.006, 0.06), (40, 16, 0.01, 0.06), (40, 16, 0.006, 0.04)]


def combine(points: np.ndarray, rule: str) -> np.ndarray:
    if rule == "mean":
        return points.mean(0)
    if rule == "median":
        return np.median(points, 0)
    if rule == "medoid":
        d = np.linalg.norm(points[:, None] - points[None], axis=-1)
        return points[np.argmin(d.sum(1))]
    return np.asarray(combine_points(points)[0])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--split", default="test_seen")
    ap.add_argument("--per-category", type=int, default=30)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, help="writes OUT.md and OUT.json")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    pred = PosePredictor.load(a.checkpoint, device="cpu")
    if pred.object_view is None:
        raise SystemExit(f"{a.checkpoint} looks at the whole image: no object window to jitter")
    picked = pick_samples(a.data, a.split, a.per_category)
    samples = [s for c in sorted(picked) for s in picked[c]]

    hits: dict[tuple[str, str], dict[str, list[bool]]] = defaultdict(lambda: defaultdict(list))
    spread: list[float] = []
    raised_hits: dict[tuple, dict[str, list[bool]]] = defaultdict(lambda: defaultdict(list))
    raised_moved: dict[tuple, int] = defaultdict(int)
    for s in tqdm(samples, desc="views on validation"):
        seg, cat = s["segmentation"], s["category"]
        h, w = seg.shape

        try:
            base = pred.view_window(s["rgb"], s["depth"], intrinsics(s))
        except ObjectViewError:
            base = None
        pts: list[np.ndarray | None] = [None] * len(CANDIDATES)
        if base is not None:
            wins = jittered_windows(base, w, h, [j for j, _ in CANDIDATES])
            imgs = [crop(s["rgb"], wn) for wn in wins]
            imgs = [np.ascontiguousarray(im[:, ::-1]) if mirror else im for im, (_, mirror) in zip(imgs, CANDIDATES)]
            res = pred.predict_batch(imgs, [s["instruction"]] * len(imgs), chain_of_thought=False,
                                     ground_contact=True, viewed=True)
            for k, (wn, (_, mirror), r) in enumerate(zip(wins, CANDIDATES, res)):
                if isinstance(r, Prediction):
                    u, v = r.pixel
                    pts[k] = np.array(wn.to_full(wn.width - 1 - u if mirror else u, v))
        ok = [p for p in pts if p is not None]
        if pts[0] is not None and len(ok) > 1:
            spread.append(float(np.median([np.linalg.norm(p - pts[0]) for p in ok[1:]])))
        for name, idx in SUBSETS.items():
            got = np.array([pts[i] for i in idx if pts[i] is not None])
            for rule in RULES if len(idx) > 1 else ("mean",):
                hits[(name, rule)][cat].append(pts[0] is not None and pixel_on_part(combine(got, rule), seg))
        for setting in RAISED:
            moved = None if pts[0] is None else snap_to_protrusion(*pts[0], s["depth"], setting[0], ring_px=setting[1],
                                                                    min_m=setting[2], max_m=setting[3])
            raised_moved[setting] += moved is not None
            contact = pts[0] if moved is None else moved
            raised_hits[setting][cat].append(pts[0] is not None and pixel_on_part(contact, seg))

    def rate(d: dict[str, list[bool]]) -> float:
        return float(np.mean([x for v in d.values() for x in v]))

    hard = [c for c in sorted(picked) if np.mean(hits[("window alone", "mean")][c]) < 0.9]
    lines = [f"# Contact choices on validation: `{a.checkpoint}`, `{a.data}` split {a.split}", "",
             "## Jittered object windows", "",
             f"{len(samples)} samples ({a.per_category} per category, first in shard order); contact on the movable "
             f"part's mask. Trimmed mean = model/views.py (answers within max({TRIM_MIN_PX:g} px, {TRIM_FACTOR:g}x "
             "the median distance) of the medoid). Median distance of a view's answer from the window-alone answer: "
             f"{np.median(spread):.1f} px.", "",
             "| views | rule | on part, all | " + " | ".join(hard) + " |", "|---|---|---|" + "---|" * len(hard)]
    for (name, rule), d in hits.items():
        lines.append(f"| {name} | {rule} | {rate(d):.3f} | "
                     + " | ".join(f"{np.mean(d[c]):.2f}" for c in hard) + " |")
    lines += ["", "## Raised-part snap of the window-alone answer", "",
              "| radius px | ring px | min m | max m | moved | on part, all | " + " | ".join(hard) + " |",
              "|---|---|---|---|---|---|" + "---|" * len(hard),
              f"| (off) | | | | | {rate(hits[('window alone', 'mean')]):.3f} | "
              + " | ".join(f"{np.mean(hits[('window alone', 'mean')][c]):.2f}" for c in hard) + " |"]
    for setting, d in raised_hits.items():
        lines.append("| " + " | ".join(f"{x:g}" for x in setting) + f" | {raised_moved[setting]} | {rate(d):.3f} | "
                     + " | ".join(f"{np.mean(d[c]):.2f}" for c in hard) + " |")
    text = "\n".join(lines) + "\n"
    print(text)
    if a.out:
        a.out.with_suffix(".md").write_text(text)
        a.out.with_suffix(".json").write_text(json.dumps(
            {"checkpoint": a.checkpoint, "data": a.data, "split": a.split, "per_category": a.per_category,
             "candidates": CANDIDATES, "subsets": SUBSETS, "median_spread_px": float(np.median(spread)),
             "rates": {f"{n} | {r}": {"all": rate(d), **{c: float(np.mean(v)) for c, v in d.items()}}
                       for (n, r), d in hits.items()},
             "raised": [{"setting": list(k), "moved": raised_moved[k], "all": rate(d),
                         **{c: float(np.mean(v)) for c, v in d.items()}} for k, d in raised_hits.items()]},
            indent=1))


if __name__ == "__main__":
    main()
