"""Probe-force escalation (force_escalation.patch), measured on the stalled episodes of a matrix run.

The patch lets AIA, before it ends an episode as stalled, probe again with the force raised 1.5x up to
`probe_force_max`, and makes the step after a raised probe lead with that force too (`Arm.move_along(force=)`). It
never acts in an episode that did not end stalled, and the simulation is deterministic, so re-running only the
stalled episodes of each row gives the whole row's change exactly. Each re-run checks that the contact pixel is the
recorded one.

    git worktree add /tmp/esc HEAD && git -C /tmp/esc apply $PWD/benchmarks/levers_tried/force_escalation.patch
    PYTHONPATH=/tmp/esc/src MUJOCO_GL=egl .venv/bin/python benchmarks/levers_tried/force_escalation.py \
        results/eval_raised_facing random-part raised40-facing45 --seeds 3 4 ... 20   # ~10 min per row
"""

from __future__ import annotations

import argparse
import inspect
import json
import sys
from collections import Counter
from pathlib import Path

from tqdm import tqdm

from manipllm_ros.control.config import AIAConfig
from manipllm_ros.evaluation.episode import EpisodeSpec, run_episode
from manipllm_ros.evaluation.proposals import make_proposer

CHECKPOINT = "models/small-objview-hard"


def rerun_row(root: Path, row: str, split: str, seeds: list[int], aia: AIAConfig) -> list[dict]:
    proposer, out = None, []
    for seed in seeds:
        lines = (root / f"seed{seed}" / split / row / "episodes.jsonl").read_text().splitlines()
        stalled = [e for e in map(json.loads, lines) if e["failure"].startswith("stalled")]
        for e in tqdm(stalled, desc=f"{row} seed {seed}", leave=False):
            if proposer is None:
                name = e["proposer"]
                proposer = make_proposer(name, CHECKPOINT if name.startswith("model") else None)
            cat, oseed, idx = e["key"].split("/")
            o = run_episode(EpisodeSpec(cat, int(oseed), int(idx)), proposer, seed=seed, aia=aia)
            if (o.u, o.v) != (e["u"], e["v"]):
                raise RuntimeError(f"seed {seed} {e['key']}: contact ({o.u}, {o.v}) is not the recorded one")
            out.append({"seed": seed, "old": e, "new": o.to_dict()})
    return out


def table(row: str, runs: list[dict], n_episodes: int) -> list[str]:
    def count(which: str, field: str) -> int:
        return sum(bool(r[which][field]) for r in runs)

    lines = [f"| {row} | {len(runs)} | {count('old', 'initial_success')} → {count('new', 'initial_success')} | "
             f"{count('old', 'long_success')} → {count('new', 'long_success')} | {n_episodes} |"]
    per_cat = Counter()
    for r in runs:
        per_cat[r["new"]["category"]] += int(r["new"]["initial_success"]) - int(r["old"]["initial_success"])
    changed = ", ".join(f"{c} {d:+d}" for c, d in sorted(per_cat.items(), key=lambda x: -abs(x[1])) if d)
    return lines + [f"|  | per category, initial: {changed or 'none'} | | | |"]


def main() -> None:
    if "aia" not in inspect.signature(run_episode).parameters:
        sys.exit("run_episode takes no AIAConfig: apply force_escalation.patch in a worktree first (see the docstring)")
    ap = argparse.ArgumentParser()
    ap.add_argument("root", type=Path)
    ap.add_argument("rows", nargs="+")
    ap.add_argument("--seeds", type=int, nargs="+", required=True)
    ap.add_argument("--split", default="test_seen")
    ap.add_argument("--force-max", type=float, default=40.0)
    ap.add_argument("--out", type=Path, help="also write the table here")
    args = ap.parse_args()
    aia = AIAConfig(probe_force_max=args.force_max)
    lines = [f"Episodes that ended stalled, {args.split}, seeds {args.seeds[0]}-{args.seeds[-1]}, re-run with probe "
             f"forces 15 N raised 1.5x up to {args.force_max:g} N:", "",
             "| row | stalled episodes | initial successes among them | long successes among them | episodes in the "
             "row |", "|---|---|---|---|---|"]
    for row in args.rows:
        n = sum(len((args.root / f"seed{s}" / args.split / row / "episodes.jsonl").read_text().splitlines())
                for s in args.seeds)
        lines += table(row, rerun_row(args.root, row, args.split, args.seeds, aia), n)
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
