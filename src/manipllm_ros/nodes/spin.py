"""The one way our node processes start, spin and stop (ros2/examples' main(), shared by every node)."""

from __future__ import annotations

import faulthandler
import signal
import sys
from collections.abc import Callable

import rclpy
from rclpy.executors import Executor, ExternalShutdownException


def run_node(make_node: Callable[[], object], make_executor: Callable[[], Executor], args: list[str] | None, name: str,
             startup_errors: tuple[type[BaseException], ...] = (Exception,),
             on_start: Callable[[object], None] | None = None) -> int:
    """Init ROS, build the node (a startup error is one clear line and exit code 2, not a trace), spin until
    SIGINT or shutdown, then destroy the node and shut ROS down."""
    # `kill -USR1 <pid>` writes every thread's stack to the node's log and the node goes on: how a node that
    # hangs or burns CPU says where, without a debugger.
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    rclpy.init(args=args if args is not None else sys.argv)
    try:
        node = make_node()
    except startup_errors as exc:
        print(f"{name}: could not start: {exc}", file=sys.stderr, flush=True)
        rclpy.try_shutdown()
        return 2
    executor = make_executor()
    executor.add_node(node)
    try:
        if on_start is not None:
            on_start(node)
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        shutdown = getattr(node, "shutdown", None)
        if callable(shutdown):
            shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
    return 0
