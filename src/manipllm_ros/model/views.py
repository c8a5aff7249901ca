"""Several slightly shifted and scaled copies of the object window, and one contact from their answers.

Why: the small model's grounding answer moves by ~12 px (median) when its window moves by a few percent, and its
misses are near misses beside small parts (a toaster lever, a mouse button; benchmarks/eval_contact_choices.md).
Asking the same question on a few jittered windows and taking a trimmed mean of the answers (test-time
augmentation, no training) lands on the part more often than any one answer. The trim drops answers far from the
rest, so one view that picked another part does not drag the mean off both.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from manipllm_ros.model.zoom import Window

# (shift right, shift down, scale) of each view, shifts as fractions of the base window's size. The first is the
# base window itself; `views: N` uses the first N. Chosen on validation (benchmarks/contact_val.md).
VIEW_JITTERS: tuple[tuple[float, float, float], ...] = (
    (0.0, 0.0, 1.0), (0.04, 0.0, 1.0), (-0.04, 0.0, 1.0), (0.0, 0.04, 1.0), (0.0, -0.04, 1.0),
    (0.0, 0.0, 0.92), (0.0, 0.0, 1.08),
)
MAX_VIEWS = len(VIEW_JITTERS)
TRIM_MIN_PX = 6.0  # answers this close to the medoid always count, however tightly the rest agree
TRIM_FACTOR = 1.5  # ... and those within 1.5x the median distance to the medoid


def check_views(views: int) -> None:
    """ValueError unless 1 <= views <= MAX_VIEWS."""
    if not isinstance(views, (int, np.integer)) or isinstance(views, bool) or not 1 <= views <= MAX_VIEWS:
        raise ValueError(f"views must be an integer from 1 (the object window alone) to {MAX_VIEWS}, got {views!r}")


def view_windows(base: Window, image_width: int, image_height: int, views: int) -> list[Window]:
    """The first `views` jittered copies of `base` (VIEW_JITTERS)."""
    check_views(views)
    return jittered_windows(base, image_width, image_height, VIEW_JITTERS[:views])


def jittered_windows(base: Window, image_width: int, image_height: int,
                     jitters: Sequence[tuple[float, float, float]]) -> list[Window]:
    """One copy of `base` per (shift right, shift down, scale), each shifted (then clipped) to lie inside the
    image."""
    out = []
    for dx, dy, scale in jitters:
        w = min(image_width, max(1, int(round(base.width * scale))))
        h = min(image_height, max(1, int(round(base.height * scale))))
        cu = base.x0 + base.width / 2 + dx * base.width
        cv = base.y0 + base.height / 2 + dy * base.height
        x0 = int(np.clip(round(cu - w / 2), 0, image_width - w))
        y0 = int(np.clip(round(cv - h / 2), 0, image_height - h))
        out.append(Window(x0, y0, w, h))
    return out


def combine_points(points: Sequence[Sequence[float]]) -> tuple[tuple[float, float], int]:
    """Trimmed mean of the views' answers (full-image pixels) and how many answers it kept.

    Kept: the answers within max(TRIM_MIN_PX, TRIM_FACTOR x median distance) of the medoid (the answer nearest
    all others)."""
    p = np.asarray(points, dtype=float).reshape(-1, 2)
    if len(p) == 0 or not np.isfinite(p).all():
        raise ValueError(f"need one or more finite points, got {np.asarray(points).tolist()}")
    d = np.linalg.norm(p[:, None] - p[None], axis=-1)
    r = d[int(np.argmin(d.sum(1)))]
    keep = r <= max(TRIM_MIN_PX, TRIM_FACTOR * float(np.median(r)))
    u, v = p[keep].mean(0)
    return (float(u), float(v)), int(keep.sum())
