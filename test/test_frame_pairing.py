"""Colour + depth pairing by stamp (the pose service lifts the contact pixel with the depth of the same frame)."""

from __future__ import annotations

import pytest

from manipllm_ros.frame_pairing import FramePairer


def test_newest_pair_is_the_newest_colour_with_a_depth_of_its_frame():
    p: FramePairer[str] = FramePairer(history=3)
    assert p.newest_pair() is None
    p.add_rgb(1.000, "rgb1")
    assert p.newest_pair() is None  # colour without its depth: no frame yet
    p.add_depth(1.001, "depth1")
    assert p.newest_pair() == (1.000, "rgb1", "depth1")
    # The next colour image arrived, its depth not yet: the answer stays frame 1, never rgb2 + depth1.
    p.add_rgb(1.033, "rgb2")
    assert p.newest_pair() == (1.000, "rgb1", "depth1")
    p.add_depth(1.033, "depth2")
    assert p.newest_pair() == (1.033, "rgb2", "depth2")


def test_depth_arriving_first_and_out_of_order_stamps_pair_correctly():
    p: FramePairer[str] = FramePairer(history=5)
    for k in range(4):
        p.add_depth(k / 30, f"d{k}")
    p.add_rgb(3 / 30, "r3")
    p.add_rgb(1 / 30, "r1")  # an older image taken after a newer one: the newest stamp still wins
    assert p.newest_pair() == (3 / 30, "r3", "d3")


def test_history_bounds_what_is_kept_and_skew_bounds_what_pairs():
    p: FramePairer[str] = FramePairer(history=2, max_skew_s=0.02)
    p.add_rgb(0.0, "r0")
    p.add_depth(0.0, "d0")
    p.add_depth(1.0, "d1")
    p.add_depth(2.0, "d2")  # d0 has left the history: r0 has no depth of its frame any more
    assert p.newest_pair() is None
    p.add_rgb(2.05, "r2")  # 50 ms from d2: two frames, not one
    assert p.newest_pair() is None
    p.add_rgb(2.01, "r2b")
    assert p.newest_pair() == (2.01, "r2b", "d2")
    with pytest.raises(ValueError, match="history"):
        FramePairer(history=0)
