"""AIA policy, straight-pull baseline and safety outcomes on the fast simulated arm; config and end effectors."""

from __future__ import annotations

import math

import numpy as np
import pytest
from pydantic import ValidationError

from manipllm_ros.control.aia import (
    AIAPolicy,
    Outcome,
    StraightPull,
    make_policy,
    perturbed_directions,
    unit,
)
from manipllm_ros.control.arm import InvalidTargetError
from manipllm_ros.control.config import AIAConfig, ControlConfig, FrankyConfig, WorkspaceBox, load_control_config
from manipllm_ros.control.end_effectors import CommandSuction
from manipllm_ros.control.episodes import attach_flying, run_flying_episode, workspace_around

FAST = dict(target_distance=0.2, max_steps=12, step_length=0.05, probe_duration=0.1, return_after_probe=False)


# ---------------------------------------------------------------------------------------------- pure logic
def test_perturbed_directions_are_unit_and_eps1_away():
    rng = np.random.default_rng(0)
    d = unit([1.0, 2.0, -0.5])
    dirs = perturbed_directions(d, 5, 0.5, rng)
    assert dirs.shape == (5, 3)
    assert np.allclose(dirs[0], d)
    assert np.allclose(np.linalg.norm(dirs, axis=1), 1.0)
    ang = np.degrees(np.arccos(np.clip(dirs[1:] @ d, -1, 1)))
    assert np.allclose(ang, math.degrees(math.atan(0.5)), atol=1e-6)
    assert perturbed_directions(d, 1, 0.5, rng).shape == (1, 3)


@pytest.mark.parametrize("bad", [[np.nan, 0, 0], [0, 0, 0], [1, np.inf, 0], [1, 2]])
def test_unit_rejects_bad_directions(bad):
    with pytest.raises(InvalidTargetError):
        unit(bad)


def test_config_validation_and_yaml(tmp_path):
    with pytest.raises(ValidationError, match="probe_force"):
        AIAConfig(probe_force=50.0, max_force=40.0)
    with pytest.raises(ValidationError, match="lower bound"):
        WorkspaceBox(lower=(0, 0, 0), upper=(1, -1, 1))
    with pytest.raises(ValidationError, match="7 values"):
        FrankyConfig(collision_torque_thresholds=(1.0, 2.0))
    with pytest.raises(ValidationError):
        AIAConfig(num_probs=3)  # typo: extra fields are refused
    p = tmp_path / "c.yaml"
    p.write_text("control:\n  aia:\n    num_probes: 7\n  franky:\n    robot_ip: 127.0.0.5\n")
    cfg = load_control_config(p)
    assert isinstance(cfg, ControlConfig)
    assert cfg.aia.num_probes == 7 and cfg.franky.robot_ip == "127.0.0.5"
    assert make_policy("straight").name == "straight"
    with pytest.raises(ValueError, match="unknown pull policy"):
        make_policy("yank")


def test_command_suction_hooks():
    state = {"on": False}
    cup = CommandSuction(engage=lambda: state.update(on=True), release=lambda: state.update(on=False),
                         sense=lambda: state["on"])
    assert cup.attach() is True and state["on"]
    cup.release()
    assert cup.is_attached() is False
    shell = CommandSuction(engage="true", release=["true"], sense="false")
    assert shell.attach() is False  # valve opened but the pressure switch says no seal


# ---------------------------------------------------------------------------------------------- fast arm
def _attached_door(seed: int = 100):
    """A storage-cabinet door on the fast arm with the cup sealed on a high-affordance point."""
    arm, n, ok = attach_flying("storage_cabinet_door", seed, np.random.default_rng(0))
    assert ok
    return arm, n


def _box_around(arm) -> WorkspaceBox:
    return workspace_around(arm)


def test_aia_records_every_probe_and_opens_the_door():
    arm, n = _attached_door()
    q0 = arm.joint_position()
    rec = AIAPolicy(AIAConfig(**FAST, workspace=_box_around(arm))).run(arm, n)
    # Long-distance success is judged on the part; the episode may end by reaching the target distance or,
    # far open, by the cup's seal angle/force limit.
    assert rec.outcome in (Outcome.SUCCESS, Outcome.MAX_STEPS, Outcome.CONTACT_LOST), rec.summary()
    assert arm.joint_position() - q0 > 0.1, rec.summary()
    complete = [it for it in rec.iterations if it.step is not None]
    assert len(complete) >= len(rec.iterations) - 1  # only the last may be cut short by the outcome
    for it in complete:
        assert len(it.probes) == 5
        assert it.best_probe == pytest.approx(max(np.dot(p.displacement, p.direction) for p in it.probes))
    assert rec.path_length >= 0.1
    arrows = rec.arrows()
    assert len(arrows) == sum(len(it.probes) + (it.step is not None) for it in rec.iterations)
    assert sum(a["kind"] == "step" for a in arrows) == len(complete)
    first = arrows[0]
    assert np.allclose(np.subtract(first["end"], first["start"]), rec.iterations[0].probes[0].displacement)


def test_invalid_direction_and_workspace_fail_without_moving():
    arm, n = _attached_door()
    p0, q0 = arm.current_pose().position, arm.joint_position()
    for bad in ([np.nan, 0, 0], [0, 0, 0]):
        rec = AIAPolicy(AIAConfig(**FAST, workspace=_box_around(arm))).run(arm, bad)
        assert rec.outcome is Outcome.INVALID_DIRECTION and "direction" in rec.message
    tight = WorkspaceBox(lower=tuple(p0 - 0.01), upper=tuple(p0 + 0.01))
    rec = StraightPull(AIAConfig(**FAST, workspace=tight)).run(arm, n)
    assert rec.outcome is Outcome.WORKSPACE and "outside workspace" in rec.message
    assert np.linalg.norm(arm.current_pose().position - p0) < 2e-3
    assert abs(arm.joint_position() - q0) < 1e-3


def test_locked_joint_is_reported_as_stalled():
    arm, n = _attached_door()
    w = arm.world
    w.model.jnt_range[w.joint_id] = [0.0, 1e-4]  # lock the hinge
    rec = AIAPolicy(AIAConfig(**FAST, workspace=_box_around(arm))).run(arm, n)
    assert rec.outcome is Outcome.STALLED, rec.summary()
    assert "locked" in rec.message
    assert abs(arm.joint_position()) < 0.01
    # Whatever the outcome, the arm target is where the gripper is: stopped, no spring winding up.
    assert np.linalg.norm(arm._target_p - arm.current_pose().position) < 1e-6


def test_suction_loss_mid_pull_is_contact_lost_and_stopped():
    arm, n = _attached_door()
    arm.config.suction_max_force = 4.0  # a weak seal: lets go under the first real load
    rec = StraightPull(AIAConfig(**FAST, workspace=_box_around(arm))).run(arm, n)
    assert rec.outcome is Outcome.CONTACT_LOST, rec.summary()
    assert not arm.end_effector.is_attached()
    before = arm.current_pose().position
    arm.step_for(0.5)  # stopped: no runaway after the loss
    assert np.linalg.norm(arm.current_pose().position - before) < 0.01


def test_episode_runner_reports_success_thresholds():
    r = run_flying_episode("storage_cabinet_door", 100, "aia", AIAConfig(**FAST), direction_noise_deg=30.0)
    assert r.attached and r.record is not None
    assert r.long_success == (r.joint_delta > 0.1) and r.initial_success == (r.joint_delta > 0.01)
    assert r.iterations == len(r.record.iterations) > 0
