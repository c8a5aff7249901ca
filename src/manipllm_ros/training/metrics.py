"""Validation metrics: pixel error, direction angle errors, parse rate, category and affordance accuracy."""

from __future__ import annotations

import random

import numpy as np
from tqdm import tqdm

from manipllm_ros import prompts as P
from manipllm_ros.geometry import angle_between
from manipllm_ros.model.policy import PosePredictor, Prediction


def evaluate(
    predictor: PosePredictor,
    samples: list[dict],
    batch_size: int = 8,
    chain_of_thought: bool = True,
    n_affordance: int = 5,
    seed: int = 0,
    progress: bool = False,
) -> dict[str, float]:
    """Greedy predictions on `samples`; unparseable answers count against parse_rate, not the error means."""
    pix, up_err, fw_err, cat_ok, n_ok = [], [], [], [], 0
    aff_correct, aff_total = 0, 0
    rng = random.Random(seed)

    chunks = [samples[i : i + batch_size] for i in range(0, len(samples), batch_size)]
    for chunk in tqdm(chunks, desc="validate", disable=not progress, leave=False):
        res = predictor.predict_batch([s["rgb"] for s in chunk], [s["instruction"] for s in chunk],
                                      chain_of_thought=chain_of_thought, viewed=True)  # fmt: skip
        for s, r in zip(chunk, res):
            if not isinstance(r, Prediction):
                continue
            n_ok += 1
            # training samples hold the image already resized to model size (and cut to the object's window where
            # the run uses object_view: width/height and contact_uv are the window's): map the pixel back
            h, w = s["rgb"].shape[:2]
            u = (r.pixel[0] + 0.5) * s["width"] / w - 0.5
            v = (r.pixel[1] + 0.5) * s["height"] / h - 0.5
            pix.append(float(np.hypot(u - s["contact_uv"][0], v - s["contact_uv"][1])))
            up_err.append(angle_between(r.up, s["up_cam"]))
            fw_err.append(angle_between(r.forward, s["forward_cam"]))
            if chain_of_thought:
                cat_ok.append(P.category_answer(s["category"]) == (r.category or "").strip())
        # affordance accuracy: a few positive and negative points per sample, one question each sample
        qs, labels, imgs = [], [], []
        for s in chunk:
            if not s.get("aff_pos_uv") and not s.get("aff_neg_uv"):
                continue
            ex = P.affordance_example(s, rng, n=n_affordance, model_size=(predictor.vlm.processor.image_width,
                                                                           predictor.vlm.processor.image_height))
            qs.append(ex.turns[0].question)
            labels.append([w == "yes" for w in ex.turns[0].answer.split(", ")])
            imgs.append(s["rgb"])
        if qs:
            answers = predictor.ask(imgs, qs, max_new_tokens=4 * 2 * n_affordance + 4)
            for a, lab in zip(answers, labels):
                aff_total += len(lab)
                try:
                    got = P.parse_affordance(a, len(lab))
                except P.AffordanceParseError:
                    continue
                aff_correct += sum(g == t for g, t in zip(got, lab))
    n = len(samples)
    nan = float("nan")
    return {
        "n": float(n),
        "parse_rate": n_ok / n if n else nan,
        "pixel_error_px_mean": float(np.mean(pix)) if pix else nan,
        "pixel_error_px_median": float(np.median(pix)) if pix else nan,
        "up_angle_deg_mean": float(np.mean(up_err)) if up_err else nan,
        "forward_angle_deg_mean": float(np.mean(fw_err)) if fw_err else nan,
        "category_acc": float(np.mean(cat_ok)) if cat_ok else nan,
        "affordance_acc": aff_correct / aff_total if aff_total else nan,
    }
