"""`protrusion_stay_on_own` (eval suffix `-stayown`), measured exactly on a recorded row.

The rule keeps a contact on a part the model already touched (contact.resolve_contact):
- no raised-part move onto the rim of the contact's own surface (contact.is_own_rim: a lever plate larger than the
  raised test's ring is not raised in its middle, only at its rim);
- from a pixel on a raised part (contact.own_raised_part: a toaster's lever) the surface snap moves only within
  that part, or not at all, instead of off it to a surface facing the model's up.

It can change only episodes whose contact took a raised-part move or a surface snap, and only those whose geometry
it tests. For every such move of the recorded row the script renders the observation again and keeps as a
candidate each raised move whose blob (checked against the recorded contact) lies within 10 mm of the plane at its
start, and each surface snap whose start stands 4-70 mm off its ring (the notes round the start pixel, so the
margins are wide and the re-run decides). Candidates are run again with the rule on; a re-run that lands on the
recorded pixel must end as recorded. Every other episode is unchanged, so the new row is exact.

    MUJOCO_GL=egl .venv/bin/python benchmarks/stay_on_own.py results/eval_bound \
        raised40-facing45-nooutline-handle200 --checkpoint models/small-objview-hard --seeds 3 4 ... 26 \
        --splits test_seen --compose raised40-facing45-nooutline-stayown-handle200 --out benchmarks/stay_on_own.json
"""

from __future__ import annotations

import argparse
import json
import re
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np

from manipllm_ros import geometry as G
from manipllm_ros.contact import protrusion_heights, raised_blob
from manipllm_ros.evaluation.episode import EpisodeSpec, build_arm, run_episode
from manipllm_ros.evaluation.proposals import make_proposer, model_proposer_name, parse_model_proposer

_RAISED = re.compile(r"onto a raised part from \((\d+), (\d+)\)")
_SNAPPED = re.compile(r"snapped from \((\d+), (\d+)\)")
PLANE_MARGIN_M = 0.01
RAISED_START_M = (0.004, 0.07)


def stay_name(name: str) -> str:
    """The recorded proposer's name with the rule on."""
    return model_proposer_name(replace(parse_model_proposer(name), stay_on_own=True))


def candidate(e: dict, obs, protrusion_px: int) -> str:
    """Why the rule might change this recorded episode ('' = it cannot)."""
    m = _RAISED.search(e["contact_note"])
    if m is not None:
        u0, v0 = int(m[1]), int(m[2])
        blob = raised_blob(u0, v0, obs.depth, protrusion_px)
        if blob is None or (int(blob.pixel[0]), int(blob.pixel[1])) != (e["u"], e["v"]):
            return "rim"  # the rounded start finds another blob: only the re-run can tell
        try:
            n = G.surface_normal_at(u0, v0, obs.depth, obs.intrinsics.K)
            off = abs(float((G.pixel_to_point(*blob.pixel, obs.depth, obs.intrinsics.K)
                             - G.pixel_to_point(u0, v0, obs.depth, obs.intrinsics.K)) @ n))
        except G.GeometryError:
            return ""
        return "rim" if off < PLANE_MARGIN_M else ""
    m = _SNAPPED.search(e["contact_note"])
    if m is not None:
        ht = protrusion_heights(np.array([int(m[1])]), np.array([int(m[2])]), obs.depth)[0]
        return "raised start" if np.isfinite(ht) and RAISED_START_M[0] < ht < RAISED_START_M[1] else ""
    return ""


def run_seed(args: tuple) -> tuple[list[dict], list[dict]]:
    """(all episodes of the new row, the candidates' records) for one seed and split."""
    root, row, checkpoint, seed, split = args
    f = Path(root) / f"seed{seed}" / split / row / "episodes.jsonl"
    recorded = [json.loads(x) for x in f.read_text().splitlines()]
    proposer, new, changed = None, [], []
    for e in recorded:
        spec_name = parse_model_proposer(e["proposer"])
        cat, oseed, idx = e["key"].split("/")
        spec = EpisodeSpec(cat, int(oseed), int(idx))
        why = ""
        if _RAISED.search(e["contact_note"]) or _SNAPPED.search(e["contact_note"]):
            _, arm = build_arm(spec)
            with arm:
                obs = arm.world.observe()
            why = candidate(e, obs, spec_name.protrusion_px)
        if not why:
            new.append({**e, "proposer": stay_name(e["proposer"])})
            continue
        if proposer is None:
            proposer = make_proposer(stay_name(e["proposer"]), checkpoint)
        r = run_episode(spec, proposer, pull=e["pull"], seed=seed).to_dict()
        if (r["u"], r["v"]) == (e["u"], e["v"]) and any(r[k] != e[k] for k in ("initial_success", "long_success")):
            raise RuntimeError(f"seed {seed} {e['key']}: same contact, another outcome")
        new.append(r)
        changed.append({"seed": seed, "split": split, "why": why, **r,
                        "was": {k: e[k] for k in ("u", "v", "on_part", "initial_success", "long_success",
                                                  "contact_note")}})
    return new, changed


def recheck_seed(args: tuple) -> list[str]:
    """Run again, with the code as it is now, every episode of a composed row that differs from the recorded row,
    and put the new record in place where it ends otherwise; what changed, one line each."""
    root, row, composed, checkpoint, seed, split = args
    run = Path(root) / f"seed{seed}" / split
    served = {e["key"]: e for e in map(json.loads, (run / row / "episodes.jsonl").read_text().splitlines())}
    new = [json.loads(x) for x in (run / composed / "episodes.jsonl").read_text().splitlines()]
    proposer, said = None, []
    for i, e in enumerate(new):
        s = served[e["key"]]
        if all(e[k] == s[k] for k in ("u", "v", "contact_note")):
            continue
        if proposer is None:
            proposer = make_proposer(e["proposer"], checkpoint)
        cat, oseed, idx = e["key"].split("/")
        spec = EpisodeSpec(cat, int(oseed), int(idx))
        obj, arm = build_arm(spec)
        with arm:  # the proposal alone first: the physics only where the contact is not the composed one
            prop = proposer.propose(arm.world.observe(), obj.meta.instruction,
                                    np.random.default_rng([seed, spec.object_seed, spec.index]))
        if (prop.u, prop.v, prop.contact_note) == (e["u"], e["v"], e["contact_note"]):
            continue
        r = run_episode(spec, proposer, pull=e["pull"], seed=seed).to_dict()
        if any(r[k] != e[k] for k in ("u", "v", "contact_note", "initial_success", "long_success")):
            said.append(f"{split} seed {seed} {e['key']}: ({e['u']}, {e['v']}) {e['initial_success']} -> "
                        f"({r['u']}, {r['v']}) {r['initial_success']}")
            new[i] = r
    (run / composed / "episodes.jsonl").write_text("".join(json.dumps(x) + "\n" for x in new))
    return said


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("root", type=Path)
    ap.add_argument("row")
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--seeds", type=int, nargs="+", required=True)
    ap.add_argument("--splits", nargs="+", default=["test_seen", "test_unseen"])
    ap.add_argument("--compose", metavar="NAME", help="write the new row as this row folder")
    ap.add_argument("--out", type=Path, help="JSON: the tally and every re-run candidate")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--recheck", action="store_true", help="with --compose: only run again the composed row's "
                    "episodes that differ from the recorded row, with the code as it is now, and replace those that "
                    "end otherwise")
    args = ap.parse_args()
    if args.recheck:
        jobs = [(str(args.root), args.row, args.compose, args.checkpoint, s, sp) for sp in args.splits
                for s in args.seeds if (args.root / f"seed{s}" / sp / args.compose / "episodes.jsonl").is_file()]
        with ProcessPoolExecutor(args.workers) as pool:
            for said in pool.map(recheck_seed, jobs):
                print("\n".join(said) or "unchanged", flush=True)
        return
    jobs = [(str(args.root), args.row, args.checkpoint, s, sp) for sp in args.splits for s in args.seeds
            if (args.root / f"seed{s}" / sp / args.row / "episodes.jsonl").is_file()]
    tally: Counter = Counter()
    cats: Counter = Counter()
    reruns: list[dict] = []
    with ProcessPoolExecutor(args.workers) as pool:
        for (root, row, _, seed, split), (new, changed) in zip(jobs, pool.map(run_seed, jobs)):
            if args.compose:
                d = Path(root) / f"seed{seed}" / split / args.compose
                d.mkdir(parents=True, exist_ok=True)
                (d / "episodes.jsonl").write_text("".join(json.dumps(x) + "\n" for x in new))
            tally[(split, "episodes")] += len(new)
            for c in changed:
                w, moved = c["was"], (c["u"], c["v"]) != (c["was"]["u"], c["was"]["v"])
                tally[(split, c["why"], "re-run")] += 1
                tally[(split, c["why"], "moved")] += moved
                for k, key in (("initial", "initial_success"), ("long", "long_success")):
                    tally[(split, c["why"], k, "gained")] += c[key] and not w[key]
                    tally[(split, c["why"], k, "lost")] += w[key] and not c[key]
                tally[(split, c["why"], "on part", "gained")] += c["on_part"] and not w["on_part"]
                tally[(split, c["why"], "on part", "lost")] += w["on_part"] and not c["on_part"]
                cats[(split, c["category"])] += int(c["initial_success"]) - int(w["initial_success"])
                reruns.append(c)
            print(f"{split} seed {seed}: {len(changed)} re-run", flush=True)
    lines = ["| split | rule part | re-run | moved | initial: gained / lost | long: gained / lost "
             "| on the part: gained / lost |", "|---|---|---|---|---|---|---|"]
    for split in args.splits:
        for why in ("rim", "raised start"):
            t = lambda *k: tally[(split, why, *k)]  # noqa: E731
            lines.append(f"| {split} | {why} | {t('re-run')} | {t('moved')} | {t('initial', 'gained')} / "
                         f"{t('initial', 'lost')} | {t('long', 'gained')} / {t('long', 'lost')} | "
                         f"{t('on part', 'gained')} / {t('on part', 'lost')} |")
    per_cat = {f"{s} {c}": v for (s, c), v in sorted(cats.items()) if v}
    print("\n".join(lines))
    print("\nnet initial successes per category:", per_cat)
    if args.out:
        args.out.write_text(json.dumps({"seeds": args.seeds, "splits": args.splits, "row": args.row,
                                        "table": lines, "net_per_category": per_cat,
                                        "episodes": {s: tally[(s, "episodes")] for s in args.splits},
                                        "reruns": reruns}, indent=1))


if __name__ == "__main__":
    main()
