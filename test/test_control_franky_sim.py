"""AIA through the real franky client and the libfranka protocol, against franky-sim with a door/drawer.

Each module-scoped rig is one franky-sim child process on its own random 127.x.y.z address (so parallel runs
never collide), a FrankyArm connected to it, and the simulated suction cup sealed on the part.
"""

from __future__ import annotations

import numpy as np
import pytest

from manipllm_ros.control.aia import AIAPolicy, Outcome, StraightPull, approach_and_attach
from manipllm_ros.control.arm import EEPose, InvalidTargetError, WorkspaceError
from manipllm_ros.control.config import AIAConfig, FrankyConfig, WorkspaceBox
from manipllm_ros.control.end_effectors import FrankaHand, FrankySimSuction
from manipllm_ros.control.franky_arm import FrankyArm
from manipllm_ros.control.franky_sim_scene import FrankySimProcess, ObjectSpec, SceneClient

pytestmark = pytest.mark.slow


class Rig:
    def __init__(self, spec: ObjectSpec) -> None:
        self.spec = spec
        self.sim = FrankySimProcess(spec).start()
        self.scene = SceneClient(self.sim.hostname)
        self.arm = FrankyArm(FrankyConfig(robot_ip=self.sim.hostname, relative_dynamics_factor=0.3),
                             FrankySimSuction(self.sim.hostname))
        self.arm.connect()

    def attach(self) -> None:
        ok, msg = approach_and_attach(self.arm, EEPose(self.spec.contact_point(), self.spec.contact_rotation()))
        assert ok, msg

    @property
    def pull(self) -> np.ndarray:
        return -self.spec.contact_rotation()[:, 2]  # out of the face, towards the robot

    def joint(self) -> float:
        return self.scene.joint()

    def close(self) -> None:
        try:
            self.arm.stop()
            self.arm.disconnect()
            self.scene.close()
        finally:
            self.sim.stop()


def _rig(spec: ObjectSpec):
    rig = Rig(spec)
    try:
        rig.attach()
        yield rig
    finally:
        rig.close()


@pytest.fixture(scope="module")
def door():
    yield from _rig(ObjectSpec(kind="door"))


@pytest.fixture(scope="module")
def drawer():
    yield from _rig(ObjectSpec(kind="drawer"))


def _assert_stopped(rig: Rig) -> None:
    assert not rig.arm.robot.is_in_control, "the arm must be stopped after a failed/finished episode"


def test_bad_directions_fail_cleanly_without_motion(door):
    q0, p0 = door.joint(), door.arm.current_pose().position
    for bad in ([np.nan, 0.0, 0.0], [0.0, 0.0, 0.0], [np.inf, 1.0, 0.0]):
        rec = AIAPolicy(AIAConfig()).run(door.arm, bad)
        assert rec.outcome is Outcome.INVALID_DIRECTION, rec.summary()
        assert "direction" in rec.message
        _assert_stopped(door)
    with pytest.raises(InvalidTargetError):
        door.arm.probe(np.array([np.nan, 0, 0]), force=5.0, duration=0.1)
    assert abs(door.joint() - q0) < 2e-3
    assert np.linalg.norm(door.arm.current_pose().position - p0) < 5e-3


def test_target_outside_workspace_fails_before_moving(door):
    q0 = door.joint()
    here = door.arm.current_pose().position
    # A box that ends 1 cm in front of the gripper (in the pull direction): the first probe/step leaves it.
    box = WorkspaceBox(lower=(here[0] - 0.01, -0.6, 0.05), upper=(0.85, 0.6, 0.9))
    rec = AIAPolicy(AIAConfig(workspace=box, eps1=0.0, num_probes=1)).run(door.arm, door.pull)
    assert rec.outcome is Outcome.WORKSPACE, rec.summary()
    assert "workspace" in rec.message
    _assert_stopped(door)
    with pytest.raises(WorkspaceError):
        door.arm.move_to(EEPose(np.array([2.0, 0.0, 0.4]), door.spec.contact_rotation()))
    assert abs(door.joint() - q0) < 5e-3


def test_aia_opens_the_door_past_0_1_rad(door):
    q0 = door.joint()
    rec = AIAPolicy(AIAConfig(target_distance=0.12, max_steps=8)).run(door.arm, door.pull)
    q = door.joint()
    assert rec.outcome is Outcome.SUCCESS, rec.summary()
    assert q - q0 > 0.1, f"door opened only {q - q0:.3f} rad"
    _assert_stopped(door)
    # Every probe and step is on record for the outcome report.
    it = rec.iterations[0]
    assert len(it.probes) == 5 and it.step is not None and 0 <= it.chosen < 5
    assert all(len(p.direction) == 3 and len(p.displacement) == 3 for p in it.probes)
    assert rec.to_dict()["outcome"] == "success"


def test_suction_loss_mid_pull_is_a_reported_failure(door):
    door.scene.call("fail_suction_in", s=1.0)
    p0 = door.arm.current_pose().position
    rec = StraightPull(AIAConfig(target_distance=0.3, max_steps=10)).run(door.arm, door.pull)
    assert rec.outcome is Outcome.CONTACT_LOST, rec.summary()
    assert not door.arm.end_effector.is_attached()
    _assert_stopped(door)
    # No yank: after the loss the arm stopped within about one step of where it was.
    assert np.linalg.norm(door.arm.current_pose().position - p0) < 0.15


def test_franka_hand_grasps_and_releases_through_franky_gripper(door):
    # franky-sim's hand settles on the commanded width (it has no finger contact), so a grasp at the handle
    # width succeeds; the libfranka grasp result, is_grasped and the width all come back via franky.Gripper.
    hand = FrankaHand(door.sim.hostname, width=0.03, speed=0.1, force=20.0, epsilon_outer=0.005)
    assert hand.attach() is True
    assert hand.is_attached() is True
    assert abs(hand.gripper.width - 0.03) < 0.005
    hand.release()
    assert hand.is_attached() is False
    assert hand.gripper.width > 0.06


def test_aia_opens_the_drawer_past_0_1_m(drawer):
    q0 = drawer.joint()
    rec = AIAPolicy(AIAConfig(target_distance=0.2, max_steps=10)).run(drawer.arm, drawer.pull)
    q = drawer.joint()
    assert rec.outcome is Outcome.SUCCESS, rec.summary()
    assert q - q0 > 0.1, f"drawer opened only {q - q0:.3f} m"
    _assert_stopped(drawer)


def test_locked_joint_stalls_with_a_clear_report():
    for rig in _rig(ObjectSpec(kind="door", locked=True)):
        q0 = rig.joint()
        rec = AIAPolicy(AIAConfig(max_steps=6)).run(rig.arm, rig.pull)
        assert rec.outcome is Outcome.STALLED, rec.summary()
        assert "locked" in rec.message
        assert abs(rig.joint() - q0) < 0.01
        _assert_stopped(rig)


def test_two_franky_sims_run_side_by_side_without_colliding():
    """Two sims and two arms in one thread; libfranka raises the connecting thread to real-time priority (we run
    as root), and the thread has its own scheduling back once the last arm disconnects, in any order (a test
    runner or evaluation left at SCHED_FIFO 99 passes it on to every process it starts)."""
    import os

    before = os.sched_getscheduler(0)
    with FrankySimProcess(ObjectSpec(kind="door")) as a, FrankySimProcess(ObjectSpec(kind="drawer")) as b:
        assert a.hostname != b.hostname
        arms = [FrankyArm(FrankyConfig(robot_ip=s.hostname)) for s in (a, b)]
        for arm in arms:
            arm.connect()
        poses = [arm.current_pose().position for arm in arms]
        assert all(np.linalg.norm(p - [0.57, 0.10, 0.45]) < 0.01 for p in poses)  # both at READY_Q
        for arm in arms:  # not in reverse: the first to connect disconnects first
            arm.disconnect()
    assert a.proc is None and b.proc is None
    assert os.sched_getscheduler(0) == before


class _RecordingFrankyArm(FrankyArm):
    """The real FrankyArm, noting where each position move was sent."""

    def __init__(self, *args, **kw) -> None:
        super().__init__(*args, **kw)
        self.targets: list[np.ndarray] = []

    def move_to(self, pose, **kw):
        self.targets.append(np.asarray(pose.position, float).copy())
        return super().move_to(pose, **kw)


def test_approach_stops_short_of_the_surface_and_the_press_seals():
    """Position control ends contact_gap before the surface; the compliant press closes the gap and the cup seals.
    (franky-sim seals within 2 cm, so the seal alone would not show the gap closed: the TCP's place does.)"""
    spec = ObjectSpec(kind="door")
    with FrankySimProcess(spec) as sim:
        scene = SceneClient(sim.hostname)
        cfg = FrankyConfig(robot_ip=sim.hostname, relative_dynamics_factor=0.3)
        arm = _RecordingFrankyArm(cfg, FrankySimSuction(sim.hostname))
        arm.connect()
        try:
            contact = EEPose(spec.contact_point(), spec.contact_rotation())
            z = contact.rotation[:, 2]
            with pytest.raises(ValueError, match="press_force"):
                approach_and_attach(arm, contact, press_force=0.0, contact_gap=cfg.contact_gap)
            assert arm.targets == []  # refused before any motion
            ok, msg = approach_and_attach(arm, contact, **cfg.approach_kwargs())
            assert ok, msg
            assert cfg.approach_kwargs() == {"contact_gap": 0.005, "press_force": 10.0, "press_time": 0.3}
            np.testing.assert_allclose(arm.targets[-1], contact.position - cfg.contact_gap * z, atol=1e-9)
            along = (np.asarray(scene.call("state")["tcp"]) - contact.position) @ z  # < 0: short of the surface
            assert -0.002 < along < 0.005, f"the press must bring the cup to the surface, it is {along * 1e3:.1f} mm"
        finally:
            arm.stop()
            arm.disconnect()
            scene.close()
