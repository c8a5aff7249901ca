"""Do the image tokens mark the movable part after part supervision? Read the part's place off the tokens with
the training-only part head (training/part_supervision.py), no language model involved.

For each held-out image: the head scores every merged image token; the predicted part centre is the
score-weighted mean of the token centres (softmax over tokens, temperature 1 on the logits) and, separately,
the centre of the best-scoring token. Compared with the mask centroid (exact, from the dataset's segmentation)
and with the category-mean centre, the prior a model has without looking. If the head finds the part, one
attention head whose query matches the head's weights can too: what is left is for the language model to learn
that read-out.

    .venv/bin/python benchmarks/part_head_probe.py --data data/sim-v2 --run runs/part1 --max 300
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import numpy as np
import torch

from manipllm_ros.model.build import AdaptedVLM
from manipllm_ros.sim.dataset import decode_png, iter_samples
from manipllm_ros.training.data import prepare_samples
from manipllm_ros.training.part_supervision import PartSupervision, part_centre, token_targets
from model_eval import corr_within, decoded, stratified  # benchmarks/model_eval.py, beside this script


def newest_state(run: Path) -> Path:
    cks = sorted((int(m.group(1)), p) for p in run.glob("checkpoint-*") if (m := re.fullmatch(r"checkpoint-(\d+)", p.name)))
    if not cks:
        raise SystemExit(f"{run}: no checkpoint-N with a trainer state")
    return cks[-1][1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--run", required=True, help="training output dir trained with part_supervision > 0")
    ap.add_argument("--max", type=int, default=300)
    ap.add_argument("--split", default="test_seen")
    ap.add_argument("--json")
    a = ap.parse_args()
    torch.set_num_threads(2)
    ck = newest_state(Path(a.run))
    state = torch.load(ck / "trainer_state.pt", map_location="cpu", weights_only=False)
    if "part_head" not in state:
        raise SystemExit(f"{ck}: trained without part supervision (no part head in the trainer state)")
    vlm = AdaptedVLM.load(ck, device="cpu")
    visual = vlm.model.model.visual
    part = PartSupervision(visual, vlm.model.config.text_config.hidden_size)
    part.load_state_dict(state["part_head"])
    size = (vlm.cfg.image_width, vlm.cfg.image_height)
    train = list(iter_samples(a.data, split="train", decode=False))
    cat_mean: dict[str, list] = {}
    raw = [decoded(s) for s in stratified(iter_samples(a.data, split=a.split, decode=False), a.max)]
    samples = prepare_samples(raw, size)
    for s in train:  # the prior: each training category's mean part centroid
        c = part_centre(decode_png(s["mask_png"]))
        if c is not None:
            cat_mean.setdefault(s["category"], []).append(c)
    cm = {c: np.mean(v, 0) for c, v in cat_mean.items()}
    soft, best, truth, prior, cats, bce = [], [], [], [], [], []
    W, H = raw[0]["width"], raw[0]["height"]
    with torch.no_grad():
        for s in samples:
            pv, thw = vlm.processor.encode_images([s["rgb"]])
            visual(pv, grid_thw=thw)
            tokens = part.take_tokens()
            logits = part.head(tokens.float()).squeeze(-1)
            tgt = token_targets(s["part_grid"], thw)
            bce.append(float(torch.nn.functional.binary_cross_entropy_with_logits(logits, tgt)))
            gh, gw = int(thw[0, 1]) // 2, int(thw[0, 2]) // 2
            # token k's centre in original pixels (targets are in the model's token order: row-major here,
            # as token_targets checks against the processor)
            order = token_targets(np.arange(gh * gw, dtype=np.float32).reshape(gh, gw), thw).long()
            rows, cols = order // gw, order % gw
            cu = (cols.float() + 0.5) * W / gw
            cv = (rows.float() + 0.5) * H / gh
            w = torch.softmax(logits, 0)
            soft.append([float((w * cu).sum()), float((w * cv).sum())])
            k = int(logits.argmax())
            best.append([float(cu[k]), float(cv[k])])
            truth.append(s["part_centre_uv"])
            prior.append(cm.get(s["category"], np.mean(list(cm.values()), 0)))
            cats.append(s["category"])
    truth_a = np.asarray(truth)
    rows_out = {}
    for name, pred in [("category mean part centre (no image)", prior), ("part head: softmax-weighted token centre", soft),
                       ("part head: best token's centre", best)]:
        p = np.asarray(pred, float)
        err = np.linalg.norm(p - truth_a, axis=1)
        rows_out[name] = {"centre_err_median": float(np.median(err)), "within_cat_corr": corr_within(p, truth_a, cats)}
    print(f"# Part head probe: `{a.run}` ({ck.name}) on `{a.data}` {a.split}, {len(samples)} images\n")
    print(f"Part BCE on these images: {np.mean(bce):.3f}\n")
    print("| read-out | centre err median (px) | within-cat corr |\n|---|---|---|")
    for name, m in rows_out.items():
        print(f"| {name} | {m['centre_err_median']:.1f} | {m['within_cat_corr']:.2f} |")
    if a.json:
        Path(a.json).write_text(json.dumps({"run": a.run, "checkpoint": ck.name, "bce": float(np.mean(bce)),
                                            "rows": rows_out}, indent=2))


if __name__ == "__main__":
    main()
