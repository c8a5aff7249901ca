"""Evaluate a trained checkpoint on the simulated dataset's held-out splits, against simple baselines.

Splits: test_seen (unseen instances of training categories) and test_unseen (held-out categories).
Metrics per split: parse rate; contact pixel error (px, 640x480 image); up / forward angle errors (deg);
"on movable part" = the predicted pixel's nearest labelled affordance point (the dataset's <= 20 points with
affordance > 0.8 on the movable part and <= 20 with < 0.2 elsewhere on the object) is a positive one and lies
within 20 px, a proxy for datasets without part masks; where the dataset has them (`mask_png`), it is exact: the
predicted pixel lies on the movable part's mask. Unparseable answers count as misses.
Two measures that ask "does the model look at the image" (benchmarks/model_small_sim.md: the first small
model did not): "part centre err" = distance to the part mask's centroid (or, without masks, the mean of the sample's positive
affordance points), a target
free of the contact label's noise (data collection draws the contact uniformly over the part); "within-cat
corr" = correlation between predicted and true part centre after removing each category's mean (x and y
pooled), 0 for a model that predicts one pixel per category, 1 for one that tracks the part exactly. The
"category mean pose" baseline predicts the training set's mean per category (overall mean for categories not
in training): the prior a model learns without looking.
Modes: cot / direct, each also with the pose turn constrained to the answer grammar ("-grammar").
Baselines: "mean" predicts the training set's mean contact pixel and mean directions; "random point on object"
picks a pixel uniformly on the object's mask (without masks: one of the sample's labelled points).

    .venv/bin/python benchmarks/model_eval.py --checkpoint runs/small/final --data data/sim-v1 --out benchmarks/model_eval.md
"""

from __future__ import annotations

import argparse
import json
import random
import time

import numpy as np
import torch

from manipllm_ros import prompts as P
from manipllm_ros.geometry import angle_between
from manipllm_ros.model.policy import GROUNDING_TOKENS, PosePredictor, Prediction
from manipllm_ros.sim.dataset import decode_png, iter_samples
from manipllm_ros.training.part_supervision import PART_LABEL, part_centre

ON_PART_RADIUS = 20.0


def stratified(samples, n: int) -> list[dict]:
    """Up to n samples, taken round-robin over categories in shard order (the first n in shard order can be a
    few categories only, which biases every per-category measure)."""
    by: dict[str, list[dict]] = {}
    for s in samples:
        by.setdefault(s["category"], []).append(s)
    out, k = [], 0
    while len(out) < n and any(k < len(v) for v in by.values()):
        out += [v[k] for v in by.values() if k < len(v)][: n - len(out)]
        k += 1
    return out


def decoded(s: dict) -> dict:
    s = dict(s, rgb=decode_png(s["rgb_png"]))
    if s.get("mask_png"):
        s["segmentation"] = decode_png(s["mask_png"])
    return s


def on_part(uv, s) -> bool:
    seg = s.get("segmentation")
    if seg is not None:
        u, v = int(round(float(uv[0]))), int(round(float(uv[1])))
        return bool(0 <= v < seg.shape[0] and 0 <= u < seg.shape[1] and seg[v, u] == PART_LABEL)
    pts = [(p, True) for p in s.get("aff_pos_uv") or []] + [(p, False) for p in s.get("aff_neg_uv") or []]
    if not pts:
        return False
    d = [np.hypot(uv[0] - p[0], uv[1] - p[1]) for p, _ in pts]
    i = int(np.argmin(d))
    return bool(pts[i][1] and d[i] <= ON_PART_RADIUS)


def centre(s) -> np.ndarray:
    c = part_centre(s["segmentation"]) if s.get("segmentation") is not None else None
    if c is not None:
        return np.array(c)
    pts = s.get("aff_pos_uv") or []
    return np.mean(pts, 0) if pts else np.asarray(s["contact_uv"], float)


def corr_within(pred: np.ndarray, true: np.ndarray, cats: list[str]) -> float:
    """Pooled correlation of predicted vs true (N, 2) points after subtracting per-category means (x, y pooled)."""
    p, t = [], []
    for c in set(cats):
        idx = [i for i, k in enumerate(cats) if k == c]
        if len(idx) < 2:
            continue
        p.append((pred[idx] - pred[idx].mean(0)).ravel())
        t.append((true[idx] - true[idx].mean(0)).ravel())
    if not p:
        return float("nan")
    pa, ta = np.concatenate(p), np.concatenate(t)
    den = np.linalg.norm(pa) * np.linalg.norm(ta)
    return float(pa @ ta / den) if den > 0 else 0.0


def within_category_corr(rows: list[dict]) -> float:
    ok = [r for r in rows if r["parsed"]]
    if not ok:
        return float("nan")
    return corr_within(np.array([r["uv"] for r in ok], float), np.array([r["centre"] for r in ok], float),
                       [r["cat"] for r in ok])  # fmt: skip


def summarize(rows: list[dict]) -> dict:
    ok = [r for r in rows if r["parsed"]]
    f = lambda k: float(np.mean([r[k] for r in ok])) if ok else float("nan")  # noqa: E731
    med = lambda k: float(np.median([r[k] for r in ok])) if ok else float("nan")  # noqa: E731
    return {"n": len(rows), "parse_rate": len(ok) / max(len(rows), 1), "pixel_err_mean": f("pix"),
            "pixel_err_median": med("pix"), "centre_err_median": med("cen"),
            "within_cat_corr": within_category_corr(rows), "up_err_deg": f("up"), "forward_err_deg": f("fw"),
            "on_movable_part": float(np.mean([r["on_part"] for r in rows])) if rows else float("nan")}  # fmt: skip


def row(uv, up, fw, s) -> dict:
    c = centre(s)
    return {"parsed": True, "pix": float(np.hypot(uv[0] - s["contact_uv"][0], uv[1] - s["contact_uv"][1])),
            "cen": float(np.hypot(uv[0] - c[0], uv[1] - c[1])), "uv": [float(uv[0]), float(uv[1])],
            "centre": [float(c[0]), float(c[1])], "cat": s["category"],
            "up": angle_between(up, s["up_cam"]), "fw": angle_between(fw, s["forward_cam"]), "on_part": on_part(uv, s)}


def grounding_rows(pred: PosePredictor, chunk: list[dict], up, fw) -> list[dict]:
    qs = [P.grounding_question(s["instruction"]) for s in chunk]
    out = []
    for s, text in zip(chunk, pred.ask([s["rgb"] for s in chunk], qs, max_new_tokens=GROUNDING_TOKENS)):
        frame = pred.vlm.processor.frame(s["width"], s["height"])
        try:
            out.append(row(P.parse_grounding(text, frame)[1], up, fw, s))
        except P.PromptParseError:
            out.append({"parsed": False, "on_part": False, "cat": s["category"]})
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--max-per-split", type=int, default=100)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--modes", nargs="+", default=["cot", "direct", "cot-grammar", "direct-grammar"],
                    choices=["cot", "direct", "cot-grammar", "direct-grammar", "grounding"],
                    help="grounding: ask where the moving part is (the optional grounding task) and score that "
                         "point as the contact, with the mean directions")
    ap.add_argument("--splits", nargs="+", default=["test_seen", "test_unseen"],
                    help="add 'train' to see how well the model fits what it trained on")
    ap.add_argument("--out")
    ap.add_argument("--json")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    pred = PosePredictor.load(a.checkpoint)
    train = list(iter_samples(a.data, split="train", decode=False))
    mean_uv = np.mean([s["contact_uv"] for s in train], 0)
    mean_up = np.mean([s["up_cam"] for s in train], 0)
    mean_fw = np.mean([s["forward_cam"] for s in train], 0)
    by_cat: dict[str, list[dict]] = {}
    for s in train:
        by_cat.setdefault(s["category"], []).append(s)
    cat_mean = {c: tuple(np.mean([s[k] for s in ss], 0) for k in ("contact_uv", "up_cam", "forward_cam"))
                for c, ss in by_cat.items()}  # fmt: skip
    rng = random.Random(0)
    results = {}
    masked = True
    for split in a.splits:
        samples = [decoded(s) for s in stratified(iter_samples(a.data, split=split, decode=False), a.max_per_split)]
        res = {}
        res["baseline: mean pose"] = summarize([row(mean_uv, mean_up, mean_fw, s) for s in samples])
        res["baseline: category mean pose"] = summarize(
            [row(*cat_mean.get(s["category"], (mean_uv, mean_up, mean_fw)), s) for s in samples]
        )
        rnd = []
        for s in samples:
            seg = s.get("segmentation")
            if seg is not None and (seg > 0).any():
                vs, us = np.nonzero(seg > 0)
                k = rng.randrange(len(us))
                uv = (us[k], vs[k])
            else:
                pts = (s.get("aff_pos_uv") or []) + (s.get("aff_neg_uv") or [])
                uv = rng.choice(pts) if pts else mean_uv
            rnd.append(row(uv, mean_up, mean_fw, s))
        res["baseline: random point on object (+ mean directions)"] = summarize(rnd)
        for mode in a.modes:
            # "-grammar" modes constrain the pose turn to the answer grammar (model.constrained)
            pred.vlm.cfg = pred.vlm.cfg.model_copy(update={"constrain_pose": mode.endswith("-grammar")})
            rows, t0 = [], time.perf_counter()
            for i in range(0, len(samples), a.batch):
                chunk = samples[i : i + a.batch]
                if mode == "grounding":
                    rows += grounding_rows(pred, chunk, mean_up, mean_fw)
                    continue
                out = pred.predict_batch([s["rgb"] for s in chunk], [s["instruction"] for s in chunk],
                                         chain_of_thought=mode.startswith("cot"))  # fmt: skip
                for s, r in zip(chunk, out):
                    if isinstance(r, Prediction):
                        rows.append(row(r.pixel, r.up, r.forward, s))
                    else:
                        rows.append({"parsed": False, "on_part": False, "cat": s["category"]})
            res[f"model ({mode})"] = summarize(rows) | {"seconds": time.perf_counter() - t0}
        results[split] = res
        masked = masked and all(s.get("segmentation") is not None for s in samples)
    lines = [f"# Model evaluation: `{a.checkpoint}` on `{a.data}`", "",
             "Splits: test_seen = unseen instances of training categories; test_unseen = held-out categories. "
             + ("'on movable part' = on the part's mask (the dataset has masks). " if masked else
                f"'on movable part' is a proxy (nearest labelled affordance point is positive and within "
                f"{ON_PART_RADIUS:.0f} px; no part masks in the dataset). ")
             + "Unparseable answers count as misses; "
             "error means are over parsed answers only. '-grammar' = pose turn decoded under the answer grammar.",
             ""]  # fmt: skip
    for split, res in results.items():
        lines += [f"## {split}", "", "| predictor | n | parse rate | pixel err mean (px) | pixel err median (px) | "
                  "part centre err median (px) | within-cat corr | up err (deg) | forward err (deg) | on movable part |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for name, m in res.items():
            lines.append(f"| {name} | {m['n']} | {m['parse_rate']:.2f} | {m['pixel_err_mean']:.1f} | "
                         f"{m['pixel_err_median']:.1f} | {m['centre_err_median']:.1f} | "
                         f"{m['within_cat_corr']:.2f} | {m['up_err_deg']:.1f} | {m['forward_err_deg']:.1f} | "
                         f"{m['on_movable_part']:.2f} |")  # fmt: skip
        lines.append("")
    text = "\n".join(lines)
    print(text)
    if a.out:
        open(a.out, "w").write(text + "\n")
    if a.json:
        open(a.json, "w").write(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
