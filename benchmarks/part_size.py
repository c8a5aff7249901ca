"""Success and contact-on-part by the size of the movable part, measured in the model's image tokens.

Why: the shipped model sees a 224x168 image as 8x6 merged tokens (28 model px each, 80x80 px of the 640x480
camera image). A toaster lever covers a fifth of one token. This script asks whether the model's misses are
where the part is smaller than what one token resolves, by re-rendering each episode's observation (the
episodes are fixed by their keys, so the scene is the one the matrix run saw; no model runs) and binning the
movable part's visible area. Every listed row is read on the same episodes; the paired sign test compares the
first two rows within each bin.

    .venv/bin/python benchmarks/part_size.py results/eval_contact_agreement grounded-snap60-depthup random-part \
        random-object --checkpoint models/small-grounded --out benchmarks/eval_part_size
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
from pathlib import Path

import numpy as np

from manipllm_ros.evaluation.paired import pooled_episodes, sign_test

INF = float("inf")
BINS: tuple[tuple[str, float, float], ...] = (  # label, low, high (tokens); the plot shows the first five
    ("0-0.5", 0.0, 0.5), ("0.5-1", 0.5, 1.0), ("1-2", 1.0, 2.0), ("2-4", 2.0, 4.0), ("≥ 4", 4.0, INF),
    ("all < 2", 0.0, 2.0), ("all ≥ 2", 2.0, INF))
PLOTTED = 5
MERGED_TOKEN_MODEL_PX = 28  # 14 px patches, 2x2 merge (Qwen2.5-VL)


def token_area_px(orig_wh: tuple[int, int], model_wh: tuple[int, int]) -> float:
    """Camera pixels one merged image token covers."""
    return (orig_wh[0] * MERGED_TOKEN_MODEL_PX / model_wh[0]) * (orig_wh[1] * MERGED_TOKEN_MODEL_PX / model_wh[1])


def _part_pixels(key: str) -> tuple[str, int, int, int]:
    """(key, visible movable-part pixels, image width, height) of an episode's first observation."""
    os.environ.setdefault("MUJOCO_GL", "egl")
    from manipllm_ros.evaluation.episode import EpisodeSpec, build_arm

    category, seed, index = key.rsplit("/", 2)
    _, arm = build_arm(EpisodeSpec(category, int(seed), int(index)))
    with arm:
        obs = arm.world.observe()
    h, w = obs.mask.shape
    return key, int(obs.mask.sum()), w, h


def part_sizes(root: Path, keys: list[str], workers: int) -> dict[str, tuple[int, int, int]]:
    """Part pixels per episode key, cached in root/part_pixels.json (rendering is the slow part)."""
    cache_file = root / "part_pixels.json"
    cache = json.loads(cache_file.read_text()) if cache_file.exists() else {}
    todo = sorted(set(keys) - set(cache))
    if todo:
        from tqdm import tqdm

        with mp.get_context("spawn").Pool(workers) as pool:
            for key, n, w, h in tqdm(pool.imap_unordered(_part_pixels, todo), total=len(todo), desc="render"):
                cache[key] = (n, w, h)
        cache_file.write_text(json.dumps(cache))
    return {k: tuple(cache[k]) for k in keys}


def analyse(root: Path, rows: list[str], model_wh: tuple[int, int], workers: int) -> dict:
    summary = json.loads((root / "summary.json").read_text())
    seeds, splits = summary["seeds"], summary["splits"]
    out: dict = {"root": str(root), "rows": rows, "seeds": seeds, "model_image": list(model_wh), "splits": {}}
    for split in splits:
        eps = {r: {f"{s}:{e['key']}": e for s in seeds
                   for e in pooled_episodes(root, r, split, [s])} for r in rows}
        keys = sorted(set.intersection(*(set(e) for e in eps.values())))
        sizes = part_sizes(root, sorted({k.split(":", 1)[1] for k in keys}), workers)
        per_bin = []
        for label, lo, hi in BINS:
            ks = []
            for k in keys:
                n, w, h = sizes[k.split(":", 1)[1]]
                if lo <= n / token_area_px((w, h), model_wh) < hi:
                    ks.append(k)
            entry = {"bin": label, "n": len(ks), "categories": {}}
            for k in ks:
                c = eps[rows[0]][k]["category"]
                entry["categories"][c] = entry["categories"].get(c, 0) + 1
            for r in rows:
                entry[r] = {"initial": float(np.mean([eps[r][k]["initial_success"] for k in ks])) if ks else None,
                            "on_part": float(np.mean([eps[r][k]["on_part"] for k in ks])) if ks else None}
            if len(rows) >= 2 and ks:
                a = np.array([eps[rows[0]][k]["initial_success"] for k in ks], bool)
                b = np.array([eps[rows[1]][k]["initial_success"] for k in ks], bool)
                entry["only_first"], entry["only_second"] = int((a & ~b).sum()), int((b & ~a).sum())
                entry["p"] = sign_test(entry["only_first"], entry["only_second"])
            per_bin.append(entry)
        out["splits"][split] = per_bin
    return out


def markdown(res: dict) -> str:
    rows = res["rows"]
    w, h = res["model_image"]
    lines = [f"Part size = the movable part's visible pixels over one merged image token's ({w}x{h} model image: "
             f"{w // MERGED_TOKEN_MODEL_PX}x{h // MERGED_TOKEN_MODEL_PX} tokens). Seeds {res['seeds']}, "
             f"episodes of `{res['root']}`; success = initial movement (> 0.01). p: paired sign test of "
             f"{rows[0]} against {rows[1]} on the bin's episodes.", ""]
    head = "| split | part size (tokens) | episodes | " + " | ".join(f"{r}: opened / on part" for r in rows)
    lines += [head + " | only " + rows[0] + " / only " + rows[1] + " | p | main categories |",
              "|" + "---|" * (len(rows) + 6)]
    for split, bins in res["splits"].items():
        for b in bins:
            if not b["n"]:
                continue
            cells = " | ".join(f"{b[r]['initial']:.2f} / {b[r]['on_part']:.2f}" for r in rows)
            cats = ", ".join(f"{c.replace('_', ' ')} {n}" for c, n in
                             sorted(b["categories"].items(), key=lambda kv: -kv[1])[:3])
            lines.append(f"| {split} | {b['bin']} | {b['n']} | {cells} | {b.get('only_first', '')} / "
                         f"{b.get('only_second', '')} | {b.get('p', float('nan')):.2g} | {cats} |")
    return "\n".join(lines) + "\n"


def plot(res: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    splits = list(res["splits"])
    fig, axs = plt.subplots(1, len(splits), figsize=(5.5 * len(splits), 3.8), squeeze=False)
    for ax, split in zip(axs[0], splits):
        bins = [b for b in res["splits"][split][:PLOTTED] if b["n"]]
        x = np.arange(len(bins))
        width = 0.8 / len(res["rows"])
        for j, r in enumerate(res["rows"]):
            ax.bar(x + (j - (len(res["rows"]) - 1) / 2) * width, [b[r]["initial"] for b in bins], width, label=r)
        ax.set_xticks(x, [f"{b['bin']}\n(n={b['n']})" for b in bins], fontsize=8)
        ax.set_xlabel("movable part's visible area (merged image tokens)")
        ax.set_ylabel("opened (initial movement)")
        ax.set_ylim(0, 1.05)
        ax.set_title(split.replace("test_seen", "unseen instances").replace("test_unseen", "held-out categories"))
    axs[0][0].legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("root", type=Path, help="matrix output folder (manipllm eval --matrix ... --out)")
    ap.add_argument("rows", nargs="+", help="row names; the first two are compared by the sign test")
    ap.add_argument("--checkpoint", required=True, help="the model whose image size defines a token")
    ap.add_argument("--out", type=Path, help="writes OUT.md, OUT.json, OUT.png")
    ap.add_argument("--workers", type=int, default=2)
    a = ap.parse_args()
    meta = json.loads((Path(a.checkpoint) / "manipllm_model.json").read_text())["model"]
    res = analyse(a.root, a.rows, (int(meta["image_width"]), int(meta["image_height"])), a.workers)
    text = markdown(res)
    print(text)
    if a.out:
        a.out.with_suffix(".md").write_text(text)
        a.out.with_suffix(".json").write_text(json.dumps(res, indent=2))
        plot(res, a.out.with_suffix(".png"))


if __name__ == "__main__":
    main()
