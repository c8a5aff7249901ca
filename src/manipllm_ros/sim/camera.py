"""Pinhole camera maths shared by the simulator and the dataset: D415-like intrinsics, poses, projections.

Convention (everywhere in data): OpenCV optical frame, x right, y down, z forward into the scene; pixel (u, v)
= (column, row) with the origin at the top-left pixel's centre. MuJoCo cameras look along -z with +y up; the
conversion is `R_optical = R_mujoco @ diag(1, -1, -1)`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

MJ_TO_OPTICAL = np.diag([1.0, -1.0, -1.0])


@dataclass(frozen=True)
class Intrinsics:
    """Pinhole intrinsics. The default is a RealSense D415 colour stream at 640x480 (fx = fy ~ 615 px)."""

    width: int = 640
    height: int = 480
    fx: float = 615.0
    fy: float = 615.0
    cx: float = 319.5  # image centre in the pixel-centre convention: what MuJoCo's symmetric frustum renders
    cy: float = 239.5

    @property
    def K(self) -> np.ndarray:
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    @property
    def fovy_deg(self) -> float:
        """MuJoCo's vertical field of view giving this fy (MuJoCo has square pixels, so fx = fy)."""
        return math.degrees(2.0 * math.atan(self.height / 2.0 / self.fy))


D415 = Intrinsics()


def look_at(eye: np.ndarray, target: np.ndarray, world_up: np.ndarray = np.array([0.0, 0.0, 1.0])) -> np.ndarray:
    """4x4 optical-frame -> world transform of a camera at `eye` looking at `target`, image up ~ world_up."""
    eye = np.asarray(eye, float)
    f = np.asarray(target, float) - eye
    f /= np.linalg.norm(f)
    r = np.cross(f, world_up)
    if np.linalg.norm(r) < 1e-6:
        r = np.cross(f, np.array([1.0, 0.0, 0.0]))
    r /= np.linalg.norm(r)
    down = np.cross(f, r)
    T = np.eye(4)
    T[:3, :3] = np.column_stack([r, down, f])
    T[:3, 3] = eye
    return T


def optical_to_mujoco_quat(R_optical: np.ndarray) -> np.ndarray:
    """MuJoCo camera quaternion (w, x, y, z) for an optical-frame rotation."""
    return mat_to_quat(R_optical @ MJ_TO_OPTICAL)


def mat_to_quat(R: np.ndarray) -> np.ndarray:
    import mujoco

    q = np.zeros(4)
    mujoco.mju_mat2Quat(q, np.ascontiguousarray(R, dtype=float).reshape(9))
    return q


def backproject(depth: np.ndarray, K: Intrinsics) -> np.ndarray:
    """HxWx3 points in the optical frame from a z-depth image (metres)."""
    h, w = depth.shape
    u = np.arange(w, dtype=np.float32)[None, :]
    v = np.arange(h, dtype=np.float32)[:, None]
    z = depth.astype(np.float32)
    return np.stack([(u - K.cx) * z / K.fx, (v - K.cy) * z / K.fy, z], axis=-1)


def project(points_cam: np.ndarray, K: Intrinsics) -> np.ndarray:
    """(N, 2) pixel coordinates (u, v) of (N, 3) optical-frame points."""
    p = np.atleast_2d(points_cam)
    return np.stack([K.fx * p[:, 0] / p[:, 2] + K.cx, K.fy * p[:, 1] / p[:, 2] + K.cy], axis=-1)


def normals_from_points(P: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Unit surface normals (HxWx3, optical frame, facing the camera) by central differences; 0 where unknown."""
    du = np.zeros_like(P)
    dv = np.zeros_like(P)
    du[:, 1:-1] = P[:, 2:] - P[:, :-2]
    dv[1:-1, :] = P[2:, :] - P[:-2, :]
    n = np.cross(dv, du)
    norm = np.linalg.norm(n, axis=-1, keepdims=True)
    z = P[..., 2]
    jump = np.zeros(z.shape, bool)  # depth discontinuity (second difference) -> the normal is unknown there
    jump[:, 1:-1] |= np.abs(z[:, 2:] - 2 * z[:, 1:-1] + z[:, :-2]) > 0.01 * z[:, 1:-1]
    jump[1:-1, :] |= np.abs(z[2:, :] - 2 * z[1:-1, :] + z[:-2, :]) > 0.01 * z[1:-1, :]
    ok = (norm[..., 0] > 1e-12) & valid & ~jump
    ok[:, 0] = ok[:, -1] = False
    ok[0, :] = ok[-1, :] = False
    n = np.where(ok[..., None], n / np.maximum(norm, 1e-12), 0.0)
    flip = (n * P).sum(-1) > 0  # make every normal face the camera
    n[flip] *= -1
    return n.astype(np.float32)
