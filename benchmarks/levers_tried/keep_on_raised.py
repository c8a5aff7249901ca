"""Keep a contact that is already on a raised part (keep_on_raised.patch), measured on a matrix run's episodes.

With `protrusion_px` the pose service moves a contact onto a raised part nearby and keeps it there, but a contact
the model put on a raised part itself was left to the surface snap, which can move it off (toaster levers). The
patch keeps it there too, under the same facing condition. Only episodes whose contact the surface snap moved
(note "snapped from") can change, and the simulation is deterministic, so re-running those gives each row's change
exactly. Each re-run whose contact is not kept must end as recorded; the script checks that.

    git worktree add /tmp/keep HEAD && git -C /tmp/keep apply $PWD/benchmarks/levers_tried/keep_on_raised.patch
    PYTHONPATH=/tmp/keep/src MUJOCO_GL=egl .venv/bin/python benchmarks/levers_tried/keep_on_raised.py \
        results/eval_raised_facing raised40-facing45 --seeds 3 4 ... 20      # ~6 min with --jobs 2
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from manipllm_ros import contact
from manipllm_ros.evaluation.episode import EpisodeSpec, run_episode
from manipllm_ros.evaluation.proposals import make_proposer

CHECKPOINT = "models/small-objview-hard"
SPLITS = ("test_seen", "test_unseen")


def rerun(args: tuple[Path, str, list[int]]) -> list[dict]:
    root, row, seeds = args
    proposer, out = None, []
    for split in SPLITS:
        for seed in seeds:
            for line in (root / f"seed{seed}" / split / row / "episodes.jsonl").read_text().splitlines():
                e = json.loads(line)
                if "snapped from" not in e["contact_note"]:
                    continue
                proposer = proposer or make_proposer(e["proposer"], CHECKPOINT)
                cat, oseed, idx = e["key"].split("/")
                o = run_episode(EpisodeSpec(cat, int(oseed), int(idx)), proposer, seed=seed).to_dict()
                kept = "kept on a raised part" in o["contact_note"]
                if not kept and (o["u"], o["v"], o["initial_success"]) != (e["u"], e["v"], e["initial_success"]):
                    raise RuntimeError(f"seed {seed} {e['key']}: not kept, yet not as recorded")
                out.append({"split": split, "seed": seed, "kept": kept, "old": e, "new": o})
    return out


def main() -> None:
    if "here" not in contact.snap_to_protrusion.__code__.co_varnames:
        sys.exit("contact.snap_to_protrusion has no `here`: apply keep_on_raised.patch in a worktree first")
    ap = argparse.ArgumentParser()
    ap.add_argument("root", type=Path)
    ap.add_argument("row")
    ap.add_argument("--seeds", type=int, nargs="+", required=True)
    ap.add_argument("--held-out-from", type=int, default=15, help="first seed not used to choose anything")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    chunks = [(args.root, args.row, args.seeds[i::args.jobs]) for i in range(args.jobs)]
    with ProcessPoolExecutor(args.jobs) as pool:
        runs = [r for part in pool.map(rerun, chunks) for r in part if r["kept"]]
    groups: dict[tuple, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    cats: dict[tuple, list[int]] = defaultdict(lambda: [0, 0, 0])
    for r in runs:
        o, n = r["old"], r["new"]
        seeds = f"{args.held_out_from}-{args.seeds[-1]}" if r["seed"] >= args.held_out_from else \
            f"{args.seeds[0]}-{args.held_out_from - 1}"
        g = groups[(r["split"], seeds)]
        g[0] += 1
        g[1] += n["initial_success"] and not o["initial_success"]
        g[2] += o["initial_success"] and not n["initial_success"]
        g[3] += int(n["long_success"]) - int(o["long_success"])
        c = cats[(r["split"], n["category"])]
        c[0] += 1
        c[1] += int(n["initial_success"]) - int(o["initial_success"])
        c[2] += int(n["on_part"]) - int(o["on_part"])
    lines = [f"Row `{args.row}` of `{args.root}`, episodes whose contact the patch keeps on a raised part:", "",
             "| split | seeds | kept | initial: gained / lost | long: net |", "|---|---|---|---|---|"]
    lines += [f"| {s} | {k} | {g[0]} | {g[1]} / {g[2]} | {g[3]:+d} |" for (s, k), g in sorted(groups.items())]
    lines += ["", "| split | category | kept | initial: net | on part: net |", "|---|---|---|---|---|"]
    lines += [f"| {s} | {c} | {x[0]} | {x[1]:+d} | {x[2]:+d} |" for (s, c), x in sorted(cats.items()) if x[1] or x[2]]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
