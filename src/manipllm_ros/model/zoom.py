"""A zoomed-in view around a point: the window, the crop, and the way back to full-image pixels.

Why: the small model sees the camera image at 224x168, 8x6 merged tokens of 80x80 camera pixels each, and its
grounding answer misses parts smaller than about two tokens (benchmarks/eval_part_size.md). Asking the same
question again on a crop around the first answer gives the part zoom^2 times as many tokens. Training
(the `grounding_zoom` task) and inference (`PosePredictor.predict(..., zoom=Z)`) cut the crop the same way, here.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Window:
    """An integer pixel rectangle of the full image, with the full image's aspect ratio."""

    x0: int
    y0: int
    width: int
    height: int

    def to_full(self, u: float, v: float) -> tuple[float, float]:
        """Crop pixel -> full-image pixel."""
        return self.x0 + float(u), self.y0 + float(v)

    def to_crop(self, u: float, v: float) -> tuple[float, float]:
        """Full-image pixel -> crop pixel."""
        return float(u) - self.x0, float(v) - self.y0

    def contains(self, u: float, v: float) -> bool:
        return self.x0 <= u < self.x0 + self.width and self.y0 <= v < self.y0 + self.height


def zoom_window(centre: tuple[float, float], zoom: float, width: int, height: int) -> Window:
    """The window of 1/zoom the image's size centred on `centre`, shifted to lie inside the image."""
    if not (np.isfinite(zoom) and zoom >= 1.0):
        raise ValueError(f"zoom must be a finite number >= 1, got {zoom}")
    u, v = (float(c) for c in centre)
    if not (np.isfinite(u) and np.isfinite(v)):
        raise ValueError(f"zoom centre must be finite, got {centre}")
    w, h = max(1, int(round(width / zoom))), max(1, int(round(height / zoom)))
    x0 = int(np.clip(round(u - w / 2), 0, width - w))
    y0 = int(np.clip(round(v - h / 2), 0, height - h))
    return Window(x0, y0, w, h)


def crop(rgb: np.ndarray, window: Window) -> np.ndarray:
    """The window's pixels (a contiguous copy; the processor resizes it to the model size like any image)."""
    rgb = np.asarray(rgb)
    if window.x0 < 0 or window.y0 < 0 or window.x0 + window.width > rgb.shape[1] or \
            window.y0 + window.height > rgb.shape[0]:
        raise ValueError(f"window {window} is outside the {rgb.shape[1]}x{rgb.shape[0]} image")
    return np.ascontiguousarray(rgb[window.y0:window.y0 + window.height, window.x0:window.x0 + window.width])


def training_window(target: tuple[float, float], width: int, height: int, zoom_range: tuple[float, float],
                    jitter: float, rng: random.Random) -> Window:
    """A training crop that contains `target`: zoom drawn from `zoom_range`, centre = target plus Gaussian
    jitter of `jitter` x the window's size per axis (at inference the first answer is off by about that much),
    kept within 0.4 of the window so the target stays inside."""
    zoom = rng.uniform(*zoom_range)
    w, h = width / zoom, height / zoom
    du = float(np.clip(rng.gauss(0.0, jitter), -0.4, 0.4)) * w
    dv = float(np.clip(rng.gauss(0.0, jitter), -0.4, 0.4)) * h
    win = zoom_window((target[0] + du, target[1] + dv), zoom, width, height)
    if not win.contains(*target):  # shifting the window inside the image can push the target out; recentre
        win = zoom_window(target, zoom, width, height)
    return win
