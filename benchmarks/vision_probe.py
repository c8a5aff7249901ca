"""Does the vision side know where the part is? A linear probe on the image tokens the language model receives.

The small model predicts one contact pixel per category and ignores the image (model_small_sim.md). This asks
whether the information is there to read: ridge regression from the merged image tokens (visual.merger output,
flattened) to the part centre (mean of the sample's positive affordance points), fitted on the train split,
scored on test_seen. If a linear read-out finds the part, the language side fails to use it; if not, the vision
side is the bottleneck. Two read-outs: the tokens flattened in order (the probe knows each token's place by
its index, which attention does not) and the tokens mean-pooled (order-free, like an attention head that
weighs all image tokens alike: it finds the part only if the token values themselves say where they are).
References: the same probe on the raw pixels (downsampled), and the per-category mean.

    .venv/bin/python benchmarks/vision_probe.py --data data/sim-v1 \
        --model random:0 --model random:1 --model runs/abspos0/final --model runs/abspos1/final
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch

from manipllm_ros.model.build import AdaptedVLM
from manipllm_ros.sim.dataset import iter_samples
from manipllm_ros.training.config import preset
from model_eval import centre, corr_within  # benchmarks/model_eval.py, beside this script


def ridge(xtr: np.ndarray, ytr: np.ndarray, xte: np.ndarray, lam: float) -> np.ndarray:
    mu, sd = xtr.mean(0), xtr.std(0) + 1e-6
    a, b = (xtr - mu) / sd, (xte - mu) / sd
    ym = ytr.mean(0)
    k = a @ a.T
    alpha = np.linalg.solve(k + lam * len(a) * np.eye(len(a)), ytr - ym)
    return b @ (a.T @ alpha) + ym


def fit_and_score(xtr, ytr, xva, yva, xte, yte, cats_te) -> dict:
    best = None
    for lam in (1e-3, 1e-2, 1e-1, 1.0, 10.0):
        err = float(np.median(np.linalg.norm(ridge(xtr, ytr, xva, lam) - yva, axis=1)))
        if best is None or err < best[0]:
            best = (err, lam)
    pred = ridge(np.concatenate([xtr, xva]), np.concatenate([ytr, yva]), xte, best[1])
    return {"centre_err_median": float(np.median(np.linalg.norm(pred - yte, axis=1))),
            "within_cat_corr": corr_within(pred, yte, cats_te), "lambda": best[1]}  # fmt: skip


@torch.no_grad()
def image_tokens(vlm: AdaptedVLM, rgbs: list[np.ndarray], batch: int = 32) -> np.ndarray:
    out = []
    visual = vlm.model.model.visual
    for i in range(0, len(rgbs), batch):
        pv, grid = vlm.processor.encode_images(rgbs[i : i + batch])
        tok = visual(pv.to(vlm.device, next(visual.parameters()).dtype), grid_thw=grid.to(vlm.device)).pooler_output
        out.append(tok.float().reshape(len(grid), -1).cpu().numpy())
    return np.concatenate(out)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--model", action="append", required=True,
                    help="a checkpoint directory, or random:SCALE for the untrained small preset with "
                         "vision_abs_pos=SCALE")  # fmt: skip
    ap.add_argument("--max-train", type=int, default=1200)
    ap.add_argument("--max-test", type=int, default=300)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    train = list(iter_samples(a.data, split="train"))[: a.max_train]
    test = list(iter_samples(a.data, split="test_seen"))[: a.max_test]
    rng = np.random.default_rng(0)
    idx = rng.permutation(len(train))
    val_idx, tr_idx = idx[: len(idx) // 5], idx[len(idx) // 5 :]
    y = np.array([centre(s) for s in train])
    yte = np.array([centre(s) for s in test])
    cats_te = [s["category"] for s in test]
    rows: dict[str, dict] = {}

    by_cat: dict[str, list[np.ndarray]] = {}
    for s, c in zip(train, y):
        by_cat.setdefault(s["category"], []).append(c)
    cm = np.array([np.mean(by_cat[s["category"]], 0) if s["category"] in by_cat else y.mean(0) for s in test])
    rows["category mean (no image)"] = {"centre_err_median": float(np.median(np.linalg.norm(cm - yte, axis=1))),
                                        "within_cat_corr": 0.0, "lambda": None}  # fmt: skip

    def probe(name: str, x: np.ndarray, xt: np.ndarray) -> None:
        rows[name] = fit_and_score(x[tr_idx], y[tr_idx], x[val_idx], y[val_idx], xt, yte, cats_te)
        print(name, rows[name], flush=True)

    small = lambda rgb: rgb[::16, ::16].reshape(-1).astype(np.float32)  # noqa: E731 (40x30x3)
    probe("raw pixels, 40x30", np.stack([small(s["rgb"]) for s in train]), np.stack([small(s["rgb"]) for s in test]))
    for m in a.model:
        if m.startswith("random:"):
            cfg = preset("small").model.model_copy(update={"vision_abs_pos": float(m.split(":")[1]), "device": "cpu"})
            vlm = AdaptedVLM.build(cfg)
        else:
            vlm = AdaptedVLM.load(m, device="cpu")
        vlm.model.eval()
        x = image_tokens(vlm, [s["rgb"] for s in train])
        xt = image_tokens(vlm, [s["rgb"] for s in test])
        spread = float(np.mean(x.reshape(len(x), -1, vlm.model.config.text_config.hidden_size).std(1)))
        probe(f"image tokens: {m}", x, xt)
        rows[f"image tokens: {m}"]["token_spread"] = spread
        d = vlm.model.config.text_config.hidden_size
        probe(f"mean-pooled tokens: {m}", x.reshape(len(x), -1, d).mean(1), xt.reshape(len(xt), -1, d).mean(1))
    lines = [f"# Linear probe: part centre from the image tokens (`benchmarks/vision_probe.py`, {a.data})", "",
             f"Ridge regression fitted on {len(train)} train-split images (lambda picked on a fifth of them), "
             f"scored on {len(test)} test_seen images (unseen instances). Part centre = mean of the positive "
             "affordance points (640x480 px). 'within-cat corr' = correlation of predicted and true centre after "
             "removing each category's mean: 0 = knows only the category, 1 = tracks the part. 'token spread' = "
             "mean std over an image's tokens (how different the tokens of one image are).", "",
             "| features | centre err median (px) | within-cat corr | token spread |", "|---|---|---|---|"]  # fmt: skip
    for name, r in rows.items():
        spread = r.get("token_spread")
        lines.append(f"| {name} | {r['centre_err_median']:.1f} | {r['within_cat_corr']:.2f} | "
                     f"{'' if spread is None else f'{spread:.3f}'} |")  # fmt: skip
    text = "\n".join(lines)
    print(text)
    if a.out:
        open(a.out, "w").write(text + "\n")
        open(a.out.replace(".md", ".json"), "w").write(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
