"""Would a wider raised-part search find the handle of the drawer that slides? Contacts on the part, no physics.

On cabinets with two or three fronts the model picks a front at chance (eval_limits.md); only the front that
slides may carry a handle. For each cabinet-drawer episode of the row this asks the model again and resolves the
contact with the raised-part radius at 40 px (checked against the recorded contact) and wider, and counts the
contacts that land on the movable part.

    MUJOCO_GL=egl .venv/bin/python benchmarks/levers_tried/raised_radius.py results/eval_raised_facing \
        --seeds 3 4 5 6 7 8 9 10 11 12 13 14        # ~1 min
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from manipllm_ros.contact import resolve_contact
from manipllm_ros.evaluation.episode import EpisodeSpec, build_arm
from manipllm_ros.model.policy import PosePredictor

ROW, CHECKPOINT, RADII = "raised40-facing45", "models/small-objview-hard", (40, 80, 120, 160)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("root", type=Path)
    ap.add_argument("--seeds", type=int, nargs="+", required=True)
    ap.add_argument("--category", default="cabinet_drawer")
    args = ap.parse_args()
    model = PosePredictor.load(CHECKPOINT, device="cpu")
    on = dict.fromkeys(RADII, 0)
    moved_onto = dict.fromkeys(RADII, 0)
    n = 0
    for seed in args.seeds:
        for line in (args.root / f"seed{seed}" / "test_seen" / ROW / "episodes.jsonl").read_text().splitlines():
            e = json.loads(line)
            if e["category"] != args.category:
                continue
            cat, oseed, idx = e["key"].split("/")
            obj, arm = build_arm(EpisodeSpec(cat, int(oseed), int(idx)))
            with arm:
                obs = arm.world.observe()
            K = obs.intrinsics.K
            pred = model.predict(obs.rgb, obj.meta.instruction, chain_of_thought=False, ground_contact=True,
                                 depth=obs.depth, K=K)
            n += 1
            for r in RADII:
                c = resolve_contact(pred, obs.depth, K, "grounding", "depth", snap_px=60, protrusion_px=r,
                                    protrusion_deg=45)
                u, v = int(round(c.u)), int(round(c.v))
                if r == 40 and (u, v) != (e["u"], e["v"]):
                    raise RuntimeError(f"seed {seed} {e['key']}: contact ({u}, {v}) is not the recorded one")
                hit = bool(obs.mask[v, u])
                on[r] += hit
                moved_onto[r] += hit and not e["on_part"]
    print(f"{args.category}, unseen instances, seeds {args.seeds[0]}-{args.seeds[-1]}: {n} episodes\n")
    print("| raised-part radius (px) | contacts on the movable part | of them off it at 40 px |\n|---|---|---|")
    for r in RADII:
        print(f"| {r} | {on[r]} | {moved_onto[r]} |")


if __name__ == "__main__":
    main()
