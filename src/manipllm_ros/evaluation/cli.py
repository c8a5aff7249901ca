"""`manipllm eval`: success rates per category for a proposer (model or baseline) and a pull policy."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from manipllm_ros.evaluation.proposals import parse_model_proposer


def _proposer_name(name: str) -> str:
    if name not in ("random-object", "random-part"):
        try:
            parse_model_proposer(name)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    return name


def _matrix(args: argparse.Namespace) -> int:
    from manipllm_ros.evaluation.matrix import MatrixError, MatrixRow, check_rows, load_matrix, run_matrix

    if args.object:
        print("manipllm eval: --object (third-party files) runs without --matrix/--seeds/--splits", flush=True)
        return 2
    try:
        if args.matrix:
            mf = load_matrix(args.matrix)
            rows, episodes = mf.rows, args.episodes or mf.episodes or 20
            splits = args.splits or mf.splits or ["test_seen", "test_unseen"]
            categories = args.categories or mf.categories
        else:  # one row from the flags, over several seeds and/or both splits
            if args.proposer.startswith("model"):
                spec = parse_model_proposer(args.proposer)
                row = {"proposer": "model", "mode": "cot" if spec.chain_of_thought else "direct",
                       "contact": spec.contact, "up": spec.up_from, "snap_px": spec.snap_px, "zoom": spec.zoom,
                       "views": spec.views, "protrusion_px": spec.protrusion_px, "protrusion_deg": spec.protrusion_deg,
                       "handle_px": spec.handle_px, "protrusion_skip_outline": spec.skip_outline,
                       "protrusion_stay_on_own": spec.stay_on_own,
                       "checkpoint": args.checkpoint}
            else:
                row = {"proposer": args.proposer}
            rows = [MatrixRow(name=args.proposer, pull=args.pull, **row)]
            episodes, splits, categories = args.episodes or 20, args.splits or [args.split], args.categories
        check_rows(rows)  # before any episode: a missing checkpoint fails now
        summary = run_matrix(rows, Path(args.out), seeds=args.seeds or [args.seed], splits=splits,
                             episodes=episodes, categories=categories, workers=args.workers, arm=args.arm)
    except MatrixError as exc:
        print(f"manipllm eval: {exc}", flush=True)
        return 2
    print((Path(args.out) / "summary.md").read_text())
    print(f"results in {args.out}/ (summary.md, summary.json, ablation.png; seed<S>/<split>/<row>/ per run)")
    return 0 if summary["rows"] else 1


def _eval(args: argparse.Namespace) -> int:
    from manipllm_ros.evaluation.runner import EvalConfig, run_eval

    if args.matrix or args.seeds or args.splits:
        return _matrix(args)
    if args.proposer.startswith("model") and not args.checkpoint:
        print(f"manipllm eval: proposer {args.proposer} needs --checkpoint", flush=True)
        return 2
    objects = [f"{o}:{j}" for o, j in zip(args.object or [], args.joint or [])]
    if len(objects) != len(args.object or []):
        print("manipllm eval: give one --joint per --object", flush=True)
        return 2
    name = f"{args.proposer}-{args.pull}-{args.split}-seed{args.seed}"
    cfg = EvalConfig(out=Path(args.out) / name, proposer=args.proposer, checkpoint=args.checkpoint, pull=args.pull,
                     split=args.split, episodes_per_category=args.episodes or 20,
                     categories=args.categories or [], objects=objects, seed=args.seed, workers=args.workers,
                     arm=args.arm)
    summary = run_eval(cfg)
    print((cfg.out / "table.md").read_text())
    print(json.dumps(summary["overall"]))
    print(f"results in {cfg.out}/ (episodes.jsonl, summary.json, table.md, per_category.png)")
    return 0


def _eval_tta(args: argparse.Namespace) -> int:
    from manipllm_ros.evaluation.tta_eval import TTAExperimentConfig, run_tta_experiment

    if not Path(args.checkpoint).is_dir():
        print(f"manipllm eval-tta: checkpoint {args.checkpoint} does not exist", flush=True)
        return 2
    cfg = TTAExperimentConfig(checkpoint=args.checkpoint, out=Path(args.out), attempts=args.attempts,
                              categories=args.categories or [], seed=args.seed, pull=args.pull,
                              chain_of_thought=args.mode == "cot", learning_rate=args.lr, shift=args.shift,
                              device=args.device)
    res = run_tta_experiment(cfg)
    print((cfg.out / "tta.md").read_text())
    print(f"results in {cfg.out}/ (tta.md, tta_curve.json, tta_curve.png)")
    return 0 if res["on"] else 1


def register(subparsers) -> None:
    p = subparsers.add_parser("eval", help="success rates per category on the fast simulated arm")
    p.add_argument("--proposer", default="model-cot",
                   type=_proposer_name,
                   help="random-object | random-part | model-{cot,direct}[-grounded|-agreed][-zoomZ][-snapR]"
                   "[-depthup][-viewsN][-raisedR[-facingA][-nooutline][-stayown]][-handleH]: who picks the contact: "
                   "the model "
                   "(with/without chain of thought; '-grounded': the contact pixel from its grounding answer; "
                   "'-agreed': of the pose and grounding pixels, the one whose depth surface faces the model's "
                   "up; '-zoomZ': the grounding question asked again on a Z-times zoomed crop around the first "
                   "answer; '-snapR': a pixel whose surface disagrees with the model's up moves to the nearest "
                   "agreeing one within R px; '-depthup': up = minus the surface normal measured in depth; "
                   "'-viewsN': asked on N jittered object windows, the trimmed mean of their contacts; "
                   "'-raisedR': moved onto the nearest raised part (handle, lever, button) within R px, found in "
                   "depth, instead of the snap; '-facingA': only onto one whose surface faces the model's up "
                   "within A deg; '-nooutline': nor onto one that is the outline of the contact's own surface; "
                   "'-stayown' (with -snapR): nor onto the rim of the contact's own surface, and from a raised part "
                   "the snap only within it; "
                   "'-handleH': first of all, a pixel on one panel of a plane moves beside a handle "
                   "on another panel within H px, found in depth) or a baseline")
    p.add_argument("--checkpoint", help="trained model directory (model proposers)")
    p.add_argument("--pull", default="aia", choices=["aia", "straight"], help="pull policy after contact")
    p.add_argument("--split", default="test_seen", choices=["test_seen", "test_unseen"],
                   help="unseen instances of training categories, or held-out categories")
    p.add_argument("--episodes", type=int, default=None, help="episodes per category (default 20, or the "
                   "matrix file's)")
    p.add_argument("--categories", nargs="+", help="restrict to these categories")
    p.add_argument("--object", action="append", help="third-party MJCF/URDF file (repeatable)")
    p.add_argument("--joint", action="append", help="joint of interest of the matching --object")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--matrix", help="YAML file of rows (baselines, model variants, ablations) that all run the same "
                   "episodes; writes summary.md/json + ablation.png (see config/eval_paper.yaml)")
    p.add_argument("--seeds", type=int, nargs="+", help="run everything once per seed; the summary reports mean ± "
                   "std over the seeds")
    p.add_argument("--splits", nargs="+", choices=["test_seen", "test_unseen"],
                   help="splits of a matrix run (default: the matrix file's, else both)")
    p.add_argument("--arm", default="fast", choices=["fast", "franky-sim"],
                   help="fast: the flying suction arm; franky-sim: the FR3 over libfranka with the object loaded "
                   "into franky-sim and the camera mirroring it (slow; one franky-sim process per episode)")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--out", default="results/eval")
    p.set_defaults(func=_eval)

    t = subparsers.add_parser("eval-tta", help="test-time adaptation on vs off under a domain shift: cumulative "
                              "success over K sequential attempts")
    t.add_argument("--checkpoint", required=True, help="trained model directory (the start adapters)")
    t.add_argument("--attempts", type=int, default=50, help="K: attempts in the stream (one per object)")
    t.add_argument("--shift", default="high-camera-orange", choices=["high-camera-orange", "none"],
                   help="camera 62-78 deg elevation and orange light with little ambient (training: 20-55 deg, grey-white), or none")
    t.add_argument("--categories", nargs="+", help="draw the stream from these (default: the 20 training ones)")
    t.add_argument("--mode", default="cot", choices=["cot", "direct"], help="model inference")
    t.add_argument("--pull", default="aia", choices=["aia", "straight"])
    t.add_argument("--lr", type=float, default=1e-4, help="V-Adapter learning rate (the tta config's default)")
    t.add_argument("--device", default="cpu")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--out", default="results/eval_tta")
    t.set_defaults(func=_eval_tta)
