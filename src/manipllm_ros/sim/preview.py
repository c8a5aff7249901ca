"""Contact sheet of the simulated data: every category with its affordance map and a sampled contact pose.

Each tile: the RGB render, the Eq. 1 affordance map blended over the movable part (blue = low, red = high),
the contact pixel (white ring), the approach direction up (yellow arrow ending at the contact: the cup comes
from the arrow's tail), the gripper forward direction (cyan), and the category / split / outcome.
"""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import numpy as np

from .objects import ALL_CATEGORIES


def _project(obs, p_world: np.ndarray) -> tuple[int, int]:
    T = np.linalg.inv(obs.cam_to_world)
    pc = T[:3, :3] @ p_world + T[:3, 3]
    K = obs.intrinsics
    return int(round(K.fx * pc[0] / pc[2] + K.cx)), int(round(K.fy * pc[1] / pc[2] + K.cy))


def render_tile(source: str, seed: int, tile: tuple[int, int] = (320, 240)) -> np.ndarray:
    """One annotated tile (RGB uint8) for a category name or a `file:PATH:JOINT[:UP]` object."""
    import cv2

    from .collect import CollectConfig, _make_object, attempt
    from .flying_arm import FlyingArm
    from .world import World

    cfg = CollectConfig(out=Path("."))
    obj = _make_object(source, seed)
    arm = FlyingArm(World(obj, seed))
    rng = np.random.default_rng(seed)
    obs = arm.world.observe()
    img = obs.rgb.astype(np.float32)
    heat = cv2.applyColorMap((obs.affordance * 255).astype(np.uint8), cv2.COLORMAP_JET)[..., ::-1]
    m = obs.mask
    img[m] = 0.35 * img[m] + 0.65 * heat[m]
    img = np.clip(img, 0, 255).astype(np.uint8).copy()
    label, timings = None, Counter()
    for _ in range(8):
        label = attempt(arm, obs, rng, cfg, timings)
        if label is not None:
            break
    ok = label is not None
    if not ok and m.any():  # show a sampled (failed) pose anyway
        cand = np.argwhere((obs.affordance > cfg.aff_threshold) & m)
        v, u = (int(x) for x in cand[rng.integers(len(cand))])
        _, n, _ = arm.world.surface_at(obs, u, v)
        up = -n
        f = np.cross(up, [0, 0, 1.0])
        f = f / (np.linalg.norm(f) + 1e-9)
        label = {"u": u, "v": v, "up": up, "forward": f}
    if label is not None:
        u, v = label["u"], label["v"]
        p, _, _ = arm.world.surface_at(obs, u, v)
        L = 0.35 * arm.world.radius
        tail = _project(obs, p - label["up"] * L)
        head = _project(obs, p + label["forward"] * L * 0.6)
        cv2.arrowedLine(img, tail, (u, v), (255, 230, 0), 3, tipLength=0.2)
        cv2.arrowedLine(img, (u, v), head, (0, 230, 255), 3, tipLength=0.25)
        cv2.circle(img, (u, v), 7, (255, 255, 255), 2)
    arm.world.close()
    img = cv2.resize(img, tile, interpolation=cv2.INTER_AREA)
    meta = obj.meta
    text = f"{meta.category} [{meta.instance_split}]"
    cv2.rectangle(img, (0, 0), (tile[0], 34), (0, 0, 0), -1)
    cv2.putText(img, text, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (255, 255, 255), 1, cv2.LINE_AA)
    outcome = f"{meta.action} succeeded" if ok else "no success in 8 tries"
    status = f"{meta.joint_type} | handle {meta.handle} | {outcome}"
    cv2.putText(img, status, (4, 29), cv2.FONT_HERSHEY_SIMPLEX, 0.38, (120, 255, 120) if ok else (255, 120, 120),
                1, cv2.LINE_AA)
    return img


def contact_sheet(out: str | Path, sources: list[str] | None = None, seed: int = 0, cols: int = 6,
                  tile: tuple[int, int] = (320, 240)) -> Path:
    """Write a PNG grid with one tile per category/object; returns its path."""
    import cv2
    from tqdm import tqdm

    sources = sources or list(ALL_CATEGORIES)
    tiles = [render_tile(s, seed + i, tile) for i, s in enumerate(tqdm(sources, desc="sim preview"))]
    rows = math.ceil(len(tiles) / cols)
    sheet = np.full((rows * tile[1], cols * tile[0], 3), 255, np.uint8)
    for i, t in enumerate(tiles):
        r, c = divmod(i, cols)
        sheet[r * tile[1]:(r + 1) * tile[1], c * tile[0]:(c + 1) * tile[0]] = t
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(out), sheet[..., ::-1])
    return out
