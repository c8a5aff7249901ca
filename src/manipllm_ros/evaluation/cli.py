"""`manipllm eval`: success rates per category for a proposer (model or baseline) and a pull policy."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def _eval(args: argparse.Namespace) -> int:
    from manipllm_ros.evaluation.runner import EvalConfig, run_eval

    objects = [f"{o}:{j}" for o, j in zip(args.object or [], args.joint or [])]
    if len(objects) != len(args.object or []):
        print("manipllm eval: give one --joint per --object", flush=True)
        return 2
    name = f"{args.proposer}-{args.pull}-{args.split}-seed{args.seed}"
    cfg = EvalConfig(out=Path(args.out) / name, proposer=args.proposer, checkpoint=args.checkpoint, pull=args.pull,
                     split=args.split, episodes_per_category=args.episodes, categories=args.categories or [],
                     objects=objects, seed=args.seed, workers=args.workers)
    summary = run_eval(cfg)
    print((cfg.out / "table.md").read_text())
    print(json.dumps(summary["overall"]))
    print(f"results in {cfg.out}/ (episodes.jsonl, summary.json, table.md, per_category.png)")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("eval", help="success rates per category on the fast simulated arm")
    p.add_argument("--proposer", default="model-cot",
                   choices=["model-cot", "model-direct", "random-object", "random-part"],
                   help="who picks the contact: the model (with/without chain of thought) or a baseline")
    p.add_argument("--checkpoint", help="trained model directory (model proposers)")
    p.add_argument("--pull", default="aia", choices=["aia", "straight"], help="pull policy after contact")
    p.add_argument("--split", default="test_seen", choices=["test_seen", "test_unseen"],
                   help="unseen instances of training categories, or held-out categories")
    p.add_argument("--episodes", type=int, default=20, help="episodes per category")
    p.add_argument("--categories", nargs="+", help="restrict to these categories")
    p.add_argument("--object", action="append", help="third-party MJCF/URDF file (repeatable)")
    p.add_argument("--joint", action="append", help="joint of interest of the matching --object")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--out", default="results/eval")
    p.set_defaults(func=_eval)
