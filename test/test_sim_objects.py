"""Every generated category loads, its joint moves through its range, and the default camera sees the part."""

from __future__ import annotations

import mujoco
import numpy as np
import pytest

import manipllm_ros.sim  # noqa: F401  (sets MUJOCO_GL before mujoco renders)
from manipllm_ros.sim.objects import (
    ALL_CATEGORIES,
    HELDOUT_CATEGORIES,
    TRAIN_CATEGORIES,
    UnknownCategoryError,
    generate_object,
    instance_split,
)
from manipllm_ros.sim.world import World, WorldConfig


def test_category_lists_match_the_issue():
    assert len(TRAIN_CATEGORIES) == 20 and len(HELDOUT_CATEGORIES) == 10
    assert not set(TRAIN_CATEGORIES) & set(HELDOUT_CATEGORIES)
    kinds = {generate_object(c, 0).meta.joint_type for c in ALL_CATEGORIES}
    assert kinds == {"hinge", "slide"}
    for group in (TRAIN_CATEGORIES, HELDOUT_CATEGORIES):
        assert {generate_object(c, 0).meta.joint_type for c in group} == {"hinge", "slide"}


def test_generation_is_deterministic_and_varied():
    a, b, c = generate_object("microwave", 7), generate_object("microwave", 7), generate_object("microwave", 8)
    assert a.mjcf == b.mjcf and a.meta == b.meta
    assert a.mjcf != c.mjcf


def test_unknown_category_is_a_clear_error():
    with pytest.raises(UnknownCategoryError, match="spaceship"):
        generate_object("spaceship", 0)


def test_instance_split_rule():
    assert instance_split("microwave", 5) == "test_seen"
    assert instance_split("microwave", 6) == "train"
    assert instance_split("stapler", 6) == "test_unseen"


@pytest.mark.parametrize("category", ALL_CATEGORIES)
def test_category_loads_moves_and_is_visible(category):
    obj = generate_object(category, 3)
    meta = obj.meta
    assert meta.instruction and meta.reasoning and meta.part in meta.instruction
    model = mujoco.MjModel.from_xml_string(obj.mjcf)  # self-contained
    assert model.joint(meta.joint_name).type == (mujoco.mjtJoint.mjJNT_HINGE if meta.joint_type == "hinge"
                                                 else mujoco.mjtJoint.mjJNT_SLIDE)
    world = World(obj, seed=0, config=WorldConfig(randomize=False))
    lo, hi = world.joint_range
    assert lo == 0.0 and hi > 0
    m, d = world.model, world.data
    # Drive the joint (PD on its own inertia, aimed past each end) both ways: it must reach each end of its range.
    dof = world.joint_dof
    mujoco.mj_forward(m, d)
    full = np.zeros((m.nv, m.nv))
    mujoco.mj_fullM(m, d, full)
    inertia = full[dof, dof]
    kp, kd = inertia * (2 * np.pi * 5) ** 2, 2 * inertia * (2 * np.pi * 5)
    for target, sign in ((hi, 1.0), (lo, -1.0)):
        aim = target + sign * 0.3 * (hi - lo)
        for _ in range(1500):
            d.qfrc_applied[dof] = kp * (aim - d.qpos[world.joint_qpos]) - kd * d.qvel[dof]
            mujoco.mj_step(m, d)
        assert abs(world.joint_position() - target) < 0.05 * (hi - lo) + 0.01, (category, target)
    d.qfrc_applied[:] = 0
    world.reset()
    for _ in range(250):  # left alone, the part stays closed (no drift under gravity)
        mujoco.mj_step(m, d)
    assert abs(world.joint_position()) < 0.02 * (hi - lo) + 0.002, (category, world.joint_position())
    obs = world.observe()
    assert obs.mask.sum() > 100, f"{category}: movable part barely visible ({obs.mask.sum()} px)"
    assert (obs.affordance[obs.mask] > 0.8).any()
    assert obs.affordance[~obs.mask].max() == 0.0
    world.close()
