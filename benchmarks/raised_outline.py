"""Refusing a raised-part move onto the contact surface's own outline, read off two recorded rows exactly.

The raised-part snap takes a blob that stands 6-60 mm off its surroundings with a depth step at its border. The
far edge of a thin object (a closed laptop lid against the floor behind it) passes that test, and a contact moved
there pulls next to the hinge. A rule that refuses such a move leaves the contact to the surface snap, which is
exactly the pipeline of the row without the raised snap: a refused move ends as that row's episode did. So the
rule's effect is read off the two rows, with no re-run. For every move of the raised row (note "onto a raised
part from (u, v)") it renders the observation again, finds the blob the snap took (the nearest stepped blob, as
`contact.raised_blob`, checked against the recorded contact), and asks whether every depth step at the blob's
border drops off the object (`contact.steps_off_object` with `object_view.foreground_mask`: the object's outline
against the floor), and whether, besides, the blob lies on the plane of the contact's start (within 3 mm): that
second rule is the one built, and the script asks it through `contact.is_own_outline` itself
(`protrusion_skip_outline`, eval suffix `-nooutline`).

`--compose NAME --proposer P` writes row folder NAME: the raised row, with every episode the built rule refuses
taken from the plain row (the proposer field set to P). An episode whose contact the handle snap had moved has no
such counterpart; the script stops if the rule refuses one.

    MUJOCO_GL=egl .venv/bin/python benchmarks/raised_outline.py results/eval_raised_facing \
        --seeds 3 4 ... 20                          # ~3 min
"""

from __future__ import annotations

import argparse
import json
import re
from collections import Counter
from pathlib import Path

from manipllm_ros.contact import is_own_outline, raised_blob, steps_off_object
from manipllm_ros.evaluation.episode import EpisodeSpec, build_arm
from manipllm_ros.object_view import foreground_mask

SPLITS = ("test_seen", "test_unseen")
_FROM = re.compile(r"onto a raised part from \((\d+), (\d+)\)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("root", type=Path)
    ap.add_argument("--seeds", type=int, nargs="+", required=True)
    ap.add_argument("--raised-row", default="raised40-facing45")
    ap.add_argument("--plain-row", default="hard-data", help="the same pipeline without the raised snap")
    ap.add_argument("--compose", metavar="NAME")
    ap.add_argument("--proposer", help="the proposer name of the composed row")
    args = ap.parse_args()
    if args.compose and not args.proposer:
        ap.error("--compose needs --proposer")
    tally: Counter = Counter()
    cats: Counter = Counter()
    for split in SPLITS:
        for seed in args.seeds:
            run = args.root / f"seed{seed}" / split
            plain = {json.loads(x)["key"]: json.loads(x)
                     for x in (run / args.plain_row / "episodes.jsonl").read_text().splitlines()}
            composed = []
            for line in (run / args.raised_row / "episodes.jsonl").read_text().splitlines():
                e = json.loads(line)
                composed.append({**e, "proposer": args.proposer})
                m = _FROM.search(e["contact_note"])
                if m is None:
                    continue
                u0, v0 = int(m[1]), int(m[2])
                cat, oseed, idx = e["key"].split("/")
                _, arm = build_arm(EpisodeSpec(cat, int(oseed), int(idx)))
                with arm:
                    obs = arm.world.observe()
                blob = raised_blob(u0, v0, obs.depth, 40)
                if blob is None or (int(blob.pixel[0]), int(blob.pixel[1])) != (e["u"], e["v"]):
                    raise RuntimeError(f"seed {seed} {e['key']}: the raised blob is not the recorded contact")
                outline = steps_off_object(blob, foreground_mask(obs.depth, obs.intrinsics.K))
                same = is_own_outline(u0, v0, blob, obs.depth, obs.intrinsics.K)  # the rule as built
                p = plain[e["key"]]
                if same and args.compose:
                    if "beside a handle" in e["contact_note"]:
                        raise RuntimeError(f"seed {seed} {e['key']}: refused after a handle snap; no plain counterpart")
                    composed[-1] = {**p, "proposer": args.proposer}
                for rule, refused in (("outline", outline), ("outline on the start's plane", same)):
                    if refused:
                        gained = p["initial_success"] and not e["initial_success"]
                        lost = e["initial_success"] and not p["initial_success"]
                        tally[(split, rule, "refused")] += 1
                        tally[(split, rule, "gained")] += gained
                        tally[(split, rule, "lost")] += lost
                        if gained or lost:
                            cats[(split, rule, cat)] += int(gained) - int(lost)
            if args.compose:
                (run / args.compose).mkdir(parents=True, exist_ok=True)
                (run / args.compose / "episodes.jsonl").write_text("".join(json.dumps(x) + "\n" for x in composed))
    print("| split | refuse a raised move onto | refused | initial: gained / lost |\n|---|---|---|---|")
    for split in SPLITS:
        for rule in ("outline", "outline on the start's plane"):
            print(f"| {split} | {rule} | {tally[(split, rule, 'refused')]} | {tally[(split, rule, 'gained')]} / "
                  f"{tally[(split, rule, 'lost')]} |")
    print("\nnet per category:", {k: v for k, v in sorted(cats.items())})


if __name__ == "__main__":
    main()
