"""Third-party MJCF/URDF objects (hand-written files the generator did not produce) load, render and move."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import manipllm_ros.sim  # noqa: F401
from manipllm_ros.sim.flying_arm import FlyingArm
from manipllm_ros.sim.loader import load_object, object_from_arg
from manipllm_ros.sim.world import ObjectLoadError, World, WorldConfig

DATA = Path(__file__).parent / "data"
CABINET = DATA / "thirdparty_cabinet.xml"


def test_yup_mjcf_with_include_mesh_free_body_and_several_joints():
    obj = load_object(CABINET, "wing_hinge", up="y", category="cabinet", part="door")
    assert obj.meta.joint_type == "hinge"
    assert obj.meta.joint_range == pytest.approx((0.0, np.radians(100)))  # file is in degrees
    assert any(k.endswith("knob.obj") for k in obj.assets)  # mesh embedded: self-contained
    world = World(obj, 0, WorldConfig(randomize=False))
    assert world.model.nq == 7 + 1  # gripper free joint + the joint of interest only
    obs = world.observe()
    assert obs.mask.sum() > 1000
    # The y-up file stands upright: the door spans ~1 m in world z.
    z = obs.points_world[obs.mask][:, 2]
    assert z.max() - z.min() > 0.8


def test_thirdparty_door_opens_with_the_flying_gripper():
    arm = FlyingArm(World(load_object(CABINET, "wing_hinge", up="y"), 0, WorldConfig(randomize=False)))
    obs = arm.world.observe()
    ys, xs = np.nonzero((obs.affordance > 0.8) & obs.mask)
    eye = obs.cam_to_world[:3, 3]
    for i in np.argsort(-obs.affordance[ys, xs]):  # the farthest pixel from the hinge on the door's front face
        p, n = arm.contact_from_pixel(obs, int(xs[i]), int(ys[i]))
        if n @ (eye - p) / np.linalg.norm(eye - p) > 0.7:
            break
    assert arm.approach(p, -n) and arm.end_effector.attach()
    arm.move_along(n, 0.15)
    assert arm.joint_position() > 0.1


def test_urdf_loads():
    obj = load_object(DATA / "thirdparty_box.urdf", "lid_joint", category="box", part="lid")
    obs = World(obj, 0, WorldConfig(randomize=False)).observe()
    assert obj.meta.joint_range == pytest.approx((0.0, 1.8)) and obs.mask.sum() > 1000


def test_part_hidden_from_the_camera_is_detectable():
    obj = load_object(CABINET, "tray_slide", up="y")  # the tray sits behind the closed door
    assert obj.meta.joint_type == "slide"
    assert World(obj, 0, WorldConfig(randomize=False)).observe().mask.sum() == 0


@pytest.mark.parametrize(
    "path, joint, match",
    [
        (DATA / "missing.xml", "x", "does not exist"),
        (CABINET, "no_such_joint", "no joint named 'no_such_joint'.*wing_hinge"),
        (CABINET, "gimbal_ball", "not a hinge or slide"),
    ],
)
def test_bad_input_names_the_object(path, joint, match):
    with pytest.raises(ObjectLoadError, match=match) as e:
        load_object(path, joint)
    assert Path(path).name in str(e.value)


def test_broken_xml_is_a_clear_error(tmp_path):
    bad = tmp_path / "broken.xml"
    bad.write_text("<mujoco><worldbody><body name='a'><geom size='x'/></worldbody></mujoco>")
    with pytest.raises(ObjectLoadError, match="broken.xml.*does not load"):
        load_object(bad, "j")
    with pytest.raises(ObjectLoadError, match="FILE:JOINT"):
        object_from_arg(str(CABINET))
