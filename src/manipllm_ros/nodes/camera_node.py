"""camera_node: colour, aligned depth and their camera_info on realsense-ros's topics, from any `FrameSource`.

A reader thread pulls frames from the source and publishes them, so a slow source (or a slow subscriber on a
reliable topic) never blocks the executor, which only serves `~/enable_streaming` (std_srvs/SetBool: false
stops publishing, as if the camera died; true resumes). All three messages of a frame carry the same stamp and
the frame id `frames.camera_frame` (camera_color_optical_frame), so either this node or realsense-ros can feed
the pose service. Images go out as rgb8 and 16UC1 millimetres, realsense-ros's encodings.
"""

from __future__ import annotations

import array
import sys
import threading
import time

import numpy as np
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, Image
from std_srvs.srv import SetBool

from manipllm_ros.camera.sources import CameraError, Frame, FrameSource, open_source
from manipllm_ros.config import ManipllmConfig, load_config
from manipllm_ros.images import rgb_fields
from manipllm_ros.nodes.spin import run_node
from manipllm_ros.nodes.convert import qos_profile, stamp_from_seconds


def _image(fields: dict, frame_id: str, stamp: float) -> Image:
    msg = Image(height=fields["height"], width=fields["width"], encoding=fields["encoding"],
                is_bigendian=fields["is_bigendian"], step=fields["step"])
    msg.data = array.array("B", fields["data"])  # array.array skips the per-byte field check
    msg.header.frame_id = frame_id
    stamp_from_seconds(stamp, msg.header.stamp)
    return msg


def depth_mm_fields(depth_m: np.ndarray) -> dict:
    """`images.depth_fields` (16UC1 mm, NaN/negative -> 0) in float32: 5x faster at 640x480, within 1 mm."""
    d = np.multiply(depth_m, np.float32(1000.0), dtype=np.float32)
    np.nan_to_num(d, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
    np.clip(d, 0.0, 65535.0, out=d)
    mm = np.rint(d, out=d).astype("<u2")
    h, w = mm.shape
    return {"height": h, "width": w, "encoding": "16UC1", "is_bigendian": 0, "step": 2 * w, "data": mm.tobytes()}


def camera_info(frame: Frame, frame_id: str) -> CameraInfo:
    """CameraInfo of a rectified-by-model colour stream, filled as realsense-ros does (R = I, P = [K | 0])."""
    K = frame.K
    msg = CameraInfo(height=frame.height, width=frame.width, distortion_model=frame.distortion_model)
    msg.d = [float(c) for c in frame.distortion]
    msg.k = [float(x) for x in K.reshape(9)]
    msg.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    msg.p = [K[0, 0], 0.0, K[0, 2], 0.0, 0.0, K[1, 1], K[1, 2], 0.0, 0.0, 0.0, 1.0, 0.0]
    msg.header.frame_id = frame_id
    stamp_from_seconds(frame.stamp, msg.header.stamp)
    return msg


class CameraNode(Node):
    def __init__(self) -> None:
        super().__init__("camera")
        d = ParameterDescriptor
        self.declare_parameter("config_file", "", d(description="manipllm YAML config (config/*.yaml)"))
        self.declare_parameter("source", "", d(description="realsense | bag | sim; overrides the YAML"))
        # Serials look like integers on the command line; accept either type (quote "'0123'" to keep zeros).
        self.declare_parameter("serial", "", d(description="RealSense serial number; overrides the YAML",
                                               dynamic_typing=True))
        self.declare_parameter("bag_path", "", d(description="recording to play (source bag); overrides the YAML"))
        cfg = load_config(self.get_parameter("config_file").value)
        for name in ("source", "serial", "bag_path"):
            value = self.get_parameter(name).value
            if value not in (None, ""):
                setattr(cfg.camera, name, str(value))
        self.cfg = ManipllmConfig.model_validate(cfg.model_dump())  # re-validate the overrides
        cam = self.cfg.camera
        self.frame_id = self.cfg.frames.camera_frame
        qos = qos_profile(cam.qos_depth, cam.qos_reliability)
        self.pub_rgb = self.create_publisher(Image, cam.color_topic, qos)
        self.pub_depth = self.create_publisher(Image, cam.depth_topic, qos)
        self.pub_info = self.create_publisher(CameraInfo, cam.info_topic, qos)
        self.pub_depth_info = self.create_publisher(CameraInfo, cam.depth_info_topic, qos)
        self.create_service(SetBool, "~/enable_streaming", self._on_enable)
        self.streaming = threading.Event()
        self.streaming.set()
        self._stop = threading.Event()
        self.published = 0
        self.source_gaps = 0  # frames the source skipped (colour frame-number gaps)
        self.source: FrameSource = open_source(cam)
        self.source.open()
        self._thread = threading.Thread(target=self._run, name="camera_reader", daemon=True)
        self._thread.start()
        self.get_logger().info(f"streaming {self.source.name} at {cam.width}x{cam.height} on {cam.color_topic}, "
                               f"{cam.depth_topic}, {cam.info_topic} (frame {self.frame_id})")

    def _on_enable(self, req: SetBool.Request, res: SetBool.Response) -> SetBool.Response:
        (self.streaming.set if req.data else self.streaming.clear)()
        res.success, res.message = True, "streaming" if req.data else "stopped: no frames are published"
        self.get_logger().info(res.message)
        return res

    def _run(self) -> None:
        last_number = None
        last_frame = time.monotonic()
        try:
            while not self._stop.is_set():
                frame = self.source.read(timeout=0.5)
                if frame is None:
                    if self.source.finished:
                        self.get_logger().info(f"recording ended after {self.published} frames")
                        return
                    silent = time.monotonic() - last_frame
                    if silent > 2.0:  # a camera unplugged or stalled: say so, and keep waiting for it
                        self.get_logger().warn(f"no frame from {self.source.name} for {silent:.0f} s",
                                               throttle_duration_sec=5.0)
                    continue
                last_frame = time.monotonic()
                if last_number is not None and frame.frame_number > last_number + 1:  # a loop restart is no gap
                    self.source_gaps += frame.frame_number - last_number - 1
                last_number = frame.frame_number
                if self.streaming.is_set():
                    self.publish(frame)
        except Exception as exc:  # noqa: BLE001 - the reader must report, not vanish silently
            if not self._stop.is_set() and self.context.ok():
                self.get_logger().error(f"camera reader stopped: {exc}")
        finally:
            self.source.close()  # in this thread: the simulated camera's GL context lives here

    def publish(self, frame: Frame) -> None:
        self.pub_rgb.publish(_image(rgb_fields(frame.rgb), self.frame_id, frame.stamp))
        self.pub_depth.publish(_image(depth_mm_fields(frame.depth), self.frame_id, frame.stamp))
        info = camera_info(frame, self.frame_id)
        self.pub_info.publish(info)
        self.pub_depth_info.publish(info)  # aligned depth has the colour camera's pixels and intrinsics
        self.published += 1

    def shutdown(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5.0)  # the reader closes the source on its way out
        # print, not the ROS logger: after SIGINT the context (and /rosout) is already gone
        print(f"camera_node stopped: published {self.published} frames, source skipped {self.source_gaps}",
              flush=True)


def main(args: list[str] | None = None) -> int:
    return run_node(CameraNode, SingleThreadedExecutor, args, "camera_node",
                    startup_errors=(CameraError, FileNotFoundError, ValueError))


if __name__ == "__main__":
    sys.exit(main())
