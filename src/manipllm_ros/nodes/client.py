"""Client-side handles on node processes, for the demo and the benchmarks (which play a lab's own client program).

`PoseServiceClient` starts a pose_service_node and calls /predict_pose and /report_outcome; `SystemClient` talks
to a started system (`bringup.start_system`): a camera frame, /predict_pose, the /manipulate action with feedback.
Every wait spins this process's own rclpy context and checks that the node processes are still alive, so a node
that dies ends the wait with an error instead of a hang.
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


TEARDOWN_TIMEOUT_S = 20.0
# Client teardowns that did not finish: their thread may hold DDS locks that the interpreter's own exit would
# wait on, so `manipllm` ends such a process with os._exit once its work is written (see cli.main).
stuck_teardowns: list[str] = []


def _client_node(name: str):
    """A node in its own rclpy context with a single-threaded executor: clients never share the global one."""
    import rclpy
    from rclpy.context import Context
    from rclpy.executors import SingleThreadedExecutor

    context = Context()
    rclpy.init(context=context)
    node = rclpy.create_node(name, context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    return context, node, executor


def _close_client_node(context, node, executor, *entities, timeout: float = TEARDOWN_TIMEOUT_S) -> bool:
    """Destroy the client's entities and node and shut its context down, bounded by `timeout`.

    DDS teardown talks to the other participants; it must never keep the demo from stopping the node processes
    (the caller stops them next either way). Returns False, with a warning, when it did not finish in time.
    """
    import threading

    import rclpy

    def close() -> None:
        for entity in entities:
            entity.destroy()
        executor.shutdown(timeout_sec=5.0)
        node.destroy_node()
        rclpy.try_shutdown(context=context)

    errors: list[BaseException] = []
    thread = threading.Thread(target=lambda: _collect(close, errors), name="client_teardown", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        print(f"warning: the DDS client's teardown did not finish within {timeout:.0f} s; going on without it",
              file=sys.stderr, flush=True)
        stuck_teardowns.append(node.get_name())
        return False
    if errors:
        raise errors[0]
    return True


def _collect(fn, errors: list[BaseException]) -> None:
    try:
        fn()
    except BaseException as exc:  # re-raised in the caller's thread
        errors.append(exc)


class PoseServiceClient:
    """Starts pose_service_node (own process, own log) and talks to it from this process over DDS."""

    def __init__(self, model_path: str | Path, log_dir: str | Path, tta_state_dir: str | Path | None = None,
                 startup_timeout: float = 300.0, contact: str = "pose", up: str = "model",
                 snap_radius_px: int = 0, views: int = 1, protrusion_radius_px: int = 0,
                 protrusion_facing_deg: float | None = None, handle_radius_px: int = 0,
                 protrusion_skip_outline: bool = False, protrusion_stay_on_own: bool = False) -> None:
        self.model_path = Path(model_path).resolve()
        self.contact, self.up, self.snap_radius_px, self.views = contact, up, snap_radius_px, views
        self.protrusion_radius_px = protrusion_radius_px
        self.protrusion_facing_deg = protrusion_facing_deg
        self.handle_radius_px = handle_radius_px
        self.protrusion_skip_outline = protrusion_skip_outline
        self.protrusion_stay_on_own = protrusion_stay_on_own
        self.log_dir = Path(log_dir)
        self.tta_state_dir = Path(tta_state_dir or self.log_dir / "tta")
        self.startup_timeout = startup_timeout

    def __enter__(self) -> PoseServiceClient:
        from manipllm.srv import PredictPose, ReportOutcome

        self.group = ProcessGroup(self.log_dir)
        try:
            proc = self.group.start("pose_service", [
                sys.executable, "-m", "manipllm_ros.nodes.pose_service_node", "--ros-args",
                "-p", f"model_path:={self.model_path}", "-p", f"tta_state_dir:={self.tta_state_dir}",
                "-p", f"contact:={self.contact}", "-p", f"up:={self.up}",
                "-p", f"snap_radius_px:={self.snap_radius_px}", "-p", f"views:={self.views}",
                "-p", f"protrusion_radius_px:={self.protrusion_radius_px}",
                "-p", f"protrusion_facing_deg:={float(self.protrusion_facing_deg or 0.0)}",
                "-p", f"handle_radius_px:={self.handle_radius_px}",
                "-p", f"protrusion_skip_outline:={int(self.protrusion_skip_outline)}",
                "-p", f"protrusion_stay_on_own:={int(self.protrusion_stay_on_own)}"])
            self.group.wait_for(proc, "active: /predict_pose is serving", self.startup_timeout)
            self.context, self.node, self.executor = _client_node("manipllm_client")
            self._predict = self.node.create_client(PredictPose, "predict_pose")
            self._report = self.node.create_client(ReportOutcome, "report_outcome")
        except BaseException:
            self.group.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            _close_client_node(self.context, self.node, self.executor)
        finally:
            self.group.stop()

    def call(self, client, request, timeout: float = 600.0):
        """Returns (response, round-trip ms); raises if the service is missing, silent, or its process died."""
        return _call(self.executor, self.group, client, request, timeout)

    def predict(self, request, timeout: float = 600.0):
        return self.call(self._predict, request, timeout)

    def report(self, prediction_id: int, success: bool):
        from manipllm.srv import ReportOutcome

        return self.call(self._report, ReportOutcome.Request(prediction_id=prediction_id, success=success))


def _spin_until(executor, group: ProcessGroup, done, timeout: float, what: str) -> None:
    """Spin until `done()`; RuntimeError after `timeout` s, ProcessError as soon as a node process has died."""
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what}: no answer within {timeout:.0f} s")
        executor.spin_once(timeout_sec=0.01)
        group.check_alive()


def _call(executor, group: ProcessGroup, client, request, timeout: float):
    if not client.wait_for_service(timeout_sec=60):
        raise RuntimeError(f"{client.srv_name} is not available")
    t0 = time.perf_counter()
    future = client.call_async(request)
    _spin_until(executor, group, future.done, timeout, client.srv_name)
    return future.result(), (time.perf_counter() - t0) * 1e3


class SystemClient:
    """This process's rclpy node on a started system (`bringup.start_system`); use as a context manager."""

    def __init__(self, group: ProcessGroup, config_path: str | Path) -> None:
        from manipllm_ros.config import load_config

        self.group = group
        self.cfg = load_config(config_path)

    def __enter__(self) -> SystemClient:
        from rclpy.action import ActionClient

        from manipllm.action import Manipulate
        from manipllm.srv import PredictPose

        self.context, self.node, self.executor = _client_node("manipllm_demo_client")
        self._predict = self.node.create_client(PredictPose, "predict_pose")
        self._manipulate = ActionClient(self.node, Manipulate, "manipulate")
        return self

    def __exit__(self, *exc: object) -> None:
        _close_client_node(self.context, self.node, self.executor, self._manipulate)

    def camera_frame(self, timeout: float = 60.0) -> tuple[np.ndarray, np.ndarray]:
        """One colour image (RGB) and its intrinsics K from the camera node's topics."""
        from sensor_msgs.msg import CameraInfo, Image

        from manipllm_ros.images import K_from_camera_info, rgb_from_msg
        from manipllm_ros.nodes.convert import qos_profile

        cam = self.cfg.camera
        qos = qos_profile(cam.qos_depth, cam.qos_reliability)
        box: dict = {}
        subs = [self.node.create_subscription(Image, cam.color_topic, lambda m: box.setdefault("rgb", m), qos),
                self.node.create_subscription(CameraInfo, cam.info_topic, lambda m: box.setdefault("info", m), qos)]
        try:
            _spin_until(self.executor, self.group, lambda: len(box) == 2, timeout, "camera frame")
        finally:
            for sub in subs:
                self.node.destroy_subscription(sub)
        return rgb_from_msg(box["rgb"]), K_from_camera_info(box["info"])

    def predict(self, request, timeout: float = 600.0):
        """(PredictPose.Response, round-trip ms)."""
        return _call(self.executor, self.group, self._predict, request, timeout)

    def predict_on_camera(self, instruction: str, chain_of_thought: bool = True, first_frame_wait_s: float = 20.0):
        """/predict_pose on the camera's latest frame. On a freshly started system the service can be up before the
        camera topics' discovery has delivered it a frame; while it answers "no recent image", ask again for up to
        first_frame_wait_s. Returns the PredictPose.Response."""
        from manipllm.srv import PredictPose

        deadline = time.monotonic() + first_frame_wait_s
        while True:
            res, _ = self.predict(PredictPose.Request(instruction=instruction, chain_of_thought=chain_of_thought))
            if res.success or not res.error.startswith("no recent image") or time.monotonic() > deadline:
                return res
            print("[client] the pose service has no camera frame yet; asking again", flush=True)
            time.sleep(0.5)

    def manipulate(self, goal, on_feedback=None, timeout: float = 600.0):
        """Send a /manipulate goal, wait for its result; returns the ManipulationOutcome."""
        if not self._manipulate.wait_for_server(timeout_sec=60):
            raise RuntimeError("/manipulate is not available")
        cb = (lambda f: on_feedback(f.feedback)) if on_feedback else None
        sent = self._manipulate.send_goal_async(goal, feedback_callback=cb)
        _spin_until(self.executor, self.group, sent.done, 60, "/manipulate goal")
        handle = sent.result()
        if not handle.accepted:
            raise RuntimeError("/manipulate rejected the goal")
        result = handle.get_result_async()
        _spin_until(self.executor, self.group, result.done, timeout, "/manipulate result")
        return result.result().result.outcome
