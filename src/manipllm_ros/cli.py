"""`manipllm <subcommand>`: the one entry point for set-up checks, simulation, training, evaluation and bringup.

It works from any directory without sourcing ROS: the first thing it does is re-execute itself with the ROS
environment (`rosenv.ensure_ros_env`), which the node processes it starts then inherit.
"""

from __future__ import annotations

import argparse
import faulthandler
import importlib
import os
import signal
import sys
from collections.abc import Sequence

# Areas that add their own subcommands through `register(subparsers)`.
AREA_CLIS = [
    "manipllm_ros.sim.cli",
    "manipllm_ros.camera.cli",
    "manipllm_ros.control.cli",
    "manipllm_ros.model.cli",
    "manipllm_ros.evaluation.cli",
    "manipllm_ros.demo",
    "manipllm_ros.bringup",
]


def _doctor(_: argparse.Namespace) -> int:
    from manipllm_ros import doctor

    return doctor.main()


def _env(args: argparse.Namespace) -> int:
    """Run a command inside the ROS environment (e.g. `manipllm env -- pytest`)."""
    cmd = list(args.command)
    if cmd and cmd[0] == "--":
        cmd = cmd[1:]
    if not cmd:
        for key in ("AMENT_PREFIX_PATH", "LD_LIBRARY_PATH", "PYTHONPATH", "RMW_IMPLEMENTATION"):
            print(f"export {key}={os.environ.get(key, '')}")
        return 0
    os.execvp(cmd[0], cmd)
    return 127  # not reached


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="manipllm", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="<subcommand>")
    sub.required = True
    p = sub.add_parser("doctor", help="check every dependency, one PASS/FAIL line each")
    p.set_defaults(func=_doctor)
    p = sub.add_parser("env", help="print the ROS environment, or run a command inside it")
    p.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND [ARGS...]")
    p.set_defaults(func=_env)
    for module_name in AREA_CLIS:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name and module_name.startswith(exc.name):
                continue  # that area is not part of this build
            raise
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    if argv is None:
        from manipllm_ros.rosenv import ensure_ros_env

        ensure_ros_env()
        # `kill -USR1 <pid>` prints every thread's stack to stderr: how a stuck run says where it is stuck.
        faulthandler.register(signal.SIGUSR1, all_threads=True)
    args = build_parser().parse_args(argv)
    code = int(args.func(args) or 0)
    client = sys.modules.get("manipllm_ros.nodes.client")
    if client is not None and client.stuck_teardowns and argv is None:  # never hang at exit on a stuck DDS
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


if __name__ == "__main__":
    sys.exit(main())
