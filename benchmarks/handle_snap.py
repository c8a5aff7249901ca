"""The handle snap (`handles.snap_beside_handle`) measured on a matrix run's episodes, exactly.

The snap moves the model's contact (before the raised-part and surface snaps) beside a handle on the face it lies
on. It can change only the episodes whose contact it moves, and the simulation is deterministic: so the script
renders every episode of a recorded row again, applies the snap to the model's own pixel (the recorded one, or
the one its note says a later snap moved it from), and re-runs only the moved episodes with the snap on. Every
other episode ends as recorded. Prints and writes per-split, per-seed-range and per-category gains and losses.
`--compose NAME` then writes the row with the snap on as a matrix row folder NAME beside the recorded one (each
episode: the re-run where the snap moved the contact, else the recorded one), so that `manipllm eval --matrix`
summarises it with the others; `manipllm eval` with the snap on, run in full on some seeds, must match it.

    MUJOCO_GL=egl .venv/bin/python benchmarks/handle_snap.py results/eval_raised_facing raised40-facing45 \
        --seeds 3 4 ... 20 --radius 200 --out benchmarks/handle_snap.json     # ~8 min with --jobs 2
"""

from __future__ import annotations

import argparse
import json
import re
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from manipllm_ros.evaluation.episode import EpisodeSpec, build_arm, run_episode
from manipllm_ros.evaluation.proposals import make_proposer
from manipllm_ros.handles import snap_beside_handle

CHECKPOINT = "models/small-objview-hard"
SPLITS = ("test_seen", "test_unseen")  # unseen instances of training categories, held-out categories
_FROM = re.compile(r"from \((\d+), (\d+)\)")


def model_pixel(e: dict) -> tuple[int, int]:
    """The pixel the model answered: a later snap's note names where it moved it from."""
    m = _FROM.search(e["contact_note"])
    return (int(m[1]), int(m[2])) if m else (e["u"], e["v"])


def rerun(args: tuple[Path, str, list[int], int]) -> list[dict]:
    root, row, seeds, radius = args
    proposer, out = None, []
    for split in SPLITS:
        for seed in seeds:
            for line in (root / f"seed{seed}" / split / row / "episodes.jsonl").read_text().splitlines():
                e = json.loads(line)
                if not e["parsed"]:
                    continue
                cat, oseed, idx = e["key"].split("/")
                spec = EpisodeSpec(cat, int(oseed), int(idx))
                _, arm = build_arm(spec)
                with arm:
                    obs = arm.world.observe()
                if snap_beside_handle(*model_pixel(e), obs.depth, obs.intrinsics.K, radius).pixel is None:
                    continue
                if proposer is None:
                    proposer = make_proposer(f"{e['proposer']}-handle{radius}", CHECKPOINT)
                o = run_episode(spec, proposer, seed=seed).to_dict()
                if "beside a handle" not in o["contact_note"]:
                    raise RuntimeError(f"seed {seed} {e['key']}: the re-run did not move the contact: "
                                       f"{o['contact_note']!r}")
                out.append({"split": split, "seed": seed, "old": e, "new": o})
    return out


def compose(root: Path, row: str, name: str, seeds: list[int], runs: list[dict], radius: int) -> None:
    new = {(r["split"], r["seed"], r["new"]["key"]): r["new"] for r in runs}
    for split in SPLITS:
        for seed in seeds:
            out = []
            for line in (root / f"seed{seed}" / split / row / "episodes.jsonl").read_text().splitlines():
                e = json.loads(line)
                proposer = f"{e['proposer']}-handle{radius}"
                e = {**new.get((split, seed, e["key"]), e), "proposer": proposer}
                out.append(json.dumps(e))
            folder = root / f"seed{seed}" / split / name
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "episodes.jsonl").write_text("\n".join(out) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("root", type=Path)
    ap.add_argument("row")
    ap.add_argument("--seeds", type=int, nargs="+", required=True)
    ap.add_argument("--radius", type=int, default=200)
    ap.add_argument("--held-out-from", type=int, default=15, help="first seed not used to choose anything")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--runs", type=Path, help="the --out JSON of an earlier call: its re-runs, not computed again")
    ap.add_argument("--compose", metavar="NAME", help="write the row with the snap on as row folder NAME")
    args = ap.parse_args()
    if args.runs:
        runs = json.loads(args.runs.read_text())["runs"]
    else:
        chunks = [(args.root, args.row, args.seeds[i::args.jobs], args.radius) for i in range(args.jobs)]
        with ProcessPoolExecutor(args.jobs) as pool:
            runs = [r for part in pool.map(rerun, chunks) for r in part]
    if args.compose:
        compose(args.root, args.row, args.compose, args.seeds, runs, args.radius)
    groups: dict[tuple, list[int]] = defaultdict(lambda: [0, 0, 0, 0, 0])
    cats: dict[tuple, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for r in runs:
        o, n = r["old"], r["new"]
        seeds = f"{args.held_out_from}-{max(args.seeds)}" if r["seed"] >= args.held_out_from else \
            f"{min(args.seeds)}-{args.held_out_from - 1}"
        g = groups[(r["split"], seeds)]
        g[0] += 1
        g[1] += n["initial_success"] and not o["initial_success"]
        g[2] += o["initial_success"] and not n["initial_success"]
        g[3] += int(n["long_success"]) - int(o["long_success"])
        g[4] += int(n["on_part"]) - int(o["on_part"])
        c = cats[(r["split"], n["category"])]
        c[0] += 1
        c[1] += n["initial_success"] and not o["initial_success"]
        c[2] += o["initial_success"] and not n["initial_success"]
        c[3] += int(n["on_part"]) - int(o["on_part"])
    lines = [f"Row `{args.row}` of `{args.root}`, radius {args.radius} px: episodes whose contact the snap moves",
             "", "| split | seeds | moved | initial: gained / lost | long: net | on part: net |",
             "|---|---|---|---|---|---|"]
    lines += [f"| {s} | {k} | {g[0]} | {g[1]} / {g[2]} | {g[3]:+d} | {g[4]:+d} |"
              for (s, k), g in sorted(groups.items())]
    lines += ["", "| split | category | moved | initial: gained / lost | on part: net |", "|---|---|---|---|---|"]
    lines += [f"| {s} | {c} | {x[0]} | {x[1]} / {x[2]} | {x[3]:+d} |" for (s, c), x in sorted(cats.items())]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(json.dumps({"root": str(args.root), "row": args.row, "radius": args.radius,
                                        "seeds": args.seeds, "runs": runs}, indent=1))
        args.out.with_suffix(".txt").write_text(text)


if __name__ == "__main__":
    main()
