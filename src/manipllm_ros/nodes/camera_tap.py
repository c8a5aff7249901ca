"""The pose service's view of the camera: the newest colour + aligned depth pair, read from DDS when a request
needs one, not delivered message by message.

Why not subscription callbacks: the camera sends three topics at 30 Hz, 2 MB a frame, and the service uses one
frame per request. A callback per message kept rclpy's MultiThreadedExecutor waking ~90 times a second to
deserialise frames nobody used; its dispatch loop re-submits every callback not yet started on each wake, so on a
loaded 2-core machine it fed itself until it held both cores (the pose service at 180 % CPU while the arm moved,
and a CI run that never finished). Here the subscriptions belong to a callback group the executor never runs:
their DDS reader caches keep the last `qos_depth` messages, and `latest()` takes them when asked.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from rclpy.callback_groups import CallbackGroup
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, Image

from manipllm_ros.config import CameraConfig
from manipllm_ros.frame_pairing import FramePairer
from manipllm_ros.images import K_from_camera_info, depth_from_msg, rgb_from_msg
from manipllm_ros.nodes.convert import qos_profile, stamp_seconds
from manipllm_ros.pose_service import RGBDFrame


class OnDemandGroup(CallbackGroup):
    """A callback group no executor ever runs: its subscriptions are read with take() by their owner."""

    def can_execute(self, entity: object) -> bool:
        return False

    def beginning_execution(self, entity: object) -> bool:
        return False

    def ending_execution(self, entity: object) -> None:
        pass


def _unused(msg: object) -> None:  # never called: OnDemandGroup's entities are not executed
    raise AssertionError("an on-demand subscription's callback ran")


class CameraTap:
    """Subscribes to the camera topics of `cam` on `node`; thread-safe."""

    def __init__(self, node: Node, cam: CameraConfig, default_frame_id: str) -> None:
        qos = qos_profile(cam.qos_depth, cam.qos_reliability)
        group = OnDemandGroup()
        self._subs = {key: node.create_subscription(cls, topic, _unused, qos, callback_group=group)
                      for key, topic, cls in (("rgb", cam.color_topic, Image), ("depth", cam.depth_topic, Image),
                                              ("info", cam.info_topic, CameraInfo))}
        self._pairer: FramePairer[Image] = FramePairer(history=cam.qos_depth)
        self._info: CameraInfo | None = None
        self._default_frame_id = default_frame_id
        self._node = node
        self._lock = threading.Lock()

    def destroy(self) -> None:
        with self._lock:
            for sub in self._subs.values():
                self._node.destroy_subscription(sub)
            self._subs = {}

    def _drain(self) -> None:
        """Move every message the reader caches hold into the pairer (the newest `qos_depth` of each topic)."""
        for key, sub in self._subs.items():
            while True:
                with sub.handle:
                    taken = sub.handle.take_message(sub.msg_type, sub.raw)
                if taken is None:
                    break
                msg = taken[0]
                if key == "info":
                    self._info = msg
                elif key == "rgb":
                    self._pairer.add_rgb(stamp_seconds(msg.header.stamp), msg)
                else:
                    self._pairer.add_depth(stamp_seconds(msg.header.stamp), msg)

    def latest(self, now_s: float, max_age_s: float) -> RGBDFrame | None:
        """The newest colour + depth pair of one frame, with intrinsics, if its stamp is within max_age_s of
        now_s (ROS time); None otherwise."""
        with self._lock:
            self._drain()
            pair, info = self._pairer.newest_pair(), self._info
        if pair is None or info is None:
            return None
        stamp, rgb, depth = pair
        if now_s - stamp > max_age_s:
            return None
        return RGBDFrame(rgb_from_msg(rgb), depth_from_msg(depth), K_from_camera_info(info), stamp,
                         rgb.header.frame_id or self._default_frame_id)

    def wait(self, now_s: Callable[[], float], max_age_s: float, timeout_s: float,
             poll_s: float = 0.02) -> RGBDFrame | None:
        """`latest()`, waiting up to timeout_s for a fresh frame: a request right after bring-up, before the first
        frame has come over DDS, must not fail."""
        deadline = time.monotonic() + timeout_s
        while True:
            frame = self.latest(now_s(), max_age_s)
            if frame is not None or time.monotonic() >= deadline:
                return frame
            time.sleep(poll_s)
