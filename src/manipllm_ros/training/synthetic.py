"""Toy samples with exactly the simulated dataset's fields: a coloured box on grey with a bright 'handle'.

For tests, CI smoke runs and `manipllm train --synthetic N` when no simulated dataset is at hand. Not a
substitute for the simulator's data: nothing here is physically meaningful beyond the field layout.
"""

from __future__ import annotations

import numpy as np


def synthetic_samples(n: int, start: int = 0, split: str = "train") -> list[dict]:
    return [synthetic_sample(i, split=split) for i in range(start, start + n)]


def synthetic_sample(i: int, split: str = "train", category: str | None = None) -> dict:
    """A record with the dataset reader's fields: a coloured box on grey, the 'handle' a bright square."""
    rng = np.random.default_rng(i)
    h, w = 480, 640
    rgb = np.full((h, w, 3), 90, np.uint8)
    x0, y0 = int(rng.integers(80, 300)), int(rng.integers(60, 200))
    x1, y1 = x0 + int(rng.integers(160, 300)), y0 + int(rng.integers(140, 240))
    color = rng.integers(40, 250, 3).astype(np.uint8)
    rgb[y0:y1, x0:x1] = color
    u, v = int(rng.integers(x0 + 10, x1 - 10)), int(rng.integers(y0 + 10, y1 - 10))
    rgb[max(v - 6, 0) : v + 6, max(u - 6, 0) : u + 6] = 255
    depth = np.full((h, w), 2.0, np.float32)
    depth[y0:y1, x0:x1] = 1.2
    segmentation = np.zeros((h, w), np.uint8)
    segmentation[y0:y1, x0:x1] = 1
    segmentation[y0 + 10 : y1 - 10, x0 + 10 : x1 - 10] = 2  # the box is the part, its 10 px rim the fixed frame
    up = rng.normal(size=3)
    up[2] = -abs(up[2]) - 1.0
    up /= np.linalg.norm(up)
    fw = np.cross(up, rng.normal(size=3))
    fw /= np.linalg.norm(fw)
    cat = category or ["microwave", "refrigerator", "storage_furniture"][i % 3]
    part = "door" if cat != "storage_furniture" else "drawer"
    pos = [[int(u + du), int(v + dv)] for du, dv in rng.integers(-5, 6, (25, 2))]
    neg = [[int(a), int(b)] for a, b in zip(rng.integers(0, w, 25), rng.integers(0, 40, 25))]
    return dict(
        rgb=rgb, depth=depth, segmentation=segmentation, fx=600.0, fy=600.0, cx=320.0, cy=240.0, width=w, height=h, category=cat,
        instruction=f"open the {part} of the {cat.replace('_', ' ')}", split=split, contact_uv=[u, v],
        up_cam=up.tolist(), forward_cam=fw.tolist(), aff_pos_uv=pos, aff_neg_uv=neg, part=part, handle=True,
        hinge_side="left", joint_type="revolute" if part == "door" else "prismatic",
        reasoning=f"The {part} moves, so pull it near the handle.", sample_id=f"s{i}", object_id=f"o{i % 5}",
    )  # fmt: skip
