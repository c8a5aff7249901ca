"""Choose when the raised-part snap may move a contact, on the episodes it moved in eval_contact_choices.md.

That run (seeds 3-14) has the served row and the same model with the raised-part snap (`raised40`) on the same
episodes; the simulation is deterministic, so an episode the snap leaves alone ends alike in both. A rule that
lets the snap move some contacts and not others therefore ends each moved episode as `raised40` did where it
allows the move and as the served row did where it does not: its success is known exactly without running it.
For each moved episode this script renders the scene again, asks the model again, checks the contact against
the recorded one, and measures what a rule could use at inference time (angles between the model's up and the
surface normals measured in the depth at the old and the new contact, how flat the depth is there, how far the
snap moved). Then it tabulates the gains and losses each candidate rule keeps. Seeds 15-20 were kept out of this
choice (config/eval_raised_facing.yaml measures the chosen rule on them).

    MUJOCO_GL=egl .venv/bin/python benchmarks/raised_facing_rule.py results/eval_contact_choices \
        --out benchmarks/raised_facing_rule.md     # ~11 min on 2 cores
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
from tqdm import tqdm

from manipllm_ros import geometry as G
from manipllm_ros.contact import resolve_contact, surface_angle

CHECKPOINT = "models/small-objview-hard"
SERVED, RAISED = "hard-data", "raised40"


def load_row(root: Path, row: str, split: str) -> dict[tuple[str, str], dict]:
    out = {}
    for f in sorted(root.glob(f"seed*/{split}/{row}/episodes.jsonl")):
        for line in f.read_text().splitlines():
            e = json.loads(line)
            out[(f.parts[-4], e["key"])] = e
    return out


def surface_variation(u: float, v: float, depth: np.ndarray, K) -> float | None:
    """How far from a plane the depth is where the suction cup would sit (geometry.surface_fit_at; 0 = flat)."""
    try:
        return G.surface_fit_at(u, v, depth, K)[1]
    except G.GeometryError:
        return None


def features(root: Path, split: str) -> list[dict]:
    from manipllm_ros.evaluation.episode import EpisodeSpec, build_arm
    from manipllm_ros.model.policy import PosePredictor

    served, raised = load_row(root, SERVED, split), load_row(root, RAISED, split)
    moved = sorted(k for k, e in raised.items() if "onto a raised part" in e["contact_note"])
    model = PosePredictor.load(CHECKPOINT, device="cpu")
    rows = []
    for seed, key in tqdm(moved, desc=f"moved episodes, {split}"):
        a, b = served[(seed, key)], raised[(seed, key)]
        cat, oseed, idx = key.split("/")
        obj, arm = build_arm(EpisodeSpec(cat, int(oseed), int(idx)))
        with arm:
            obs = arm.world.observe()
        K = obs.intrinsics.K
        pred = model.predict(obs.rgb, obj.meta.instruction, chain_of_thought=False, ground_contact=True,
                             depth=obs.depth, K=K)
        c = resolve_contact(pred, obs.depth, K, "grounding", "depth", snap_px=60, protrusion_px=40)
        if (round(c.u), round(c.v)) != (b["u"], b["v"]):
            raise RuntimeError(f"{seed} {key}: contact ({c.u}, {c.v}) is not the recorded ({b['u']}, {b['v']})")
        u0, v0 = pred.pixel
        try:
            n01 = G.angle_between(G.surface_fit_at(u0, v0, obs.depth, K)[0],
                                  G.surface_fit_at(c.u, c.v, obs.depth, K)[0])
        except G.GeometryError:
            n01 = None
        rows.append(dict(
            seed=seed, key=key, category=cat, served_ok=a["initial_success"], raised_ok=b["initial_success"],
            start_on_part=bool(obs.mask[int(round(v0)), int(round(u0))]), dist_px=float(np.hypot(c.u - u0, c.v - v0)),
            angle_start=surface_angle(u0, v0, obs.depth, K, pred.up),
            angle_raised=surface_angle(c.u, c.v, obs.depth, K, pred.up),
            variation_raised=surface_variation(c.u, c.v, obs.depth, K), normals_deg=n01))
    return rows


def rules() -> dict[str, Callable[[dict], bool]]:
    """Candidate conditions for letting the snap move a contact (True = move)."""
    out: dict[str, Callable[[dict], bool]] = {"always (raised40)": lambda f: True}
    for t in (15, 30, 45, 60):
        out[f"raised part faces the model's up within {t} deg, or no plane there"] = (
            lambda f, t=t: f["angle_raised"] is None or f["angle_raised"] <= t)
        out[f"raised part faces the model's up within {t} deg"] = (
            lambda f, t=t: f["angle_raised"] is not None and f["angle_raised"] <= t)
        out[f"start's surface is {t} deg or more off the model's up, or no plane there"] = (
            lambda f, t=t: f["angle_start"] is None or f["angle_start"] > t)
        out[f"normals at start and raised part within {t} deg"] = (
            lambda f, t=t: f["normals_deg"] is not None and f["normals_deg"] < t)
    for v in (0.01, 0.02, 0.04):
        out[f"raised part curved (surface variation > {v})"] = (
            lambda f, v=v: f["variation_raised"] is not None and f["variation_raised"] > v)
    for d in (20, 30):
        out[f"moved less than {d} px"] = lambda f, d=d: f["dist_px"] < d
    return out


def tally(feats: list[dict], rule: Callable[[dict], bool]) -> tuple[int, int, int]:
    """(gains kept, losses kept, contacts moved) at the initial threshold."""
    kept = [f for f in feats if rule(f)]
    return (sum(f["raised_ok"] and not f["served_ok"] for f in kept),
            sum(f["served_ok"] and not f["raised_ok"] for f in kept), len(kept))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("root", type=Path, help="eval_contact_choices' results folder (rows hard-data and raised40)")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/raised_facing_rule.md"))
    args = ap.parse_args()
    splits = {"test_seen": "unseen instances", "test_unseen": "held-out categories"}
    feats = {s: features(args.root, s) for s in splits}
    n_eps = {s: len(load_row(args.root, SERVED, s)) for s in splits}
    args.out.with_suffix(".json").write_text(json.dumps(feats, indent=1) + "\n")
    lines = ["# When may the raised-part snap move a contact? (chosen on seeds 3-14)", "",
             f"`benchmarks/raised_facing_rule.py {args.root}`: the episodes `raised40` moved, exactly as each rule",
             "would end them (see the script's docstring). Net = gains kept - losses kept, initial movement; "
             "the change in success is net / episodes.", "",
             "| rule: move only when | " + " | ".join(f"{t}: gains / losses / moved, net" for t in splits.values())
             + " |", "|---|" + "---|" * len(splits)]
    for name, rule in rules().items():
        cells = []
        for s in splits:
            g, loss, m = tally(feats[s], rule)
            cells.append(f"{g} / {loss} / {m}, **{g - loss:+d}** ({(g - loss) / n_eps[s]:+.3f})")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", "Episodes per split: " + ", ".join(f"{t} {n_eps[s]}" for s, t in splits.items()) + "."]
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
