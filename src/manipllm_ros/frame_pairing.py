"""Which colour image goes with which aligned depth image: the newest pair that belongs to one camera frame.

realsense-ros and our camera node give the colour image and its aligned depth the same stamp; the two arrive on
separate topics, so the newest colour and the newest depth can be one frame apart. Lifting the contact pixel
with the depth of another frame would put the arm on a point that is not there; this pairs them by stamp.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")

# Colour and depth of one frame carry the same stamp; a pair further apart than this is two frames.
MAX_STAMP_SKEW_S = 0.02


@dataclass
class FramePairer(Generic[T]):
    """Keeps the last `history` colour and depth messages (any type, with their stamps in seconds) and answers
    the newest colour + depth pair whose stamps agree within `max_skew_s`."""

    history: int = 5
    max_skew_s: float = MAX_STAMP_SKEW_S
    _rgb: deque = field(init=False, repr=False)
    _depth: deque = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.history < 1:
            raise ValueError(f"history must be >= 1, got {self.history}")
        self._rgb = deque(maxlen=self.history)
        self._depth = deque(maxlen=self.history)

    def add_rgb(self, stamp_s: float, msg: T) -> None:
        self._rgb.append((stamp_s, msg))

    def add_depth(self, stamp_s: float, msg: T) -> None:
        self._depth.append((stamp_s, msg))

    def newest_pair(self) -> tuple[float, T, T] | None:
        """(colour stamp, colour, depth) of the newest colour image that has a depth image of the same frame."""
        for stamp, rgb in sorted(self._rgb, key=lambda x: x[0], reverse=True):
            match = min(self._depth, key=lambda d: abs(d[0] - stamp), default=None)
            if match is not None and abs(match[0] - stamp) <= self.max_skew_s:
                return stamp, rgb, match[1]
        return None
