"""One evaluation episode on the FR3 in franky-sim (the real libfranka protocol) instead of the fast flying arm.

The episode's object (generated category + instance seed, or a third-party file) is loaded into its own
franky-sim process on a free loopback address (`FrankySimProcess`), placed before the FR3 as
`franky_sim_objects.place_object` does; the camera is a MuJoCo world that mirrors it (`mirror_world`, the
canonical camera of that world, the joint where franky-sim has it). The proposal is lifted to 3D with the mirrored
depth, carried into the robot base frame (`base_T_world`), and `run_manipulation` drives `FrankyArm` (approach,
suction through the scene side channel, AIA or straight pull). Success uses the same thresholds and opening
direction as the fast arm, on franky-sim's joint state.

Slow: franky-sim starts in a few seconds and runs in real time, so an episode takes tens of seconds. One franky-sim
process per episode, so an evaluation worker only ever talks to its own simulator.
"""

from __future__ import annotations

import time

import numpy as np

from manipllm_ros.evaluation.episode import (
    EpisodeOutcome,
    EpisodeSpec,
    new_outcome,
    opening_sign,
    score_motion,
    score_proposal,
)
from manipllm_ros.evaluation.proposals import Proposer


def scene_object(spec: EpisodeSpec):
    from manipllm_ros.control.franky_sim_objects import SceneObject

    if spec.category.startswith("file:"):
        _, path, joint = spec.category.split(":", 2)
        return SceneObject(file=path, joint=joint, seed=spec.object_seed)
    return SceneObject(category=spec.category, seed=spec.object_seed)


def run_episode_franky(spec: EpisodeSpec, proposer: Proposer, pull: str = "aia", seed: int = 0,
                       relative_dynamics_factor: float = 0.3) -> EpisodeOutcome:
    """Never raises for a failed attempt (a franky-sim that does not start is an `episode error` outcome)."""
    from manipllm_ros.control.arm import ArmError, EEPose
    from manipllm_ros.control.config import AIAConfig, FrankyConfig
    from manipllm_ros.control.end_effectors import FrankySimSuction
    from manipllm_ros.control.franky_arm import FrankyArm
    from manipllm_ros.control.franky_sim_objects import mirror_world, object_from_description
    from manipllm_ros.control.franky_sim_scene import FrankySimProcess, SceneClient
    from manipllm_ros.manipulation import run_manipulation

    t0 = time.perf_counter()
    rng = np.random.default_rng([seed, spec.object_seed, spec.index])
    with FrankySimProcess(scene_object(spec)) as sim:
        scene = SceneClient(sim.hostname)
        world = None
        try:
            desc = scene.call("scene")
            meta = object_from_description(desc).meta
            out = new_outcome(spec, meta, proposer.name, pull)
            world = mirror_world(desc)
            world.set_joint_position(float(desc["joint"]))
            obs = world.observe()
            lifted = score_proposal(out, obs, proposer.propose(obs, meta.instruction, rng))
            if lifted is not None:
                p_cam, R_cam = lifted
                T = world.base_T_world @ obs.cam_to_world  # camera -> robot base
                p_b, R_b = T[:3, :3] @ p_cam + T[:3, 3], T[:3, :3] @ R_cam
                q0 = scene.joint()
                sign = opening_sign(q0, tuple(meta.joint_range))
                fcfg = FrankyConfig(robot_ip=sim.hostname, relative_dynamics_factor=relative_dynamics_factor)
                arm = FrankyArm(fcfg, FrankySimSuction(sim.hostname))
                try:
                    arm.connect()
                    run = run_manipulation(arm, EEPose(p_b, R_b), policy=pull, aia=AIAConfig(),
                                           approach_distance=0.08, push=meta.action == "push",
                                           **fcfg.approach_kwargs())
                    out.failure = "" if run.success else run.failure_reason
                except ArmError as exc:
                    out.failure = f"arm: {exc}"
                finally:
                    try:
                        arm.stop()
                        arm.disconnect()
                    except Exception:  # noqa: BLE001 - the simulator is torn down next anyway
                        pass
                score_motion(out, sign * (scene.joint() - q0))
        finally:
            scene.close()
            if world is not None:
                world.close()
    out.wall_s = time.perf_counter() - t0
    return out
