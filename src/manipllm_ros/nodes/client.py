"""A client-side handle on a pose_service_node process: start it, call /predict_pose and /report_outcome.

Used by the demo and the benchmarks, which play the part of a lab's own client program.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

from manipllm_ros.images import depth_fields, rgb_fields
from manipllm_ros.processes import ProcessGroup


def predict_request(rgb: np.ndarray, depth_m: np.ndarray, K: np.ndarray, instruction: str,
                    chain_of_thought: bool = True):
    """A PredictPose.Request carrying its own RGB + aligned depth (m) + intrinsics."""
    from manipllm.srv import PredictPose

    req = PredictPose.Request(instruction=instruction, chain_of_thought=chain_of_thought)
    for k, v in rgb_fields(rgb).items():
        setattr(req.rgb, k, v)
    for k, v in depth_fields(depth_m).items():
        setattr(req.depth, k, v)
    req.camera_info.k = np.asarray(K, dtype=float).reshape(-1).tolist()
    return req


class PoseServiceClient:
    """Starts pose_service_node (own process, own log) and talks to it from this process over DDS."""

    def __init__(self, model_path: str | Path, log_dir: str | Path, tta_state_dir: str | Path | None = None,
                 startup_timeout: float = 300.0) -> None:
        self.model_path = Path(model_path).resolve()
        self.log_dir = Path(log_dir)
        self.tta_state_dir = Path(tta_state_dir or self.log_dir / "tta")
        self.startup_timeout = startup_timeout

    def __enter__(self) -> PoseServiceClient:
        import rclpy
        from rclpy.context import Context
        from rclpy.executors import SingleThreadedExecutor

        from manipllm.srv import PredictPose, ReportOutcome

        self.group = ProcessGroup(self.log_dir)
        try:
            proc = self.group.start("pose_service", [
                sys.executable, "-m", "manipllm_ros.nodes.pose_service_node", "--ros-args",
                "-p", f"model_path:={self.model_path}", "-p", f"tta_state_dir:={self.tta_state_dir}"])
            self.group.wait_for(proc, "active: /predict_pose is serving", self.startup_timeout)
            self.context = Context()
            rclpy.init(context=self.context)
            self.node = rclpy.create_node("manipllm_client", context=self.context)
            self.executor = SingleThreadedExecutor(context=self.context)
            self.executor.add_node(self.node)
            self._predict = self.node.create_client(PredictPose, "predict_pose")
            self._report = self.node.create_client(ReportOutcome, "report_outcome")
        except BaseException:
            self.group.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        import rclpy

        try:
            self.node.destroy_node()
            rclpy.shutdown(context=self.context)
        finally:
            self.group.stop()

    def call(self, client, request, timeout: float = 600.0):
        """Returns (response, round-trip ms); raises if the service is missing, silent, or its process died."""
        if not client.wait_for_service(timeout_sec=60):
            raise RuntimeError(f"{client.srv_name} is not available")
        t0 = time.perf_counter()
        future = client.call_async(request)
        deadline = time.monotonic() + timeout
        while not future.done() and time.monotonic() < deadline:
            self.executor.spin_once(timeout_sec=0.01)
            self.group.check_alive()
        if not future.done():
            raise RuntimeError(f"{client.srv_name} did not answer within {timeout:.0f} s")
        return future.result(), (time.perf_counter() - t0) * 1e3

    def predict(self, request, timeout: float = 600.0):
        return self.call(self._predict, request, timeout)

    def report(self, prediction_id: int, success: bool):
        from manipllm.srv import ReportOutcome

        return self.call(self._report, ReportOutcome.Request(prediction_id=prediction_id, success=success))
