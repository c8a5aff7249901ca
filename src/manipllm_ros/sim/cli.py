"""`manipllm sim collect` and `manipllm sim preview`: the simulated training data and a look at it."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _objects(args: argparse.Namespace) -> list[str]:
    """--object FILE [--joint NAME] pairs (or FILE:JOINT[:UP]) -> FILE:JOINT:UP strings."""
    objs = list(args.object or [])
    joints = list(args.joint or [])
    if joints and len(joints) != len(objs):
        raise SystemExit("give one --joint per --object (or write --object FILE:JOINT)")
    out = []
    for i, o in enumerate(objs):
        spec = f"{o}:{joints[i]}" if joints else o
        out.append(f"{spec}:{args.up}" if args.up != "z" else spec)
    return out


def _collect(args: argparse.Namespace) -> int:
    import yaml

    from .collect import CollectConfig, DatasetConfigMismatch, collect, format_summary

    values: dict = {}
    if args.config:
        values.update(yaml.safe_load(Path(args.config).read_text()) or {})
    cli = {"out": args.out, "num_samples": args.num_samples, "seed": args.seed, "workers": args.workers,
           "samples_per_shard": args.samples_per_shard}
    values.update({k: v for k, v in cli.items() if v is not None})
    if args.categories:
        values["categories"] = [c.strip() for c in args.categories.split(",") if c.strip()]
    if args.object:
        values["objects"] = _objects(args)
    if args.no_progress:
        values["progress"] = False
    if "out" not in values:
        raise SystemExit("sim collect: --out is required")
    try:
        summary = collect(CollectConfig(**values))
    except DatasetConfigMismatch as e:
        print(f"sim collect: {e}", file=sys.stderr)
        return 2
    print(format_summary(summary))
    return 0 if summary["successes"] > 0 else 1


def _preview(args: argparse.Namespace) -> int:
    from .objects import ALL_CATEGORIES
    from .preview import contact_sheet

    sources = [c.strip().replace(" ", "_") for c in args.categories.split(",")] if args.categories else list(
        ALL_CATEGORIES)
    sources += [f"file:{o}" for o in _objects(args)]
    path = contact_sheet(args.out, sources, seed=args.seed, cols=args.cols)
    print(f"wrote {path}")
    return 0


def register(subparsers) -> None:
    """Add `sim collect` and `sim preview` to the `manipllm` CLI."""
    sim = subparsers.add_parser("sim", help="simulated objects and training data (MuJoCo)")
    sub = sim.add_subparsers(dest="sim_command", metavar="<sim command>")
    sub.required = True

    def objects(p: argparse.ArgumentParser) -> None:
        p.add_argument("--object", action="append", help="third-party MJCF/URDF FILE (or FILE:JOINT); repeatable")
        p.add_argument("--joint", action="append", help="joint of interest of the matching --object")
        p.add_argument("--up", default="z", choices=["z", "y", "-y", "x"], help="up axis of the --object files")
        p.add_argument("--categories", help="comma-separated generated categories (default: all 30)")

    c = sub.add_parser("collect", help="collect successful contact/pull samples into a sharded parquet dataset")
    c.add_argument("--out", type=Path, help="dataset folder (resumes if it exists)")
    c.add_argument("--num-samples", type=int, help="successful samples wanted (default 1000)")
    c.add_argument("--seed", type=int, help="master seed (default 0)")
    c.add_argument("--workers", type=int, help="worker processes (default 2)")
    c.add_argument("--samples-per-shard", type=int, help="samples per parquet shard (default 20)")
    c.add_argument("--config", help="YAML file with CollectConfig fields (CLI flags override)")
    c.add_argument("--no-progress", action="store_true", help="no progress bar")
    objects(c)
    c.set_defaults(func=_collect)

    p = sub.add_parser("preview", help="contact-sheet PNG: every category with affordance map and a contact pose")
    p.add_argument("--out", type=Path, default=Path("sim_preview.png"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cols", type=int, default=6)
    objects(p)
    p.set_defaults(func=_preview)
