"""Does asking the grounding question again on a zoomed-in crop put the contact on the part more often?

For the episodes `manipllm eval` would run (runner.episode_specs: split, seeds, episodes per category), render
the first observation (no arm motion) and ask each checkpoint for its grounding answer, with each zoom (0 = the
first answer only). Reports how often the contact pixel lies on the movable part, per category and in total,
and, to separate the two stages, the error of the zoomed answer when the crop is centred near the true part
centre (Gaussian offset of 25 x 20 px, about the first answer's error) against the error of the full-image
answer. No snap and no depth: the grounding answer alone.

    .venv/bin/python benchmarks/zoom_grounding.py --checkpoints models/small-grounded runs/small_ground_zoom/final \
        --zooms 0 1.5 2 2.5 --seeds 0 1 --out benchmarks/eval_zoom
"""

from __future__ import annotations

import argparse
import json
import os
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

os.environ.setdefault("MUJOCO_GL", "egl")

from manipllm_ros import prompts as P  # noqa: E402
from manipllm_ros.evaluation.episode import build_arm  # noqa: E402
from manipllm_ros.evaluation.runner import EvalConfig, episode_specs  # noqa: E402
from manipllm_ros.model.policy import PosePredictor, Prediction  # noqa: E402
from manipllm_ros.model.zoom import crop, zoom_window  # noqa: E402


def observations(split: str, seeds: list[int], episodes: int) -> list[dict]:
    out = []
    for seed in seeds:
        for spec in episode_specs(EvalConfig(out=Path("."), split=split, episodes_per_category=episodes, seed=seed)):
            obj, arm = build_arm(spec)
            with arm:
                obs = arm.world.observe()
            vs, us = np.nonzero(obs.mask)
            out.append({"category": spec.category, "rgb": obs.rgb, "mask": obs.mask, "instruction": obj.meta.instruction,
                        "centre": (float(us.mean()), float(vs.mean())) if len(us) else None})
    return out


def on_part(mask: np.ndarray, uv) -> bool:
    u, v = int(round(uv[0])), int(round(uv[1]))
    return 0 <= u < mask.shape[1] and 0 <= v < mask.shape[0] and bool(mask[v, u])


def contact_rates(pred: PosePredictor, obs: list[dict], zoom: float, batch: int = 8) -> dict[str, list[bool]]:
    rates: dict[str, list[bool]] = defaultdict(list)
    for i in range(0, len(obs), batch):
        chunk = obs[i:i + batch]
        res = pred.predict_batch([o["rgb"] for o in chunk], [o["instruction"] for o in chunk], chain_of_thought=False,
                                 ground_contact=True, zoom=zoom)
        for o, r in zip(chunk, res):
            rates[o["category"]].append(isinstance(r, Prediction) and on_part(o["mask"], r.pixel))
    return rates


def stage_errors(pred: PosePredictor, obs: list[dict], zoom: float, seed: int = 0) -> tuple[float, float]:
    """Median error (px) of the full-image grounding answer and of the zoomed answer on a crop near the truth."""
    rng = np.random.default_rng(seed)
    full, zoomed = [], []
    for o in obs:
        if o["centre"] is None:
            continue
        c = o["centre"]
        win = zoom_window((c[0] + rng.normal(0, 25), c[1] + rng.normal(0, 20)), zoom, o["rgb"].shape[1],
                          o["rgb"].shape[0])
        texts = pred.ask([o["rgb"], crop(o["rgb"], win)], [P.grounding_question(o["instruction"])] * 2, 32)
        try:
            _, a = P.parse_grounding(texts[0], pred.vlm.processor.frame(o["rgb"].shape[1], o["rgb"].shape[0]))
            _, b = P.parse_grounding(texts[1], pred.vlm.processor.frame(win.width, win.height))
        except P.PromptParseError:
            continue
        b = win.to_full(*b)
        full.append(float(np.hypot(a[0] - c[0], a[1] - c[1])))
        zoomed.append(float(np.hypot(b[0] - c[0], b[1] - c[1])))
    return float(np.median(full)), float(np.median(zoomed))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoints", nargs="+", required=True)
    ap.add_argument("--zooms", nargs="+", type=float, default=[0.0, 2.0])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    ap.add_argument("--episodes", type=int, default=8, help="per category and seed")
    ap.add_argument("--splits", nargs="+", default=["test_seen", "test_unseen"])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, help="writes OUT.md and OUT.json")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    result: dict = {"seeds": a.seeds, "episodes": a.episodes, "rows": []}
    obs = {s: observations(s, a.seeds, a.episodes) for s in a.splits}
    for ck in a.checkpoints:
        pred = PosePredictor.load(ck, device="cpu")
        zoom_trained = (pred.vlm.trained_tasks or {}).get("grounding_zoom", 0.0) > 0
        for zoom in a.zooms:
            if zoom and not zoom_trained:
                continue
            row = {"checkpoint": ck, "zoom": zoom}
            for split in a.splits:
                rates = contact_rates(pred, obs[split], zoom)
                row[split] = {"on_part": float(np.mean(sum(rates.values(), []))), "n": sum(map(len, rates.values())),
                              "per_category": {c: float(np.mean(v)) for c, v in sorted(rates.items())}}
            result["rows"].append(row)
            print(ck, zoom, {s: round(row[s]["on_part"], 3) for s in a.splits}, flush=True)
        if zoom_trained:
            result.setdefault("stage_errors", {})[ck] = {
                s: dict(zip(("full_px", "zoom2_near_truth_px"), stage_errors(pred, obs[s], 2.0))) for s in a.splits}
    lines = [f"Seeds {a.seeds}, {a.episodes} episodes per category and seed; contact = the grounding answer "
             "(zoom 0) or the zoomed one; on part = on the movable part's mask.", "",
             "| checkpoint | zoom | " + " | ".join(f"{s}: on part (n)" for s in a.splits) + " |",
             "|---|---|" + "---|" * len(a.splits)]
    for r in result["rows"]:
        lines.append(f"| {r['checkpoint']} | {r['zoom']:g} | " +
                     " | ".join(f"{r[s]['on_part']:.3f} ({r[s]['n']})" for s in a.splits) + " |")
    cats = sorted({c for r in result["rows"] for s in a.splits for c in r[s]["per_category"]})
    lines += ["", "| category | " + " | ".join(f"{Path(r['checkpoint']).name} z{r['zoom']:g}" for r in result["rows"])
              + " |", "|---|" + "---|" * len(result["rows"])]
    for c in cats:
        vals = [next((r[s]["per_category"][c] for s in a.splits if c in r[s]["per_category"]), float("nan"))
                for r in result["rows"]]
        lines.append(f"| {c.replace('_', ' ')} | " + " | ".join(f"{v:.2f}" for v in vals) + " |")
    for ck, errs in result.get("stage_errors", {}).items():
        lines += ["", f"{ck}: median grounding error, full image / zoom 2 on a crop near the true centre: " +
                  "; ".join(f"{s} {e['full_px']:.1f} / {e['zoom2_near_truth_px']:.1f} px" for s, e in errs.items())]
    text = "\n".join(lines) + "\n"
    print(text)
    if a.out:
        a.out.with_suffix(".json").write_text(json.dumps(result, indent=2))
        Path(str(a.out) + "_table.md").write_text(text)


if __name__ == "__main__":
    main()
