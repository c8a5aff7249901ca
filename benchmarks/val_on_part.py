"""Per-category on-part rate of a checkpoint's grounded contact on a dataset's validation split.

Why: to choose where more training data should go without looking at the evaluation episodes. The dataset's
test_seen split holds unseen instances drawn by the collection seed, not by the evaluation's seeds, so choosing
categories here and then evaluating on fresh evaluation seeds keeps the choice off the test episodes.

"On part" is exact: the contact pixel lies on the movable part's mask (segmentation == 2). The contact is the
model's grounding answer, mapped back from its object window when the checkpoint looks at one; a prediction
that does not parse, or finds no object, counts as a miss.

    .venv/bin/python benchmarks/val_on_part.py --checkpoint models/small-objview --data data/sim-v2 \
        --per-category 30 --out benchmarks/val_on_part
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from manipllm_ros.model.policy import PosePredictor, Prediction
from manipllm_ros.sim.dataset import iter_samples
from manipllm_ros.training.data import intrinsics
from manipllm_ros.training.part_supervision import PART_LABEL


def pixel_on_part(pixel, seg: np.ndarray) -> bool:
    """Whether (u, v), rounded, lies on the movable part's mask."""
    u, v = (int(round(c)) for c in pixel)
    h, w = seg.shape
    return 0 <= u < w and 0 <= v < h and int(seg[v, u]) == PART_LABEL


def on_part(pred: object, seg: np.ndarray) -> bool:
    return isinstance(pred, Prediction) and pixel_on_part(pred.pixel, seg)


def pick_samples(data: str, split: str, per_category: int) -> dict[str, list[dict]]:
    """The first `per_category` samples of each category of a dataset split, in shard order."""
    picked: dict[str, list[dict]] = defaultdict(list)
    for s in iter_samples(data, split=split):
        if len(picked[s["category"]]) < per_category:
            picked[s["category"]].append(s)
    return picked


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--split", default="test_seen")
    ap.add_argument("--per-category", type=int, default=30)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--hard-below", type=float, default=0.9, help="categories under this rate are listed as hard (eval_hard_data.md: they got extra data)")
    ap.add_argument("--out", type=Path, help="writes OUT.md and OUT.json")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    pred = PosePredictor.load(a.checkpoint, device="cpu")
    ground = (pred.vlm.trained_tasks or {}).get("grounding", 0.0) > 0

    picked = pick_samples(a.data, a.split, a.per_category)
    samples = [s for c in sorted(picked) for s in picked[c]]
    hits: dict[str, list[bool]] = defaultdict(list)
    for i in tqdm(range(0, len(samples), a.batch), desc="val on part"):
        chunk = samples[i : i + a.batch]
        res = pred.predict_batch([s["rgb"] for s in chunk], [s["instruction"] for s in chunk],
                                 chain_of_thought=False, ground_contact=ground,
                                 depths=[s["depth"] for s in chunk], Ks=[intrinsics(s) for s in chunk])
        for s, r in zip(chunk, res):
            hits[s["category"]].append(on_part(r, s["segmentation"]))

    rates = {c: float(np.mean(h)) for c, h in sorted(hits.items())}
    hard = [c for c, r in rates.items() if r < a.hard_below]
    overall = float(np.mean([x for h in hits.values() for x in h]))
    lines = [f"# On-part rate of `{a.checkpoint}`'s contact on `{a.data}` split {a.split}", "",
             f"Up to {a.per_category} samples per category (first in shard order); contact = "
             f"{'grounding' if ground else 'pose'} answer, direct; on part = on the movable part's mask.", "",
             "| category | n | on part |", "|---|---|---|"]
    lines += [f"| {c} | {len(hits[c])} | {'**' if c in hard else ''}{r:.2f}{'**' if c in hard else ''} |"
              for c, r in rates.items()]
    lines += ["", f"Overall {overall:.3f}. Hard (on part < {a.hard_below}): {', '.join(hard) or 'none'}."]
    text = "\n".join(lines) + "\n"
    print(text)
    if a.out:
        a.out.with_suffix(".md").write_text(text)
        a.out.with_suffix(".json").write_text(json.dumps(
            {"checkpoint": a.checkpoint, "data": a.data, "split": a.split, "per_category": a.per_category,
             "rates": rates, "n": {c: len(h) for c, h in hits.items()}, "overall": overall,
             "hard_below": a.hard_below, "hard": hard}, indent=1))


if __name__ == "__main__":
    main()
