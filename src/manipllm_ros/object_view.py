"""The object's window in the camera image, found in the depth alone: what the model looks at instead of the
whole frame.

Why: the small model sees its image at 224x168, 8x6 merged tokens, and misses movable parts smaller than about
two tokens (benchmarks/eval_part_size.md). The object covers a median 210x250 of the 640x480 camera pixels, so
cutting the image down to the object's box before the model's resize gives every part about 1.7x the pixels per
side (3x the tokens), at the same compute. The box comes from the depth alone: the points off the dominant plane
(the floor or table the object stands on), their largest connected blob, its bounding box grown by a margin and
widened to the camera's aspect ratio. No mask, no category, nothing a real RGB-D camera lacks. Training
(`data.object_view`) and inference (`PosePredictor.predict(..., depth, K)`) cut the same window, here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from manipllm_ros.model.zoom import Window


class ObjectViewError(ValueError):
    """No object in the depth: nothing stands off the supporting plane (empty view, invalid depth)."""


class ObjectViewConfig(BaseModel):
    """How the object's window is found; saved with a checkpoint trained on such windows, so inference cuts the
    same one."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    margin: float = Field(0.05, ge=0, le=1, description="Grown by this fraction of the blob's box on every side.")
    max_zoom: float = Field(3.0, ge=1, description="The window is at least 1/max_zoom of the image per side.")
    plane_tol_m: float = Field(0.004, gt=0, description="Points nearer the camera than the plane by more than this "
                               "are the object (a USB stick lying flat stands 8 mm; raise it for noisy depth).")
    min_pixels: int = Field(300, ge=1, description="A smaller blob is not an object.")
    ransac_iters: int = Field(200, ge=10, description="Plane hypotheses tried (seeded: the window is deterministic).")


@dataclass(frozen=True)
class Plane:
    """n . p = d in the camera frame, n pointing toward the camera."""

    normal: np.ndarray
    offset: float

    def height(self, points: np.ndarray) -> np.ndarray:
        """Signed distance, positive on the camera's side of the plane."""
        return points @ self.normal - self.offset


def _points(depth: np.ndarray, K: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Camera-frame points of the pixels with valid depth, and that validity mask."""
    depth = np.asarray(depth, dtype=np.float64)
    valid = np.isfinite(depth) & (depth > 0)
    vs, us = np.nonzero(valid)
    z = depth[vs, us]
    x = (us - K[0, 2]) * z / K[0, 0]
    y = (vs - K[1, 2]) * z / K[1, 1]
    return np.stack([x, y, z], axis=1), valid


def dominant_plane(points: np.ndarray, tol: float, iters: int, seed: int = 0) -> Plane:
    """RANSAC: the plane with the most points within `tol`, refitted to them by least squares."""
    if len(points) < 3:
        raise ObjectViewError("fewer than 3 pixels with valid depth")
    rng = np.random.default_rng(seed)
    sample = points[rng.choice(len(points), size=min(len(points), 3000), replace=False)]
    tri = sample[rng.integers(len(sample), size=(iters, 3))]  # all hypotheses at once
    n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    norm = np.linalg.norm(n, axis=1)
    ok = norm > 1e-9
    if not ok.any():
        raise ObjectViewError("the depth is degenerate (all points on a line)")
    n, tri = n[ok] / norm[ok, None], tri[ok]
    d = np.einsum("ij,ij->i", n, tri[:, 0])
    counts = (np.abs(sample @ n.T - d) < tol).sum(axis=0)
    k = int(np.argmax(counts))
    n, d = n[k], d[k]
    inliers = sample[np.abs(sample @ n - d) < tol]
    centroid = inliers.mean(axis=0)
    n = np.linalg.svd(inliers - centroid)[2][-1]
    if n @ centroid > 0:  # point the normal at the camera (the origin)
        n = -n
    return Plane(n, float(n @ centroid))


def foreground_mask(depth: np.ndarray, K, cfg: ObjectViewConfig = ObjectViewConfig()) -> np.ndarray:
    """The largest connected blob of pixels standing off the dominant plane toward the camera (HxW bool)."""
    import cv2

    depth = np.asarray(depth)
    if depth.ndim != 2:
        raise ObjectViewError(f"depth must be HxW, got shape {depth.shape}")
    K = np.asarray(K, dtype=np.float64)
    pts, valid = _points(depth, K)
    plane = dominant_plane(pts, cfg.plane_tol_m, cfg.ransac_iters)
    off = np.zeros(depth.shape, bool)
    off[valid] = plane.height(pts) > cfg.plane_tol_m
    off = cv2.morphologyEx(off.astype(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    n, labels, stats, _ = cv2.connectedComponentsWithStats(off, connectivity=8)
    if n <= 1:
        raise ObjectViewError("nothing stands off the supporting plane: no object in view")
    k = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    if stats[k, cv2.CC_STAT_AREA] < cfg.min_pixels:
        raise ObjectViewError(f"the largest blob off the supporting plane has {stats[k, cv2.CC_STAT_AREA]} pixels "
                              f"(< {cfg.min_pixels}): no object in view")
    return labels == k


def box_window(x0: float, y0: float, x1: float, y1: float, width: int, height: int,
               cfg: ObjectViewConfig = ObjectViewConfig()) -> Window:
    """The box [x0, x1) x [y0, y1) grown by the margin, widened to the image's aspect ratio, at least
    1/max_zoom of the image, shifted (then clipped) to lie inside it."""
    bw, bh = x1 - x0, y1 - y0
    cu, cv = (x0 + x1) / 2, (y0 + y1) / 2
    bw, bh = bw * (1 + 2 * cfg.margin), bh * (1 + 2 * cfg.margin)
    aspect = width / height
    ww = max(bw, bh * aspect, width / cfg.max_zoom)
    ww = min(ww, float(width), height * aspect)
    wh = ww / aspect
    w, h = max(1, int(round(ww))), max(1, int(round(wh)))
    w, h = min(w, width), min(h, height)
    x = int(np.clip(round(cu - w / 2), 0, width - w))
    y = int(np.clip(round(cv - h / 2), 0, height - h))
    return Window(x, y, w, h)


def object_window(depth: np.ndarray, K, cfg: ObjectViewConfig = ObjectViewConfig()) -> Window:
    """The window the model looks at: the object's blob in the depth (foreground_mask), boxed (box_window)."""
    mask = foreground_mask(depth, K, cfg)
    vs, us = np.nonzero(mask)
    h, w = mask.shape
    return box_window(us.min(), vs.min(), us.max() + 1, vs.max() + 1, w, h, cfg)
