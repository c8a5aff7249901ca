"""From a predicted pixel and two directions to an end-effector pose in the robot base frame.

Conventions (shared by all of manipllm):
- Camera frame: OpenCV optical frame, x right, y down, z forward (metres).
- Pixel (u, v) = (column, row), origin top-left, in pixels of the original camera image.
- Gripper rotation matrix columns = [forward (orthonormalised), up x forward, up]: x = forward, z = up = the
  approach axis. up = minus the surface normal, so the gripper approaches the contact point moving along +z: it
  starts at point - distance * up.
- Quaternions are (x, y, z, w), as in ROS.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


class GeometryError(ValueError):
    """A geometric computation got inputs it cannot turn into a meaningful answer."""


class NoValidDepthError(GeometryError):
    """No valid depth around the requested pixel (hole in the depth image or pixel off-image)."""


class DegenerateDirectionError(GeometryError):
    """A direction is zero-length or non-finite, or up and forward are parallel."""


def intrinsics_matrix(fx: float, fy: float, cx: float, cy: float) -> np.ndarray:
    return np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])


def _as_K(K: np.ndarray | Sequence) -> np.ndarray:
    K = np.asarray(K, dtype=float)
    if K.shape == (4,):
        K = intrinsics_matrix(*K)
    if K.shape != (3, 3) or K[0, 0] <= 0 or K[1, 1] <= 0:
        raise GeometryError(f"intrinsics must be a 3x3 matrix with positive fx, fy, got {K.tolist()}")
    return K


def valid_depth_at(
    u: float, v: float, depth: np.ndarray, window: int = 5, min_depth: float = 0.05, max_depth: float = 10.0
) -> float:
    """Depth (m) at pixel (u, v): the pixel's own if valid, else the nearest valid one within +-window pixels.

    Holes (0, NaN, inf, out of [min_depth, max_depth]) are skipped; raises NoValidDepthError if none is left.
    """
    depth = np.asarray(depth)
    if depth.ndim != 2:
        raise GeometryError(f"depth must be an HxW array, got shape {depth.shape}")
    h, w = depth.shape
    if not (np.isfinite(u) and np.isfinite(v)):
        raise NoValidDepthError(f"pixel ({u}, {v}) is not finite")
    c, r = int(round(float(u))), int(round(float(v)))
    if not (0 <= c < w and 0 <= r < h):
        raise NoValidDepthError(f"pixel ({u}, {v}) is outside the {w}x{h} depth image")
    r0, r1 = max(0, r - window), min(h, r + window + 1)
    c0, c1 = max(0, c - window), min(w, c + window + 1)
    patch = depth[r0:r1, c0:c1].astype(float)
    ok = np.isfinite(patch) & (patch >= min_depth) & (patch <= max_depth)
    if not ok.any():
        raise NoValidDepthError(
            f"no valid depth within {window} px of pixel ({u:.1f}, {v:.1f}) (range {min_depth}-{max_depth} m)"
        )
    rr, cc = np.nonzero(ok)
    d2 = (rr + r0 - r) ** 2 + (cc + c0 - c) ** 2
    i = int(np.argmin(d2))
    return float(patch[rr[i], cc[i]])


def pixel_to_point(
    u: float, v: float, depth: np.ndarray, K: np.ndarray | Sequence, window: int = 5, **depth_kwargs: float
) -> np.ndarray:
    """Back-project pixel (u, v) with aligned depth and intrinsics K to a 3D point in the camera frame."""
    K = _as_K(K)
    z = valid_depth_at(u, v, depth, window=window, **depth_kwargs)
    x = (float(u) - K[0, 2]) * z / K[0, 0]
    y = (float(v) - K[1, 2]) * z / K[1, 1]
    return np.array([x, y, z])


def surface_fit_at(
    u: float, v: float, depth: np.ndarray, K: np.ndarray | Sequence, radius: float = 0.015, max_step: float = 0.03,
    min_points: int = 12,
) -> tuple[np.ndarray, float]:
    """(unit normal facing the camera, surface variation) of the least-squares plane `surface_normal_at` fits at
    pixel (u, v), without refusing a curved patch: for callers that weigh the flatness themselves. Raises
    NoValidDepthError without depth there and GeometryError with too few points."""
    K = _as_K(K)
    depth = np.asarray(depth)
    z0 = valid_depth_at(u, v, depth, window=2)
    window = int(np.clip(round(radius * K[0, 0] / z0), 2, 25))
    h, w = depth.shape
    c, r = int(round(float(u))), int(round(float(v)))
    r0, r1 = max(0, r - window), min(h, r + window + 1)
    c0, c1 = max(0, c - window), min(w, c + window + 1)
    patch = depth[r0:r1, c0:c1].astype(float)
    with np.errstate(invalid="ignore"):
        ok = np.isfinite(patch) & (patch > 0) & (np.abs(patch - z0) <= max_step)
    if int(ok.sum()) < min_points:
        raise GeometryError(f"only {int(ok.sum())} depth points on the surface around pixel ({u:.0f}, {v:.0f}) "
                            f"(need {min_points})")
    rr, cc = np.nonzero(ok)
    z = patch[rr, cc]
    P = np.column_stack([(cc + c0 - K[0, 2]) * z / K[0, 0], (rr + r0 - K[1, 2]) * z / K[1, 1], z])
    evals, evecs = np.linalg.eigh(np.cov(P, rowvar=False, bias=True))  # ascending
    curvature = float(max(evals[0], 0.0) / max(float(evals.sum()), 1e-18))
    n = evecs[:, 0]
    return (-n if np.dot(n, P.mean(axis=0)) > 0 else n), curvature


def surface_normal_at(
    u: float, v: float, depth: np.ndarray, K: np.ndarray | Sequence, radius: float = 0.015, max_step: float = 0.03,
    min_points: int = 12, max_curvature: float = 0.05,
) -> np.ndarray:
    """Unit surface normal at pixel (u, v) from the aligned depth, facing the camera (camera frame).

    A least-squares plane through the back-projected points within `radius` m of the pixel's ray (a square
    window of radius * fx / z px, 2-25 px) whose depth is within `max_step` m of the pixel's own, so a depth edge
    does not tilt it. As in PCL's normal estimation, the fit is refused when its surface variation (smallest
    eigenvalue over their sum: 0 for a plane, 0.02 for 2 mm of noise, 0.11 on a right-angled edge) exceeds
    `max_curvature`: a corner, a knob, a noisy patch. Raises NoValidDepthError without depth there and
    GeometryError when there is no plane, so that the caller keeps another direction rather than a made-up one.
    """
    n, curvature = surface_fit_at(u, v, depth, K, radius=radius, max_step=max_step, min_points=min_points)
    if curvature > max_curvature:
        raise GeometryError(f"the depth around pixel ({u:.0f}, {v:.0f}) is not a plane (surface variation "
                            f"{curvature:.3f} > {max_curvature})")
    return n


def up_from_depth(
    u: float, v: float, depth: np.ndarray, K: np.ndarray | Sequence, up: Sequence[float], forward: Sequence[float],
    **normal_kwargs,
) -> tuple[np.ndarray, np.ndarray, str]:
    """(up, forward, why): up = minus the surface normal measured at pixel (u, v), forward = the given forward
    made perpendicular to it, why = "". Where the depth there is no clean plane, the given directions and the
    reason (why != ""). Why: the model's up errs most on categories it never saw, while the depth camera measures
    the surface it points at (benchmarks/eval_depth_up.md)."""
    try:
        new_up = -surface_normal_at(u, v, depth, K, **normal_kwargs)
    except GeometryError as exc:
        return np.asarray(up, dtype=float), np.asarray(forward, dtype=float), str(exc)
    fw = np.asarray(forward, dtype=float)
    fw = fw - fw.dot(new_up) * new_up
    if not np.all(np.isfinite(fw)) or np.linalg.norm(fw) < 1e-3:  # forward was along the measured normal
        fw = np.cross(new_up, [0.0, 1.0, 0.0]) if abs(new_up[1]) < 0.9 else np.cross(new_up, [1.0, 0.0, 0.0])
    return new_up, fw / np.linalg.norm(fw), ""


def point_to_pixel(point: Sequence[float], K: np.ndarray | Sequence) -> tuple[float, float]:
    """Project a camera-frame point to pixel (u, v); raises if it is behind the camera."""
    K = _as_K(K)
    p = np.asarray(point, dtype=float).reshape(3)
    if p[2] <= 1e-9:
        raise GeometryError(f"point {p.tolist()} is not in front of the camera")
    return float(K[0, 0] * p[0] / p[2] + K[0, 2]), float(K[1, 1] * p[1] / p[2] + K[1, 2])


def _unit(vec: Sequence[float], name: str) -> np.ndarray:
    a = np.asarray(vec, dtype=float).reshape(3)
    if not np.all(np.isfinite(a)):
        raise DegenerateDirectionError(f"{name} direction {a.tolist()} is not finite")
    n = np.linalg.norm(a)
    if n < 1e-9:
        raise DegenerateDirectionError(f"{name} direction has zero length")
    return a / n


def rotation_from_up_forward(up: Sequence[float], forward: Sequence[float], min_angle_deg: float = 1.0) -> np.ndarray:
    """Gripper rotation: columns [forward ⟂ up, up x forward, up]; a proper rotation (det +1).

    up is kept exactly (it is the approach axis); forward is Gram-Schmidt-orthogonalised against it.
    """
    z = _unit(up, "up")
    f = _unit(forward, "forward")
    x = f - np.dot(f, z) * z
    nx = np.linalg.norm(x)
    if nx < np.sin(np.radians(min_angle_deg)):
        raise DegenerateDirectionError("up and forward directions are (nearly) parallel")
    x /= nx
    y = np.cross(z, x)
    return np.column_stack([x, y, z])


def approach_pose(point: Sequence[float], R: np.ndarray, distance: float) -> tuple[np.ndarray, np.ndarray]:
    """Pre-contact pose, `distance` metres back from the contact point against up (R's z column).

    up = minus the surface normal (it points into the part), so the gripper starts at point - distance * up
    and moves along +up onto the surface.
    """
    p = np.asarray(point, dtype=float).reshape(3)
    R = np.asarray(R, dtype=float).reshape(3, 3)
    return p - float(distance) * R[:, 2], R.copy()


def make_transform(R: np.ndarray, t: Sequence[float]) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3] = np.asarray(R, dtype=float).reshape(3, 3)
    T[:3, 3] = np.asarray(t, dtype=float).reshape(3)
    return T


def check_transform(T: np.ndarray, name: str = "transform", tol: float = 1e-4) -> np.ndarray:
    """A 4x4 rigid transform, or GeometryError naming what is wrong (e.g. a bad hand-eye calibration)."""
    T = np.asarray(T, dtype=float)
    if T.shape != (4, 4) or not np.all(np.isfinite(T)):
        raise GeometryError(f"{name} must be a finite 4x4 matrix, got shape {T.shape}")
    R = T[:3, :3]
    if not np.allclose(R.T @ R, np.eye(3), atol=tol) or abs(np.linalg.det(R) - 1.0) > tol:
        raise GeometryError(f"{name} rotation part is not a proper rotation")
    if not np.allclose(T[3], [0, 0, 0, 1], atol=tol):
        raise GeometryError(f"{name} last row must be [0, 0, 0, 1]")
    return T


def transform_point(T: np.ndarray, point: Sequence[float]) -> np.ndarray:
    T = check_transform(T)
    return T[:3, :3] @ np.asarray(point, dtype=float).reshape(3) + T[:3, 3]


def transform_direction(T: np.ndarray, vec: Sequence[float]) -> np.ndarray:
    T = check_transform(T)
    return T[:3, :3] @ np.asarray(vec, dtype=float).reshape(3)


def transform_pose(T_base_cam: np.ndarray, position: Sequence[float], R: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Camera-frame pose (position, rotation) -> base-frame pose through the hand-eye transform T_base_cam."""
    T = check_transform(T_base_cam, "T_base_cam")
    return T[:3, :3] @ np.asarray(position, dtype=float).reshape(3) + T[:3, 3], T[:3, :3] @ np.asarray(R, float)


def invert_transform(T: np.ndarray) -> np.ndarray:
    T = check_transform(T)
    Ti = np.eye(4)
    Ti[:3, :3] = T[:3, :3].T
    Ti[:3, 3] = -T[:3, :3].T @ T[:3, 3]
    return Ti


def quaternion_from_matrix(R: np.ndarray) -> np.ndarray:
    """Rotation matrix -> unit quaternion (x, y, z, w) with w >= 0."""
    R = np.asarray(R, dtype=float).reshape(3, 3)
    if not np.allclose(R.T @ R, np.eye(3), atol=1e-5) or np.linalg.det(R) < 0:
        raise GeometryError("matrix is not a proper rotation")
    tr = np.trace(R)
    if tr > 0:
        s = np.sqrt(tr + 1.0) * 2
        q = [(R[2, 1] - R[1, 2]) / s, (R[0, 2] - R[2, 0]) / s, (R[1, 0] - R[0, 1]) / s, 0.25 * s]
    elif R[0, 0] > R[1, 1] and R[0, 0] > R[2, 2]:
        s = np.sqrt(1.0 + R[0, 0] - R[1, 1] - R[2, 2]) * 2
        q = [0.25 * s, (R[0, 1] + R[1, 0]) / s, (R[0, 2] + R[2, 0]) / s, (R[2, 1] - R[1, 2]) / s]
    elif R[1, 1] > R[2, 2]:
        s = np.sqrt(1.0 + R[1, 1] - R[0, 0] - R[2, 2]) * 2
        q = [(R[0, 1] + R[1, 0]) / s, 0.25 * s, (R[1, 2] + R[2, 1]) / s, (R[0, 2] - R[2, 0]) / s]
    else:
        s = np.sqrt(1.0 + R[2, 2] - R[0, 0] - R[1, 1]) * 2
        q = [(R[0, 2] + R[2, 0]) / s, (R[1, 2] + R[2, 1]) / s, 0.25 * s, (R[1, 0] - R[0, 1]) / s]
    q = np.array(q)
    q /= np.linalg.norm(q)
    return -q if q[3] < 0 else q


def matrix_from_quaternion(q: Sequence[float]) -> np.ndarray:
    """Quaternion (x, y, z, w) -> rotation matrix; raises on a zero quaternion."""
    q = np.asarray(q, dtype=float).reshape(4)
    n = np.linalg.norm(q)
    if not np.isfinite(n) or n < 1e-9:
        raise GeometryError(f"quaternion {q.tolist()} has zero length")
    x, y, z, w = q / n
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def angle_between(a: Sequence[float], b: Sequence[float]) -> float:
    """Angle in degrees between two non-zero vectors (used by the direction-error metric)."""
    ua, ub = _unit(a, "first"), _unit(b, "second")
    return float(np.degrees(np.arccos(np.clip(np.dot(ua, ub), -1.0, 1.0))))
