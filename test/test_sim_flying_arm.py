"""The flying suction gripper: Arm contract, suction attach/hold/detach, faster than real time."""

from __future__ import annotations

import time

import numpy as np
import pytest

import manipllm_ros.sim  # noqa: F401
from manipllm_ros.control.arm import Arm, EEPose, InvalidTargetError, WorkspaceError
from manipllm_ros.sim.flying_arm import FlyingArm, FlyingArmConfig, rotation_from_up_forward
from manipllm_ros.sim.objects import generate_object
from manipllm_ros.sim.world import WorldConfig


def _door_contact(arm: FlyingArm) -> tuple[np.ndarray, np.ndarray]:
    """A point on the door's front face far from the hinge, and its outward normal."""
    obs = arm.world.observe()
    ys, xs = np.nonzero((obs.affordance > 0.85) & obs.mask)
    for i in np.argsort(-obs.affordance[ys, xs]):
        p, n, g = arm.world.surface_at(obs, int(xs[i]), int(ys[i]))
        if g in arm.world.part_geoms and n @ np.array([np.cos(0), 0, 0]) > 0.8:
            return p, n
    raise AssertionError("no front-face pixel found")


@pytest.fixture()
def arm() -> FlyingArm:
    return FlyingArm.from_object(generate_object("storage_cabinet_door", 1), seed=0,
                                 world_config=WorldConfig(randomize=False))


def test_is_an_arm(arm):
    assert isinstance(arm, Arm)
    with arm as a:
        assert a.current_pose().position.shape == (3,)


def test_suction_attaches_only_on_contact(arm):
    p, n = _door_contact(arm)
    R = rotation_from_up_forward(-n, np.array([0.0, 0.0, 1.0]))
    arm.teleport(p + 0.03 * n, R)  # 3 cm away: no attach
    assert not arm.end_effector.attach() and not arm.end_effector.is_attached()
    assert arm.approach(p, -n)
    assert arm.end_effector.attach() and arm.end_effector.is_attached()
    arm.end_effector.release()
    assert not arm.end_effector.is_attached()


def test_pull_opens_the_door_and_release_lets_go(arm):
    p, n = _door_contact(arm)
    arm.approach(p, -n)
    assert arm.end_effector.attach()
    res = arm.move_along(n, 0.12, compliant=True)
    assert res.attached and res.extra["joint_delta"] > 0.15
    assert arm.joint_position() > 0.15
    arm.end_effector.release()
    q = arm.joint_position()
    arm.move_along(n, 0.05)
    assert abs(arm.joint_position() - q) < 0.05  # gripper moved away without the door


def test_suction_breaks_above_its_force_limit():
    arm = FlyingArm.from_object(generate_object("storage_cabinet_door", 1), seed=0,
                                world_config=WorldConfig(randomize=False),
                                config=FlyingArmConfig(suction_max_force=30.0))
    p, n = _door_contact(arm)
    arm.approach(p, -n)
    assert arm.end_effector.attach()
    # Pull sideways, along the door plane towards the hinge: the hinge resists, the load exceeds 30 N.
    anchor, axis = arm.world.joint_axis_world()
    radial = p - anchor
    radial -= (radial @ axis) * axis
    res = arm.move_along(-radial / np.linalg.norm(radial), 0.1, compliant=False)
    assert not res.attached and res.extra["suction_broke"]
    assert arm.max_suction_force_seen > 30.0


def test_suction_holds_below_its_limit(arm):
    p, n = _door_contact(arm)
    arm.approach(p, -n)
    arm.end_effector.attach()
    r = arm.probe(n, force=10.0, duration=0.3)
    assert r.attached and arm.max_suction_force_seen < arm.config.suction_max_force
    assert r.moved > 0.005 and r.extra["joint_delta"] > 0  # a 10 N pull opens the free door a little


def test_probe_in_free_space_moves_along_the_force(arm):
    arm.teleport(arm.world.center + np.array([0.6, 0.0, 0.3]), np.eye(3))
    r = arm.probe(np.array([0.0, 1.0, 0.0]), force=5.0, duration=0.2)
    assert r.displacement[1] > 0.005 and abs(r.displacement[0]) < 0.002


def test_move_to_reaches_the_pose(arm):
    target = arm.world.center + np.array([0.5, 0.1, 0.2])
    R = rotation_from_up_forward(np.array([-1.0, 0, 0]), np.array([0, 0, 1.0]))
    pose = arm.move_to(EEPose(target, R))
    assert np.linalg.norm(pose.position - target) < 0.003
    assert np.allclose(pose.rotation, R, atol=0.02)


def test_bad_targets_are_refused(arm):
    with pytest.raises(InvalidTargetError):
        arm.move_along(np.array([np.nan, 0, 0]), 0.1)
    with pytest.raises(InvalidTargetError):
        arm.move_along(np.zeros(3), 0.1)
    with pytest.raises(WorkspaceError):
        arm.move_to(EEPose(np.array([50.0, 0, 0]), np.eye(3)))


def test_faster_than_real_time(arm):
    arm.teleport(arm.world.center + np.array([0.6, 0.0, 0.3]), np.eye(3))
    t0, s0 = time.perf_counter(), arm.sim_time
    arm.move_along(np.array([0.0, 0.0, 1.0]), 0.2)
    wall = time.perf_counter() - t0
    assert (arm.sim_time - s0) / wall > 2.0  # typically 20-50x on one core


def test_seal_is_lost_when_the_part_turns_too_far_under_the_cup():
    # A strong seal (force limit out of the way): pulling far straight out swings the door open, and the door
    # turns under the fixed-orientation cup until the 45 deg bellows limit breaks the seal.
    arm = FlyingArm.from_object(generate_object("storage_cabinet_door", 1), seed=0,
                                world_config=WorldConfig(randomize=False),
                                config=FlyingArmConfig(suction_max_force=1e4))
    p, n = _door_contact(arm)
    arm.approach(p, -n)
    assert arm.end_effector.attach()
    angles = []
    for _ in range(40):
        arm.move_along(n, 0.02)
        if not arm.end_effector.is_attached():
            break
        angles.append(np.degrees(arm.end_effector.seal_angle()))
    assert arm.end_effector.broke and not arm.end_effector.is_attached()
    assert 35.0 < max(angles) <= 45.0 and arm.joint_position() > 0.6
