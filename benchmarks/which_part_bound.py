"""How far ahead of the mask oracle could the model get if it always found the part that moves?

Issue 7 asks the model to beat the mask oracle (a random pixel on the movable part) on unseen instances by more
than the run-to-run spread. The model's remaining losses are contacts off the movable part; its gains are where on
the part it pulls. This reads both rows' recorded episodes (same objects, same cameras) and scores two what-ifs:

- **which part, fixed**: where the model's contact is off the part, the episode ends as the oracle's did (the right
  part, a random place on it); where it is on the part, as the model's did. Cabinets whose fronts are all bare
  (two or three fronts, none with a handle) are the exception: the sliding front looks exactly like the fixed
  ones, so an eye that sees perfectly still picks it one time in n, and the episode counts 1/n of the oracle's.
- **best of both**: every episode counts as whichever of the model and the oracle did better (the oracle at 1/n
  on bare fronts the model missed): a model that finds the part and never picks a worse place on it than chance.
- **which part, fixed, bare fronts too**: as the first, but knowing which bare front slides, which no image shows:
  how much of the oracle's edge is knowledge the camera does not have.

`--snapped-off` also renders every contact that ended off the part and counts those where the model's own pixel
(before any snap) was on it. Used for `eval_which_part.md`:

    MUJOCO_GL=egl .venv/bin/python benchmarks/which_part_bound.py results/eval_bound random-part \
        raised40-facing45-nooutline-stayown-handle200 --snapped-off --out benchmarks/which_part_bound_stayown.md \
        --plot benchmarks/which_part_bound.png
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from eval_limits import drawer_group  # noqa: E402  (the cabinet's fronts and handle, from its object seed)

_FIRST_FROM = re.compile(r"from \((\d+), (\d+)\)")


def bare_fronts(category: str, seed: int) -> int:
    """n when the episode's cabinet has n >= 2 fronts and none has a handle, else 0."""
    if category != "cabinet_drawer":
        return 0
    group = drawer_group(seed)
    n = int(group.split()[0])
    return n if n >= 2 and group.endswith("no handle") else 0


def episodes(root: Path, row: str, seed: int) -> dict[str, dict]:
    f = root / f"seed{seed}" / "test_seen" / row / "episodes.jsonl"
    return {e["key"]: e for e in map(json.loads, f.read_text().splitlines())}


def score(oracle: dict, model: dict) -> dict[str, float]:
    """One episode's initial-movement success (0..1) under each what-if."""
    o, m = float(oracle["initial_success"]), float(model["initial_success"])
    n = 0 if model["on_part"] else bare_fronts(model["category"], model["object_seed"])
    right_part = o / n if n else o  # the oracle's outcome, at 1/n where the image cannot show which front
    return {"oracle": o, "model": m, "which part, fixed": m if model["on_part"] else right_part,
            "best of both": max(m, right_part), "which part, fixed, bare fronts too": m if model["on_part"] else o}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("root", type=Path, help="matrix output folder with both rows on the test_seen split")
    ap.add_argument("oracle_row")
    ap.add_argument("model_row")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--plot", type=Path)
    ap.add_argument("--snapped-off", action="store_true", help="also render every off-part contact and count "
                    "those whose model pixel (before any snap) was on the part")
    args = ap.parse_args()
    seeds = sorted(int(p.name[4:]) for p in args.root.glob("seed*")
                   if (p / "test_seen" / args.model_row / "episodes.jsonl").is_file())
    names = ["oracle", "model", "which part, fixed", "best of both", "which part, fixed, bare fronts too"]
    per_seed: dict[str, list[float]] = defaultdict(list)
    per_cat: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    n_total = 0
    for s in seeds:
        o_eps, m_eps = episodes(args.root, args.oracle_row, s), episodes(args.root, args.model_row, s)
        if o_eps.keys() != m_eps.keys():
            raise SystemExit(f"seed {s}: the two rows did not run the same episodes")
        scores = [score(o_eps[k], m_eps[k]) for k in sorted(m_eps)]
        for k, sc in zip(sorted(m_eps), scores):
            for name in names:
                per_cat[m_eps[k]["category"]][name] += sc[name]
        for name in names:
            per_seed[name].append(float(np.mean([sc[name] for sc in scores])))
        n_total += len(scores)
    oracle = np.array(per_seed["oracle"])
    spread = float(np.std(oracle, ddof=1))
    lines = [f"Unseen instances (test_seen), initial movement, seeds {seeds[0]}-{seeds[-1]} ({len(seeds)} seeds, "
             f"{n_total} episodes per row) of `{args.root}`: `{args.oracle_row}` against `{args.model_row}`.", "",
             "| what-if | success per seed | lead over the oracle per seed | lead, episodes of all |",
             "|---|---|---|---|"]
    for name in names:
        v = np.array(per_seed[name])
        d = v - oracle
        lead_eps = sum(per_cat[c][name] - per_cat[c]["oracle"] for c in per_cat)
        lines.append(f"| {name} | {v.mean():.3f} ± {v.std(ddof=1):.3f} | {d.mean():+.3f} ± {d.std(ddof=1):.3f} "
                     f"| {lead_eps:+.1f} of {n_total} |")
    lines += ["", f"Run-to-run spread (the oracle's sample std over seeds): {spread:.3f}.", "",
              "Per category, episodes opened (of the category's episodes), where any what-if differs from the "
              "oracle by 2 or more:", "",
              "| category | episodes | " + " | ".join(names) + " |", "|---|---|" + "---|" * len(names)]
    n_cat = n_total // len(per_cat)
    for c in sorted(per_cat, key=lambda c: per_cat[c]["which part, fixed"] - per_cat[c]["oracle"]):
        if max(abs(per_cat[c][n] - per_cat[c]["oracle"]) for n in names) >= 2:
            lines.append(f"| {c} | {n_cat} | " + " | ".join(f"{per_cat[c][n]:.1f}" for n in names) + " |")
    if args.snapped_off:
        lines += [""] + snapped_off(args.root, args.model_row, seeds)
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)
    if args.plot:
        plot(per_seed, seeds, spread, args.plot)


def snapped_off(root: Path, row: str, seeds: list[int]) -> list[str]:
    """Markdown: the model row's contacts off the movable part, and of them those where the model's own pixel (the
    first 'from (u, v)' of the note, before any snap) was on it, per category."""
    from manipllm_ros.evaluation.episode import EpisodeSpec, build_arm

    off: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])  # off part, of them model pixel on part, opened
    for s in seeds:
        for e in episodes(root, row, s).values():
            if e["on_part"] or not e["parsed"]:
                continue
            c = off[e["category"]]
            c[0] += 1
            m = _FIRST_FROM.search(e["contact_note"])
            if m is None:
                continue
            cat, oseed, idx = e["key"].split("/")
            _, arm = build_arm(EpisodeSpec(cat, int(oseed), int(idx)))
            with arm:
                mask = arm.world.observe().mask
            if mask[int(m[2]), int(m[1])]:
                c[1] += 1
                c[2] += bool(e["initial_success"])
    out = ["Contacts off the movable part, and of them those where the model's own pixel was on it and a snap "
           "moved it off (opened: initial movement all the same):", "",
           "| category | off the part | model's pixel on the part | of those, opened |", "|---|---|---|---|"]
    for cat in sorted(off, key=lambda k: -off[k][1]):
        out.append(f"| {cat} | {off[cat][0]} | {off[cat][1]} | {off[cat][2]} |")
    tot = [sum(v[i] for v in off.values()) for i in range(3)]
    out.append(f"| all | {tot[0]} | {tot[1]} | {tot[2]} |")
    return out


def plot(per_seed: dict[str, list[float]], seeds: list[int], spread: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    oracle = np.array(per_seed["oracle"])
    fig, ax = plt.subplots(figsize=(8, 4))
    top = spread * 2
    for name, mk in (("model", "o"), ("which part, fixed", "s"), ("best of both", "^")):
        d = np.array(per_seed[name]) - oracle
        top = max(top, float(d.max()) + 0.01)
        ax.plot(seeds, d, mk + "-", label=f"{name}: mean {d.mean():+.3f}")
    ax.axhline(0, color="k", lw=0.8)
    ax.axhspan(spread, top, color="g", alpha=0.1, label=f"ahead by more than the spread ({spread:.3f})")
    ax.set_xlabel("seed")
    ax.set_ylabel("initial success minus the mask oracle's")
    ax.set_title("Unseen instances: the model's lead over the mask oracle, and two what-ifs")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
