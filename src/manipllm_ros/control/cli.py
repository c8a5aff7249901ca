"""`manipllm control ...`: run one pull episode (AIA or straight) on franky-sim or the fast arm, or serve a scene."""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np


def register(subparsers) -> None:
    p = subparsers.add_parser("control", help="arm control: AIA demo episodes, franky-sim scene server")
    sub = p.add_subparsers(dest="control_cmd", required=True)

    d = sub.add_parser("demo", help="one pull episode against franky-sim (or the fast arm) and print the record")
    d.add_argument("--backend", choices=["franky-sim", "fast"], default="franky-sim")
    d.add_argument("--object", default="door",
                   help="franky-sim: door | drawer; fast: a generated category (e.g. microwave)")
    d.add_argument("--seed", type=int, default=0, help="object seed (fast backend)")
    d.add_argument("--policy", choices=["aia", "straight"], default="aia")
    d.add_argument("--config", default=None, help="YAML with a control: section (aia/franky settings)")
    d.add_argument("--target-distance", type=float, default=None, help="override aia.target_distance (m)")
    d.add_argument("--json", default=None, help="write the full episode record (every probe and step) here")
    d.set_defaults(func=_demo)

    s = sub.add_parser("sim-server", help="run franky-sim with a door/drawer and the suction side channel")
    s.add_argument("--object", choices=["door", "drawer"], default="door")
    s.add_argument("--hostname", default=None, help="loopback address to bind (default: a free 127.x.y.z)")
    s.set_defaults(func=_serve)


def _configs(args):
    from .config import ControlConfig, load_control_config

    cfg = load_control_config(args.config) if args.config else ControlConfig()
    if args.target_distance is not None:
        cfg = cfg.model_copy(update={"aia": cfg.aia.model_copy(update={"target_distance": args.target_distance})})
    return cfg


def _print(rec, joint_delta: float, unit: str) -> None:
    print(rec.summary())
    print(f"part moved {joint_delta:.3f} {unit}")
    print(" it | chosen | best probe (m) | step displacement (m)     | d before")
    for it in rec.iterations:
        step = np.round(it.step.displacement, 3).tolist() if it.step else None
        best = f"{it.best_probe:.4f}" if it.best_probe is not None else "  -   "
        print(f" {it.index:2d} | {it.chosen:6d} | {best:>14} | {str(step):25s} | {np.round(it.direction, 2).tolist()}")


def _demo(args) -> int:
    from .aia import make_policy

    cfg = _configs(args)
    if args.backend == "fast":
        from .episodes import attach_flying, workspace_around

        arm, n, ok = attach_flying(args.object, args.seed, np.random.default_rng(args.seed))
        if not ok:
            print("the cup did not seal on the part", file=sys.stderr)
            return 1
        with arm:
            q0 = arm.joint_position()
            aia = cfg.aia.model_copy(update={"workspace": workspace_around(arm)})
            rec = make_policy(args.policy, aia).run(arm, n)
            dq = arm.joint_position() - q0
        unit = "rad" if arm.world.joint_type == "hinge" else "m"
    else:
        from .aia import approach_and_attach
        from .arm import EEPose
        from .end_effectors import FrankySimSuction
        from .franky_arm import FrankyArm
        from .franky_sim_scene import FrankySimProcess, ObjectSpec, SceneClient

        if args.object not in ("door", "drawer"):
            print(f"franky-sim demo objects are door and drawer, not {args.object!r}", file=sys.stderr)
            return 2
        spec = ObjectSpec(kind=args.object)
        with FrankySimProcess(spec) as sp:
            scene = SceneClient(sp.hostname)
            fcfg = cfg.franky.model_copy(update={"robot_ip": sp.hostname})
            with FrankyArm(fcfg, FrankySimSuction(sp.hostname)) as arm:
                ok, msg = approach_and_attach(arm, EEPose(spec.contact_point(), spec.contact_rotation()),
                                              **fcfg.approach_kwargs())
                if not ok:
                    print(f"attach failed: {msg}", file=sys.stderr)
                    return 1
                q0 = scene.joint()
                rec = make_policy(args.policy, cfg.aia).run(arm, -spec.contact_rotation()[:, 2])
                dq = scene.joint() - q0
            scene.close()
        unit = "rad" if args.object == "door" else "m"
    _print(rec, dq, unit)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({**rec.to_dict(), "joint_delta": dq}, f, indent=1)
    return 0 if rec.success else 1


def _serve(args) -> int:
    from .franky_sim_scene import ObjectSpec, free_loopback_address, serve

    host = args.hostname or free_loopback_address()
    print(f"franky-sim with a {args.object}: robot IP {host}; Ctrl+C to stop", flush=True)
    try:
        serve(ObjectSpec(kind=args.object), host)
    except KeyboardInterrupt:
        pass
    return 0


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry (`python -m manipllm_ros.control.cli control demo ...`) until the lead wires it in."""
    parser = argparse.ArgumentParser(prog="manipllm")
    register(parser.add_subparsers(dest="cmd", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
