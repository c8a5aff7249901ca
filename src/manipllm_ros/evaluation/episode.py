"""One evaluation episode on the fast simulated arm: observe, propose, lift to 3D, approach, attach, pull.

The proposal goes through the same path as on the robot: the pixel is lifted with the observed depth
(`geometry.pixel_to_point`), up/forward become the gripper rotation, and `run_manipulation` runs the approach,
suction and the pull policy. Success follows the paper's thresholds on the part's joint, in the opening
direction (method.md): initial movement > 0.01, long distance > 0.1 (rad or m).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np

from manipllm_ros import geometry as G
from manipllm_ros.evaluation.proposals import Proposer

INITIAL_THRESHOLD = 0.01
LONG_THRESHOLD = 0.1


@dataclass(frozen=True)
class EpisodeSpec:
    category: str  # generated category, or "file:PATH:JOINT" for a third-party object
    object_seed: int
    index: int  # episode number within its category (for seeds and resuming)

    @property
    def key(self) -> str:
        return f"{self.category}/{self.object_seed}/{self.index}"


@dataclass
class EpisodeOutcome:
    key: str
    category: str
    category_split: str
    object_seed: int
    proposer: str
    pull: str
    parsed: bool
    on_object: bool
    on_part: bool
    u: int
    v: int
    joint_delta: float  # opening direction positive, joint units
    initial_success: bool
    long_success: bool
    failure: str
    latency_ms: float
    wall_s: float
    up_note: str = ""  # model rows: where the up came from (model | depth | model (depth: why not))
    pixel_from: str = ""  # model rows: whose answer the contact pixel is (pose | grounding)
    contact_note: str = ""  # model rows: how agreement chose, where a snap moved the pixel from

    def to_dict(self) -> dict:
        return asdict(self)


def opening_sign(q0: float, joint_range: tuple[float, float]) -> float:
    """+1 if opening increases the joint (the far end of the range is above q0), else -1."""
    lo, hi = joint_range
    return 1.0 if abs(hi - q0) >= abs(q0 - lo) else -1.0


def new_outcome(spec: EpisodeSpec, meta, proposer_name: str, pull: str) -> EpisodeOutcome:
    """A failed outcome until the episode proves otherwise (every attempt counts)."""
    return EpisodeOutcome(spec.key, meta.category.replace(" ", "_"), meta.category_split, spec.object_seed,
                          proposer_name, pull, False, False, False, -1, -1, 0.0, False, False, "", 0.0, 0.0)


def score_proposal(out: EpisodeOutcome, obs, prop) -> tuple[np.ndarray, np.ndarray] | None:
    """Record the proposal (parsed, pixel, on object, on part) and lift it to a camera-frame contact point and
    gripper rotation; None (with `out.failure` set) when it did not parse or cannot be lifted."""
    out.latency_ms = prop.latency_ms
    out.up_note, out.pixel_from, out.contact_note = prop.up_note, prop.pixel_from, prop.contact_note
    if not prop.ok:
        out.failure = prop.error
        return None
    out.parsed, out.u, out.v = True, prop.u, prop.v
    h, w = obs.mask.shape
    inside = 0 <= prop.u < w and 0 <= prop.v < h
    out.on_object = inside and bool(obs.object_mask[prop.v, prop.u])
    out.on_part = inside and bool(obs.mask[prop.v, prop.u])
    try:
        p_cam = G.pixel_to_point(prop.u, prop.v, obs.depth, obs.intrinsics.K)  # 0 = hole
        R_cam = G.rotation_from_up_forward(prop.up_cam, prop.forward_cam)
    except G.GeometryError as exc:
        out.failure = f"cannot lift the proposal to a pose: {exc}"
        return None
    return p_cam, R_cam


def score_motion(out: EpisodeOutcome, joint_delta: float) -> None:
    out.joint_delta = float(joint_delta)
    out.initial_success = out.joint_delta > INITIAL_THRESHOLD
    out.long_success = out.joint_delta > LONG_THRESHOLD


def load_spec_object(spec: EpisodeSpec):
    """The episode's `sim.objects.ObjectSpec` (generated, or a third-party file)."""
    if spec.category.startswith("file:"):
        from manipllm_ros.sim.loader import load_object

        _, path, joint = spec.category.split(":", 2)
        return load_object(path, joint)
    from manipllm_ros.sim.objects import generate_object

    return generate_object(spec.category, spec.object_seed)


def build_arm(spec: EpisodeSpec, world_config=None):
    """The fast arm's world for the episode; the camera/lights seed is fixed by (object seed, index)."""
    from manipllm_ros.sim.flying_arm import FlyingArm

    obj = load_spec_object(spec)
    return obj, FlyingArm.from_object(obj, seed=spec.object_seed * 1000 + spec.index, world_config=world_config)


def run_episode(spec: EpisodeSpec, proposer: Proposer, pull: str = "aia", seed: int = 0, world_config=None,
                world_hook: Callable | None = None) -> EpisodeOutcome:
    """Never raises for a failed attempt: the outcome says what failed.

    `world_config` (camera/light ranges) and `world_hook(world)` (called before the observation, e.g. to change
    the lighting) exist for domain-shift experiments; the defaults are the training distribution.
    """
    from manipllm_ros.control.arm import ArmError, EEPose
    from manipllm_ros.control.config import AIAConfig
    from manipllm_ros.control.episodes import workspace_around
    from manipllm_ros.manipulation import run_manipulation

    t0 = time.perf_counter()
    rng = np.random.default_rng([seed, spec.object_seed, spec.index])
    obj, arm = build_arm(spec, world_config)
    if world_hook is not None:
        world_hook(arm.world)
    meta = obj.meta
    out = new_outcome(spec, meta, proposer.name, pull)
    with arm:
        obs = arm.world.observe()
        lifted = score_proposal(out, obs, proposer.propose(obs, meta.instruction, rng))
        if lifted is not None:
            p_cam, R_cam = lifted
            T = obs.cam_to_world
            p_w, R_w = T[:3, :3] @ p_cam + T[:3, 3], T[:3, :3] @ R_cam
            q0 = arm.joint_position()
            sign = opening_sign(q0, tuple(meta.joint_range))
            try:
                arm.teleport(p_w - 0.05 * R_w[:, 2], R_w)  # fast-arm shortcut through free space
                aia = AIAConfig().model_copy(update={"workspace": workspace_around(arm)})
                run = run_manipulation(arm, EEPose(p_w, R_w), policy=pull, aia=aia, approach_distance=0.05,
                                       push=meta.action == "push")
                out.failure = "" if run.success else run.failure_reason
            except ArmError as exc:
                out.failure = f"arm: {exc}"
            score_motion(out, sign * (arm.joint_position() - q0))
    out.wall_s = time.perf_counter() - t0
    return out
