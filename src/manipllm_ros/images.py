"""sensor_msgs/Image <-> numpy without ROS imports (messages are read by field, so any msg-like object works).

Depth conventions follow realsense-ros: aligned depth is 16UC1 in millimetres (0 = no depth); 32FC1 in metres is
accepted too. Everything returned is in metres, float32, with holes as NaN.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from manipllm_ros.pose_service import InputError

_COLOR = {"rgb8": (3, False), "bgr8": (3, True), "rgba8": (4, False), "bgra8": (4, True)}
_DEPTH = {"16UC1": np.dtype("<u2"), "mono16": np.dtype("<u2"), "32FC1": np.dtype("<f4")}


def _buffer(msg: Any, what: str, channels: int, itemsize: int) -> np.ndarray:
    w, h, step = int(msg.width), int(msg.height), int(msg.step)
    if w <= 0 or h <= 0:
        raise InputError(f"{what} image is empty ({w}x{h})")
    row = w * channels * itemsize
    step = step or row
    data = np.frombuffer(bytes(msg.data), dtype=np.uint8)
    if step < row or data.size < step * h:
        raise InputError(f"{what} image data is {data.size} bytes, expected {step * h} for {w}x{h} "
                         f"{msg.encoding} (step {step})")
    return data[: step * h].reshape(h, step)[:, :row]


def rgb_from_msg(msg: Any) -> np.ndarray:
    """HxWx3 uint8 RGB from an rgb8/bgr8/rgba8/bgra8 Image."""
    enc = str(msg.encoding).lower()
    if enc not in _COLOR:
        raise InputError(f"rgb encoding '{msg.encoding}' is not supported (use one of {sorted(_COLOR)})")
    channels, bgr = _COLOR[enc]
    img = _buffer(msg, "rgb", channels, 1).reshape(int(msg.height), int(msg.width), channels)[..., :3]
    return np.ascontiguousarray(img[..., ::-1] if bgr else img)


def depth_from_msg(msg: Any) -> np.ndarray:
    """HxW float32 metres (NaN = no depth) from a 16UC1 (mm) or 32FC1 (m) Image."""
    enc = str(msg.encoding)
    if enc not in _DEPTH:
        raise InputError(f"depth encoding '{enc}' is not supported (use 16UC1 in mm or 32FC1 in m)")
    dt = _DEPTH[enc].newbyteorder(">" if msg.is_bigendian else "<")
    raw = _buffer(msg, "depth", 1, dt.itemsize).copy().view(dt).reshape(int(msg.height), int(msg.width))
    depth = raw.astype(np.float32) / (1000.0 if dt.kind == "u" else 1.0)
    depth[(depth <= 0) | ~np.isfinite(depth)] = np.nan
    return depth


def K_from_camera_info(msg: Any) -> np.ndarray:
    K = np.asarray(list(msg.k), dtype=float)
    if K.size != 9 or not np.all(np.isfinite(K)) or K[0] <= 0 or K[4] <= 0:
        raise InputError(f"camera_info.k is not a valid intrinsics matrix: {K.tolist()}")
    return K.reshape(3, 3)


def rgb_fields(rgb: np.ndarray) -> dict[str, Any]:
    """Fields of an rgb8 Image for an HxWx3 uint8 array."""
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    h, w = rgb.shape[:2]
    return {"height": h, "width": w, "encoding": "rgb8", "is_bigendian": 0, "step": 3 * w, "data": rgb.tobytes()}


def depth_fields(depth_m: np.ndarray) -> dict[str, Any]:
    """Fields of a 16UC1 (mm) Image, realsense-ros's aligned-depth encoding; NaN/negative -> 0."""
    d = np.nan_to_num(np.asarray(depth_m, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    mm = np.clip(np.round(d * 1000.0), 0, 65535).astype("<u2")
    h, w = mm.shape
    return {"height": h, "width": w, "encoding": "16UC1", "is_bigendian": 0, "step": 2 * w, "data": mm.tobytes()}
