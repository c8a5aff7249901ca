"""Camera conventions, rendering and the affordance map of Eq. 1 on cases with a known answer."""

from __future__ import annotations

import numpy as np

import manipllm_ros.sim  # noqa: F401
from manipllm_ros.sim.camera import D415, look_at, project
from manipllm_ros.sim.objects import ObjectMeta, ObjectSpec, generate_object
from manipllm_ros.sim.world import World, WorldConfig, attach_object

PLATE = """<mujoco model="plate">
  <worldbody>
    <body name="object">
      <geom type="box" pos="-0.05 0 0.3" size="0.02 0.3 0.3" rgba="0.5 0.5 0.5 1"/>
      <body name="plate" pos="0 -0.25 0.3">
        <joint name="{jn}" type="{jt}" axis="{axis}" range="0 1"/>
        <geom type="box" pos="0.01 0.25 0" size="0.01 0.25 0.2" rgba="0.8 0.2 0.2 1"/>
      </body>
    </body>
  </worldbody>
</mujoco>"""


def _spec(jt: str) -> ObjectSpec:
    axis = "0 0 -1" if jt == "hinge" else "1 0 0"
    meta = ObjectMeta(object_id=f"plate-{jt}", category="plate", category_split="train", instance_split="train",
                      instruction="open the plate", part="plate", movable_body="plate", joint_name="j",
                      joint_type=jt, joint_range=(0.0, 1.0), action="pull", handle="none", hinge_side="left",
                      reasoning="")
    return ObjectSpec(mjcf=PLATE.format(jn="j", jt=jt, axis=axis), meta=meta)


def _frontal(world: World) -> None:
    world.set_camera(np.array([1.5, 0.0, 0.3]), np.array([0.0, 0.0, 0.3]))


def test_intrinsics_match_d415():
    K = D415.K
    assert K.shape == (3, 3) and abs(K[0, 0] - 615) < 1 and abs(K[1, 1] - 615) < 1
    assert abs(D415.fovy_deg - 42.64) < 0.05


def test_eq1_revolute_is_distance_from_the_hinge_axis():
    world = World(_spec("hinge"), 0, WorldConfig(randomize=False))
    _frontal(world)
    obs = world.observe()
    m = obs.mask
    assert m.sum() > 5000
    # Known answer: A = r / r_max with r = distance from the axis (x = 0, y = -0.25 line along z).
    P = obs.points_world[m]
    r = np.hypot(P[:, 0] - 0.0, P[:, 1] + 0.25)
    expected = r / r.max()
    assert np.max(np.abs(obs.affordance[m] - expected)) < 0.01
    cols = np.nonzero(m.any(axis=0))[0]
    row = int(np.median(np.nonzero(m[:, cols[len(cols) // 2]])[0]))
    a_row = obs.affordance[row, np.nonzero(m[row])[0]]
    # Seen from +x, image right is world +y: the hinge (y = -0.25) is on the left, A rises to the right.
    assert a_row[0] < 0.05 and a_row[-1] > 0.95
    assert np.all(np.diff(a_row) >= -1e-6)
    assert obs.affordance[~m].max() == 0


def test_eq1_prismatic_is_one_on_the_part():
    world = World(_spec("slide"), 0, WorldConfig(randomize=False))
    _frontal(world)
    obs = world.observe()
    assert np.all(obs.affordance[obs.mask] == 1.0) and obs.affordance[~obs.mask].max() == 0


def test_depth_normals_and_projection_agree_with_geometry():
    world = World(_spec("hinge"), 0, WorldConfig(randomize=False))
    _frontal(world)
    obs = world.observe()
    # The plate's front face is at x = 0.02, 1.48 m from the camera, facing the camera (-z in optical frame).
    v = int(np.median(np.nonzero(obs.mask.any(axis=1))[0]))
    cols = np.nonzero(obs.mask[v])[0]
    u = int(cols[len(cols) // 2])
    assert abs(obs.depth[v, u] - 1.48) < 2e-3
    assert np.allclose(obs.normals[v, u], [0, 0, -1], atol=0.02)
    p, n, _ = world.surface_at(obs, int(u), int(v))
    assert np.allclose(p, obs.points_world[v, u], atol=2e-3) and np.allclose(n, [1, 0, 0], atol=1e-6)
    # Projecting a world point lands on its pixel (optical frame convention, cx = 319.5).
    T = obs.cam_to_world
    pc = np.linalg.inv(T) @ np.r_[p, 1.0]
    uv = project(pc[:3], D415)[0]
    assert np.allclose(uv, [u, v], atol=0.6)
    assert obs.rgb.shape == (480, 640, 3) and obs.rgb.dtype == np.uint8
    # At the plate's edge (depth jump) the normal is unknown, not a wrong tilt.
    edge = obs.normals[v, cols[0] - 1]
    assert np.all(edge == 0) or np.allclose(edge, [0, 0, -1], atol=0.05)


def test_look_at_is_optical_frame():
    T = look_at(np.array([1.0, 0, 0]), np.zeros(3))
    assert np.allclose(T[:3, 2], [-1, 0, 0])  # z forward
    assert np.allclose(T[:3, 1], [0, 0, -1])  # y down
    assert np.allclose(T[:3, 0], [0, 1, 0])  # x right (viewer's right is world +y here)


def test_random_worlds_are_deterministic_per_seed():
    obj = generate_object("safe", 1)
    a, b = World(obj, 5), World(obj, 5)
    assert np.allclose(a.cam_to_world, b.cam_to_world)
    assert not np.allclose(a.cam_to_world, World(obj, 6).cam_to_world)


def test_attach_object_into_another_spec():
    import mujoco

    spec = mujoco.MjSpec()
    spec.worldbody.add_geom(type=mujoco.mjtGeom.mjGEOM_PLANE, size=[1, 1, 0.1])
    obj = generate_object("cabinet_drawer", 2)
    body = attach_object(spec, obj, pos=(0.6, 0.1, 0.0), quat=(0.7071068, 0, 0, 0.7071068), prefix="scene_obj/")
    model = spec.compile()
    data = mujoco.MjData(model)
    mujoco.mj_forward(model, data)
    assert body == "scene_obj/drawer"
    assert model.joint("scene_obj/" + obj.meta.joint_name).type == mujoco.mjtJoint.mjJNT_SLIDE
    assert np.allclose(data.xpos[model.body("scene_obj/object").id], [0.6, 0.1, 0.0])
