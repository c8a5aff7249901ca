"""One pull episode on the fast simulated arm (`sim.flying_arm.FlyingArm`), for tests and the AIA benchmark.

The contact is chosen the way the data collection does (a pixel on the movable part with affordance > 0.8,
the gripper's up axis into the surface); the initial pull direction is the outward surface normal turned by
`direction_noise_deg` (the error of a predicted direction). Success uses the paper's long-distance threshold
(joint moved > 0.1 rad / 0.1 m in the opening direction) and also reports the initial-movement one (0.01).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from .aia import EpisodeRecord, approach_and_attach, make_policy
from .arm import EEPose
from .config import AIAConfig, WorkspaceBox

# Revolute parts whose contact travels on an arc: a fixed pull direction is right only at the start.
REVOLUTE_CATEGORIES: tuple[str, ...] = (
    "storage_cabinet_door", "microwave", "safe", "washing_machine_door", "oven_door", "dishwasher_door",
    "box_lid", "suitcase_lid", "toilet_lid", "trash_can_lid",
)


@dataclass
class EpisodeResult:
    category: str
    object_seed: int
    policy: str
    joint_delta: float  # rad or m, positive = opening
    long_success: bool  # > 0.1
    initial_success: bool  # > 0.01
    record: EpisodeRecord | None
    attached: bool
    sim_time: float
    wall_time: float
    iterations: int


def _turn(n: np.ndarray, deg: float, rng: np.random.Generator) -> np.ndarray:
    """n rotated by `deg` about a random axis orthogonal to n."""
    if deg == 0:
        return n
    a = rng.normal(size=3)
    a -= a.dot(n) * n
    a /= np.linalg.norm(a)
    t = math.radians(deg)
    return n * math.cos(t) + np.cross(a, n) * math.sin(t)


def attach_flying(category: str, object_seed: int, rng: np.random.Generator):
    """Build the fast arm for a generated object and seal the cup on a high-affordance point.

    Returns (arm, outward normal at the contact, attached).
    """
    from ..sim.flying_arm import FlyingArm, rotation_from_up_forward
    from ..sim.objects import generate_object

    arm = FlyingArm.from_object(generate_object(category, object_seed), seed=object_seed)
    w = arm.world
    obs = w.observe()
    cand = np.argwhere(obs.mask & (obs.affordance > 0.8))
    if len(cand) == 0:
        cand = np.argwhere(obs.mask)
    v, u = cand[rng.integers(len(cand))]
    p, n = arm.contact_from_pixel(obs, int(u), int(v))
    R = rotation_from_up_forward(-n, _turn(n, 90.0, rng))
    arm.teleport(p + 0.05 * n, R)
    attached, _ = approach_and_attach(arm, EEPose(p - 0.01 * n, R), standoff=0.05, press_force=0.0)
    return arm, n, attached


def workspace_around(arm, margin: float = 0.8) -> WorkspaceBox:
    """A box around the object of a fast-arm world (its base frame is the world frame)."""
    w = arm.world
    return WorkspaceBox(lower=tuple(w.center - (w.radius + margin)), upper=tuple(w.center + (w.radius + margin)))


def run_flying_episode(category: str, object_seed: int, policy: str, config: AIAConfig, *,
                       direction_noise_deg: float = 0.0, rng_seed: int = 0) -> EpisodeResult:
    """Approach, attach and pull one generated object with the named policy ('aia' or 'straight')."""
    t0 = time.perf_counter()
    rng = np.random.default_rng([object_seed, rng_seed])
    arm, n, attached = attach_flying(category, object_seed, rng)
    with arm:
        cfg = config.model_copy(update={"workspace": workspace_around(arm), "seed": config.seed + rng_seed})
        q0 = arm.joint_position()
        rec = None
        if attached:
            rec = make_policy(policy, cfg).run(arm, _turn(n, direction_noise_deg, rng))
        dq = arm.joint_position() - q0
        return EpisodeResult(category, object_seed, policy, dq, dq > 0.1, dq > 0.01, rec, attached,
                             arm.sim_time, time.perf_counter() - t0, len(rec.iterations) if rec else 0)
