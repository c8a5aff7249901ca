"""RViz markers for a prediction and its AIA trajectory, all in the robot base frame."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence

import numpy as np
from geometry_msgs.msg import Point
from visualization_msgs.msg import Marker, MarkerArray

from manipllm_ros.geometry import matrix_from_quaternion

NAMESPACE = "manipllm"


def _marker(frame: str, stamp, mid: int, mtype: int, rgba: Sequence[float], ns: str = NAMESPACE) -> Marker:
    m = Marker()
    m.header.frame_id, m.header.stamp = frame, stamp
    m.ns, m.id, m.type, m.action = ns, mid, mtype, Marker.ADD
    m.color.r, m.color.g, m.color.b, m.color.a = (float(c) for c in rgba)
    m.pose.orientation.w = 1.0
    return m


def _pt(p: Sequence[float]) -> Point:
    return Point(x=float(p[0]), y=float(p[1]), z=float(p[2]))


def _arrow(frame, stamp, mid, start, direction, length, rgba) -> Marker:
    m = _marker(frame, stamp, mid, Marker.ARROW, rgba)
    m.points = [_pt(start), _pt(np.asarray(start) + length * np.asarray(direction))]
    m.scale.x, m.scale.y, m.scale.z = 0.008, 0.016, 0.02
    return m


def prediction_markers(contact_pose, stamp, category: str = "", reasoning: str = "",
                       path: Sequence[Sequence[float]] = ()) -> MarkerArray:
    """Contact sphere, up (red) and forward (green) arrows, approach pose, AIA path, and the reasoning text."""
    frame = contact_pose.base_frame
    c = contact_pose.contact_pose_base
    p = np.array([c.position.x, c.position.y, c.position.z])
    q = c.orientation
    R = matrix_from_quaternion([q.x, q.y, q.z, q.w])
    up, forward = R[:, 2], R[:, 0]
    a = contact_pose.approach_pose_base.position
    approach = np.array([a.x, a.y, a.z])

    sphere = _marker(frame, stamp, 0, Marker.SPHERE, (1.0, 0.8, 0.0, 1.0))
    sphere.pose.position = _pt(p)
    sphere.scale.x = sphere.scale.y = sphere.scale.z = 0.02
    approach_m = _marker(frame, stamp, 3, Marker.SPHERE, (0.2, 0.4, 1.0, 0.8))
    approach_m.pose.position = _pt(approach)
    approach_m.scale.x = approach_m.scale.y = approach_m.scale.z = 0.015
    line = _marker(frame, stamp, 4, Marker.LINE_STRIP, (0.2, 0.4, 1.0, 0.8))
    line.points = [_pt(approach), _pt(p)]
    line.scale.x = 0.003
    text = _marker(frame, stamp, 5, Marker.TEXT_VIEW_FACING, (1.0, 1.0, 1.0, 1.0))
    text.pose.position = _pt(p + np.array([0.0, 0.0, 0.12]))
    text.scale.z = 0.025
    text.text = "\n".join(textwrap.wrap(f"{category}: {reasoning}".strip(": "), 48)) or "prediction"
    markers = [sphere, _arrow(frame, stamp, 1, p, up, 0.1, (1.0, 0.1, 0.1, 1.0)),
               _arrow(frame, stamp, 2, p, forward, 0.1, (0.1, 1.0, 0.1, 1.0)), approach_m, line, text]
    trajectory = _marker(frame, stamp, 6, Marker.LINE_STRIP, (1.0, 0.3, 1.0, 1.0))
    trajectory.scale.x = 0.005
    trajectory.points = [_pt(x) for x in path]
    if len(trajectory.points) < 2:
        trajectory.action = Marker.DELETE
    markers.append(trajectory)
    return MarkerArray(markers=markers)
