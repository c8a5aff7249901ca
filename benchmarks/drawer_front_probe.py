"""Do the served model's image tokens tell which cabinet front slides? A linear read-out, no language model.

eval_limits.md: on cabinets with two or three fronts, of which one slides, `models/small-objview-hard` puts its
contact on a front at chance, even when only the sliding front has a handle. Is that the vision side (the tokens
do not carry it) or the language side (they do, and the answer does not use it)?

Multi-front cabinets are rendered as in evaluation (object seeds from `--first-seed`, the camera and lights drawn
from the same seed) and shown to the model the way the pose service does (object window from the depth). A hook
keeps the merged image tokens: what the language model sees. A ridge probe is fitted, per token, to the share of
the token's 28 px block covered by the sliding front. On held-out cabinets a probe "finds the front" when its
best-scoring token lies more than half on it. The same probe is fitted on each block's raw pixels (7x7 RGB) and
on the token's place alone (the prior). The model's own grounding answer is scored on the same images.

    MUJOCO_GL=egl .venv/bin/python benchmarks/drawer_front_probe.py --n 800 --out benchmarks/drawer_front_probe.md
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm
from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import get_vision_position_ids

from manipllm_ros.model.policy import PosePredictor
from manipllm_ros.model.zoom import crop
from manipllm_ros.sim.flying_arm import FlyingArm
from manipllm_ros.sim.objects import generate_object
from manipllm_ros.training.part_supervision import PART_LABEL, TOKEN_PIXELS, part_fraction_grid

CHECKPOINT = "models/small-objview-hard"
LAMBDAS = (1e-2, 1e-1, 1.0, 10.0, 100.0, 1e3, 1e4)


def fronts(obj) -> int:
    """How many fronts the cabinet shows: the fixed dummies (material mat_front before the drawer body) + 1."""
    return obj.mjcf.split('<body name="drawer"')[0].count('material="mat_front"') + 1


def token_order(width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """(rows, cols) of the merged tokens in the vision tower's output order (as training/part_supervision.py)."""
    grid = torch.tensor([[1, height // 14, width // 14]])
    ids = get_vision_position_ids(grid, 2)
    return (ids[::4, 0] // 2).numpy(), (ids[::4, 1] // 2).numpy()


def collect(n: int, first_seed: int) -> list[dict]:
    model = PosePredictor.load(CHECKPOINT, device="cpu")
    width, height = model.vlm.cfg.image_width, model.vlm.cfg.image_height
    rows, cols = token_order(width, height)
    kept: list[torch.Tensor] = []
    hook = model.vlm.model.model.visual.register_forward_hook(
        lambda m, a, out: kept.append(getattr(out, "pooler_output", out).detach().float()))
    out, seed = [], first_seed
    bar = tqdm(total=n, desc="multi-front cabinets")
    while len(out) < n:
        seed += 1
        obj = generate_object("cabinet_drawer", seed)
        k = fronts(obj)
        if k < 2:
            continue
        with FlyingArm.from_object(obj, seed=seed) as arm:
            obs = arm.world.observe()
        K = obs.intrinsics.K
        kept.clear()
        pred = model.predict(obs.rgb, obj.meta.instruction, chain_of_thought=False, ground_contact=True,
                             depth=obs.depth, K=K)
        win = model.view_window(obs.rgb, obs.depth, K)
        seg = np.where(crop(obs.mask[..., None], win)[..., 0], PART_LABEL, 0)
        frac = part_fraction_grid(seg, (width, height))
        rgb = np.asarray(Image.fromarray(crop(obs.rgb, win)).resize((width, height), Image.Resampling.BICUBIC))
        gh, gw = height // TOKEN_PIXELS, width // TOKEN_PIXELS
        blocks = np.asarray(Image.fromarray(rgb).resize((gw * 7, gh * 7), Image.Resampling.BOX), np.float32) / 255
        raw = blocks.reshape(gh, 7, gw, 7, 3).transpose(0, 2, 1, 3, 4).reshape(gh, gw, -1)
        if kept[0].shape[0] != len(rows):
            raise RuntimeError(f"{kept[0].shape[0]} image tokens, expected {len(rows)}")
        u, v = (int(round(x)) for x in pred.pixel)
        out.append({
            "seed": seed, "fronts": k, "handle": obj.meta.handle != "none",
            "tokens": kept[0].numpy(), "raw": raw[rows, cols], "frac": frac[rows, cols],
            "place": np.eye(len(rows), dtype=np.float32),
            "model_on_part": bool(0 <= v < obs.mask.shape[0] and 0 <= u < obs.mask.shape[1] and obs.mask[v, u]),
        })
        bar.update()
    hook.remove()
    return out


def fit(x: np.ndarray, y: np.ndarray, lam: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    mu, sd = x.mean(0), x.std(0) + 1e-6
    z = (x - mu) / sd
    w = np.linalg.solve(z.T @ z + lam * np.eye(z.shape[1]), z.T @ (y - y.mean()))
    return mu, sd, np.append(w, y.mean())


def hits(samples: list[dict], key: str, model) -> np.ndarray:
    mu, sd, w = model
    return np.array([s["frac"][int(np.argmax(((s[key] - mu) / sd) @ w[:-1]))] > 0.5 for s in samples])


def probe(train: list[dict], test: list[dict], key: str) -> np.ndarray:
    """Hits on `test` of the ridge probe on `key`, lambda chosen on the last fifth of `train`."""
    cut = int(len(train) * 0.8)
    fit_on, val = train[:cut], train[cut:]

    def stack(ss: list[dict]) -> tuple[np.ndarray, np.ndarray]:
        return np.concatenate([s[key] for s in ss]), np.concatenate([s["frac"] for s in ss])

    best = max(LAMBDAS, key=lambda lam: hits(val, key, fit(*stack(fit_on), lam)).mean())
    return hits(test, key, fit(*stack(train), best))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=800, help="multi-front cabinets; the last quarter is held out")
    ap.add_argument("--first-seed", type=int, default=500000, help="object seeds start after this")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    torch.set_num_threads(2)
    samples = collect(args.n, args.first_seed)
    cut = len(samples) * 3 // 4
    train, test = samples[:cut], samples[cut:]
    cols = {"image tokens (what the language model sees)": probe(train, test, "tokens"),
            "raw pixels of the block (7x7 RGB)": probe(train, test, "raw"),
            "the token's place only (the prior)": probe(train, test, "place"),
            "the model's grounding answer, on the sliding front": np.array([s["model_on_part"] for s in test])}
    groups = {"all": np.ones(len(test), bool)}
    for k in (2, 3):
        for h in (True, False):
            groups[f"{k} fronts, {'handle' if h else 'no handle'}"] = np.array(
                [s["fronts"] == k and s["handle"] == h for s in test])
    lines = [f"Held-out multi-front cabinets ({len(test)}; probes fitted on {len(train)}): share where the "
             "best-scoring token lies on the sliding front (chance: 1/2 with two fronts, 1/3 with three).", "",
             "| read-out | " + " | ".join(f"{g} (n={int(m.sum())})" for g, m in groups.items()) + " |",
             "|---|" + "---|" * len(groups)]
    for name, h in cols.items():
        lines.append(f"| {name} | " + " | ".join(f"{h[m].mean():.2f}" if m.any() else "-" for m in groups.values())
                     + " |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)
        summary = {name: {g: float(h[m].mean()) for g, m in groups.items() if m.any()} for name, h in cols.items()}
        args.out.with_suffix(".json").write_text(json.dumps(summary, indent=1) + "\n")


if __name__ == "__main__":
    main()
