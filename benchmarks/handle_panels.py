"""The handle snap's two fixes (`handles.py`), measured exactly on a recorded row.

The row was recorded with the handle snap as `benchmarks/eval_handle_snap.md` built it: a handle stood 8 mm or more
off the face, and two fronts were two panels only where the depth showed a gap between them. Now
- a recessed pull plate, 4-9 mm proud, is a handle too (`HANDLE_MIN_M` 4 mm);
- fronts that meet without a visible gap are two panels when the face around the handle stands off the plane of
  the face at the contact by more than 1 mm (`PANEL_STEP_M`; a sliding drawer sits 2 mm behind its fixed fronts).

The snap acts first on the model's own pixel (the recorded contact, or where the note says a later snap moved it
from), so it can change only the episodes where its answer there changes. The script renders every episode of the
row, asks the snap on that pixel as recorded (the old constants) and as it is now, and runs the changed ones again
with the code as it is now (the proposal first; the physics only where the contact or its note differ). Every other
episode ends as recorded, so the new row (`--compose NAME`) is exact; `manipllm eval --matrix` then finds it done.

    MUJOCO_GL=egl .venv/bin/python benchmarks/handle_panels.py results/eval_bound \
        raised40-facing45-nooutline-stayown-handle200 --split test_seen --seeds 3 4 ... 26 \
        --compose raised40-facing45-nooutline-stayown-handle200-panels --out benchmarks/handle_panels.json
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from manipllm_ros import handles as H
from manipllm_ros.evaluation.episode import EpisodeSpec, build_arm, run_episode
from manipllm_ros.evaluation.proposals import make_proposer

sys.path.insert(0, str(Path(__file__).resolve().parent))
from handle_snap import CHECKPOINT, model_pixel  # noqa: E402  (the model's own pixel, from a recorded note)

RECORDED = {"min_m": 0.008, "panel_step_m": None}  # the snap as the row was recorded


def snap(u: int, v: int, obs, radius: int, recorded: bool) -> H.HandleSnap:
    return H.snap_beside_handle(u, v, obs.depth, obs.intrinsics.K, radius, **(RECORDED if recorded else {}))


def run_seed(args: tuple) -> tuple[list[dict], list[dict]]:
    """(every episode of the new row, the changed episodes with what they were) for one seed."""
    root, row, split, seed, radius = args
    recorded = [json.loads(x) for x in (Path(root) / f"seed{seed}" / split / row / "episodes.jsonl")
                .read_text().splitlines()]
    proposer, new, changed = None, [], []
    for e in recorded:
        if not e["parsed"]:
            new.append(e)
            continue
        cat, oseed, idx = e["key"].split("/")
        spec = EpisodeSpec(cat, int(oseed), int(idx))
        obj, arm = build_arm(spec)
        with arm:
            obs = arm.world.observe()
        u, v = model_pixel(e)
        old, now = snap(u, v, obs, radius, True), snap(u, v, obs, radius, False)
        if old.pixel == now.pixel:
            new.append(e)
            continue
        if proposer is None:
            proposer = make_proposer(e["proposer"], CHECKPOINT)
        prop = proposer.propose(obs, obj.meta.instruction, np.random.default_rng([seed, spec.object_seed, spec.index]))
        if (prop.u, prop.v, prop.contact_note) == (e["u"], e["v"], e["contact_note"]):
            new.append(e)
            continue
        r = run_episode(spec, proposer, pull=e["pull"], seed=seed).to_dict()
        new.append(r)
        changed.append({"split": split, "seed": seed, "why_now": now.why, "why_recorded": old.why, **r,
                        "was": {k: e[k] for k in ("u", "v", "on_part", "initial_success", "long_success",
                                                  "contact_note")}})
    return new, changed


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("root", type=Path)
    ap.add_argument("row")
    ap.add_argument("--split", default="test_seen")
    ap.add_argument("--seeds", type=int, nargs="+", required=True)
    ap.add_argument("--radius", type=int, default=200, help="the row's handle radius (px)")
    ap.add_argument("--compose", metavar="NAME", help="write the new row as this row folder")
    ap.add_argument("--out", type=Path, help="JSON: the tally and every changed episode")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    jobs = [(str(args.root), args.row, args.split, s, args.radius) for s in args.seeds]
    tally: Counter = Counter()
    cats: Counter = Counter()
    changed_all: list[dict] = []
    with ProcessPoolExecutor(args.workers) as pool:
        for (_, _, _, seed, _), (new, changed) in zip(jobs, pool.map(run_seed, jobs)):
            if args.compose:
                d = args.root / f"seed{seed}" / args.split / args.compose
                d.mkdir(parents=True, exist_ok=True)
                (d / "episodes.jsonl").write_text("".join(json.dumps(x) + "\n" for x in new))
            tally["episodes"] += len(new)
            for c in changed:
                w = c["was"]
                tally["changed"] += 1
                for k in ("initial_success", "long_success", "on_part"):
                    tally[(k, "gained")] += c[k] and not w[k]
                    tally[(k, "lost")] += w[k] and not c[k]
                cats[c["category"]] += int(c["initial_success"]) - int(w["initial_success"])
            changed_all += changed
            print(f"seed {seed}: {len(changed)} changed", flush=True)
    t = tally
    lines = [f"`{args.row}`, {args.split}, seeds {args.seeds[0]}-{args.seeds[-1]}: {t['episodes']} episodes, "
             f"{t['changed']} with another contact now.", "",
             "| | gained | lost |", "|---|---|---|"]
    lines += [f"| {name} | {t[(k, 'gained')]} | {t[(k, 'lost')]} |" for name, k in
              (("initial movement", "initial_success"), ("long distance", "long_success"),
               ("contact on the movable part", "on_part"))]
    per_cat = {c: n for c, n in sorted(cats.items()) if n}
    print("\n".join(lines))
    print("\nnet initial successes per category:", per_cat)
    if args.out:
        args.out.write_text(json.dumps({"row": args.row, "split": args.split, "seeds": args.seeds, "table": lines,
                                        "net_per_category": per_cat, "changed": changed_all}, indent=1))


if __name__ == "__main__":
    main()
