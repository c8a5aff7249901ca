"""What limits the two training categories the served model and the mask oracle both do worst on, from the
episodes of a matrix run: cabinet drawers by how many fronts the cabinet has and whether the drawer that slides has
a handle (the other fronts are fixed, with no handle), suitcase lids by the lid's mass (the probes of AIA push with
15 N).

    .venv/bin/python benchmarks/eval_limits.py results/eval_raised_facing random-part hard-data \
        raised40-facing45 --out benchmarks/eval_limits.md
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from collections.abc import Callable
from functools import cache
from pathlib import Path

import mujoco

from manipllm_ros.sim.objects import generate_object

MASS_BINS = ((0.0, 1.5), (1.5, 2.0), (2.0, 2.5), (2.5, 10.0))


@cache
def drawer_group(seed: int) -> str:
    obj = generate_object("cabinet_drawer", seed)
    fixed = obj.mjcf.split('<body name="drawer"')[0].count('material="mat_front"')  # the fixed dummy fronts
    return f"{fixed + 1} front{'s' if fixed else ''}, {'no handle' if obj.meta.handle == 'none' else 'handle'}"


@cache
def lid_group(seed: int) -> str:
    obj = generate_object("suitcase_lid", seed)
    model = mujoco.MjModel.from_xml_string(obj.mjcf)
    mass = float(model.body(obj.meta.movable_body).mass[0])
    lo, hi = next(b for b in MASS_BINS if b[0] <= mass < b[1])
    return f"lid {lo:g}-{hi:g} kg" if hi < 10 else f"lid {lo:g} kg or more"


def table(root: Path, rows: list[str], category: str, group: Callable[[int], str]) -> list[str]:
    """Markdown: initial success (and contacts on the part) per group and row, unseen instances, all seeds."""
    cells: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0, 0]))
    for row in rows:
        for f in sorted(root.glob(f"seed*/test_seen/{row}/episodes.jsonl")):
            for line in f.read_text().splitlines():
                e = json.loads(line)
                if e["category"] == category:
                    c = cells[group(e["object_seed"])][row]
                    c[0] += 1
                    c[1] += bool(e["initial_success"])
                    c[2] += bool(e["on_part"])
    out = [f"| {category} | " + " | ".join(rows) + " |", "|---|" + "---|" * len(rows)]
    for g in sorted(cells):
        out.append(f"| {g} | " + " | ".join(f"{cells[g][r][1]}/{cells[g][r][0]} ({cells[g][r][2]} on part)"
                                            for r in rows) + " |")
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("root", type=Path, help="matrix output folder")
    ap.add_argument("rows", nargs="+", help="row names of that run")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    seeds = sorted(int(p.name[4:]) for p in args.root.glob("seed*"))
    lines = [f"Unseen instances, initial movement, seeds {seeds[0]}-{seeds[-1]} of `{args.root}`: opened / "
             "episodes (contacts on the movable part).", ""]
    lines += table(args.root, args.rows, "cabinet_drawer", drawer_group) + [""]
    lines += table(args.root, args.rows, "suitcase_lid", lid_group)
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
