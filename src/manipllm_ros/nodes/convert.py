"""Core results -> ROS messages. Only field copying lives here; decisions live in the core."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from geometry_msgs.msg import Point, Pose, Quaternion, Vector3
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy

from manipllm_ros.config import FramesConfig
from manipllm_ros.pose_service import PoseResult, RGBDFrame


def qos_profile(depth: int, reliability: str) -> QoSProfile:
    rel = ReliabilityPolicy.BEST_EFFORT if reliability == "best_effort" else ReliabilityPolicy.RELIABLE
    return QoSProfile(depth=depth, history=HistoryPolicy.KEEP_LAST, reliability=rel)


def stamp_seconds(stamp) -> float:
    return float(stamp.sec) + float(stamp.nanosec) * 1e-9


def stamp_from_seconds(t: float, stamp) -> None:
    stamp.sec = int(t)
    stamp.nanosec = int(round((t - int(t)) * 1e9)) % 1_000_000_000


def point(p: Sequence[float]) -> Point:
    return Point(x=float(p[0]), y=float(p[1]), z=float(p[2]))


def vector(v: Sequence[float]) -> Vector3:
    return Vector3(x=float(v[0]), y=float(v[1]), z=float(v[2]))


def quaternion(q: Sequence[float]) -> Quaternion:
    return Quaternion(x=float(q[0]), y=float(q[1]), z=float(q[2]), w=float(q[3]))


def pose(position: Sequence[float], quat_xyzw: Sequence[float]) -> Pose:
    return Pose(position=point(position), orientation=quaternion(quat_xyzw))


def fill_predict_response(res, result: PoseResult, frame: RGBDFrame | None, frames: FramesConfig):
    """Copy a PoseResult into a PredictPose.Response."""
    res.success, res.error = result.success, result.error
    res.prediction_id, res.adapter_version = result.prediction_id, result.adapter_version
    lat = result.latency_ms
    for field in ("total_ms", "queue_ms", "model_ms", "preprocess_ms", "encode_ms", "category_ms", "reasoning_ms", "pose_ms",
                  "geometry_ms"):
        setattr(res.latency, field, float(lat.get(field, 0.0)))
    res.reasoning.category = result.category
    res.reasoning.affordance_reasoning = result.reasoning
    res.reasoning.raw_answer = result.raw_answer
    if not result.success:
        return res
    cp = res.pose
    cp.header.frame_id = frame.frame_id if frame else frames.camera_frame
    if frame is not None:
        stamp_from_seconds(frame.stamp, cp.header.stamp)
    cp.u, cp.v = result.u, result.v
    cp.point, cp.up, cp.forward = point(result.point), vector(result.up), vector(result.forward)
    cp.orientation = quaternion(result.quat_cam)
    cp.base_frame = frames.base_frame
    if result.contact_base is not None and result.approach_base is not None:
        cp.contact_pose_base = pose(*result.contact_base)
        cp.approach_pose_base = pose(*result.approach_base)
    cp.approach_distance = float(result.approach_distance)
    return res


def static_camera_transform(frames: FramesConfig, stamp):
    """geometry_msgs/TransformStamped base -> camera optical frame, from the hand-eye calibration."""
    from geometry_msgs.msg import TransformStamped

    t = TransformStamped()
    t.header.frame_id, t.header.stamp, t.child_frame_id = frames.base_frame, stamp, frames.camera_frame
    t.transform.translation = vector(frames.base_to_camera_xyz)
    t.transform.rotation = quaternion(frames.base_to_camera_quat_xyzw)
    return t


def as_array(v) -> np.ndarray:
    """geometry_msgs Point/Vector3 -> (3,) array."""
    return np.array([v.x, v.y, v.z], dtype=float)
