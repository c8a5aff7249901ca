"""A MuJoCo world: one articulated object, a floating suction gripper, a D415-like camera and random lights.

`World(obj, seed)` builds the scene; `World.observe()` renders RGB, aligned z-depth (m), the movable-part mask,
surface normals and the affordance map of the paper's Eq. 1, all from the same camera. Camera pose ranges
(relative to the object's front, +x of the object frame): azimuth U(-50, 50) deg, elevation U(20, 55) deg,
distance such that the object's bounding sphere spans 60-95 % of the vertical field of view, look-at point
the object centre jittered by 10 % of its radius. `attach_object` merges an object into any MjSpec (the FR3
scene of franky-sim uses it).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from functools import cached_property

os.environ.setdefault("MUJOCO_GL", "egl")

import mujoco  # noqa: E402
import numpy as np  # noqa: E402
from pydantic import BaseModel, ConfigDict, Field  # noqa: E402

from .camera import (  # noqa: E402
    D415,
    Intrinsics,
    backproject,
    look_at,
    normals_from_points,
    optical_to_mujoco_quat,
)
from .objects import ObjectSpec  # noqa: E402

OBJ_PREFIX = "obj/"
GRIPPER_GROUP = 3  # geom group of the gripper: hidden in observations (the paper's images show no robot)


def _ensure_offscreen_gl() -> None:
    """If mujoco was imported before MUJOCO_GL was set and there is no display, switch its renderer to EGL."""
    if os.environ.get("DISPLAY"):
        return
    from mujoco.rendering.classic import gl_context

    if getattr(gl_context.GLContext, "__module__", "").startswith("mujoco.glfw"):
        from mujoco.egl import GLContext

        gl_context.GLContext = GLContext


class SimError(RuntimeError):
    """Base of the simulator's errors; the message names the object."""


class ObjectLoadError(SimError):
    """The object's MJCF/URDF does not compile or lacks the named joint."""


class NoPartVisibleError(SimError):
    """The camera sees no pixel of the movable part."""


class WorldConfig(BaseModel):
    """Randomisation ranges and physics settings of a world."""

    model_config = ConfigDict(extra="forbid")

    azimuth_deg: tuple[float, float] = Field((-50.0, 50.0), description="Camera azimuth around the object front "
                                             "(+x); wide, as in the paper, but the opening side stays visible.")
    elevation_deg: tuple[float, float] = Field((20.0, 55.0), description="Camera elevation above the horizon; "
                                               "lids and flat objects need a view from above.")
    fill: tuple[float, float] = Field((0.6, 0.95), description="Fraction of the vertical field of view the "
                                      "object's bounding sphere spans; sets the distance for any object scale.")
    yaw_deg: tuple[float, float] = Field((-15.0, 15.0), description="Random yaw of the object about z.")
    timestep: float = Field(0.002, description="Physics step (s); 2 ms is stable for the gripper gains used.")
    randomize: bool = Field(True, description="False = canonical camera (azimuth 20, elevation 35, fill 0.6), "
                            "no yaw, fixed lights: the 'default camera' of the tests.")


@dataclass
class Observation:
    """One camera frame; all images share the camera's HxW grid. Point and normal maps are computed on use."""

    rgb: np.ndarray  # HxWx3 uint8
    depth: np.ndarray  # HxW float32 z-depth in metres, 0 = invalid (background)
    mask: np.ndarray  # HxW bool, movable part
    object_mask: np.ndarray  # HxW bool, any object geom
    affordance: np.ndarray  # HxW float32 in [0, 1] (Eq. 1)
    intrinsics: Intrinsics
    cam_to_world: np.ndarray  # 4x4, optical frame -> world

    @cached_property
    def points_cam(self) -> np.ndarray:
        """HxWx3 float32 points in the optical frame."""
        return backproject(self.depth, self.intrinsics)

    @cached_property
    def points_world(self) -> np.ndarray:
        """HxWx3 float32 points in the world frame."""
        return _to_world(self.points_cam, self.cam_to_world)

    @cached_property
    def normals(self) -> np.ndarray:
        """HxWx3 float32 unit normals, optical frame, facing the camera; 0 where unknown (edges, background)."""
        return normals_from_points(self.points_cam, self.depth > 0)


def _to_world(P: np.ndarray, T: np.ndarray) -> np.ndarray:
    """Rigid transform of an (..., 3) float32 array, elementwise (no BLAS threads: fast in busy workers)."""
    R = T[:3, :3].astype(np.float32)
    t = T[:3, 3].astype(np.float32)
    return P[..., 0:1] * R[:, 0] + P[..., 1:2] * R[:, 1] + P[..., 2:3] * R[:, 2] + t


def _quat_from_axis_angle(axis: np.ndarray, angle: float) -> np.ndarray:
    axis = np.asarray(axis, float) / np.linalg.norm(axis)
    return np.concatenate([[math.cos(angle / 2)], math.sin(angle / 2) * axis])


def object_mjspec(obj: ObjectSpec) -> mujoco.MjSpec:
    """The object's MjSpec, compiled-checked; raises ObjectLoadError naming the object."""
    try:
        spec = mujoco.MjSpec.from_string(obj.mjcf, assets=obj.assets or None)
    except Exception as e:  # noqa: BLE001 - MuJoCo raises plain ValueError with the parser message
        raise ObjectLoadError(f"object {obj.meta.object_id!r}: MJCF does not load: {e}") from e
    return spec


def attach_object(spec: mujoco.MjSpec, obj: ObjectSpec, pos=(0.0, 0.0, 0.0), quat=(1.0, 0.0, 0.0, 0.0),
                  prefix: str = OBJ_PREFIX) -> str:
    """Merge the object into `spec` (e.g. the FR3 scene) at a world pose; returns the movable body's new name.

    The object's root body (fixed, no joint) is attached under a frame at `pos`/`quat` (w, x, y, z); every name
    gets `prefix`, so the joint of interest is `prefix + obj.meta.joint_name`.
    """
    child = object_mjspec(obj)
    root = child.body("object")
    if root is None:
        raise ObjectLoadError(f"object {obj.meta.object_id!r}: no body named 'object' at the root")
    if obj.assets:
        spec.assets = {**spec.assets, **obj.assets}
    frame = spec.worldbody.add_frame(pos=np.asarray(pos, float), quat=np.asarray(quat, float))
    frame.attach_body(root, prefix, "")
    return prefix + obj.meta.movable_body


def _add_gripper(spec: mujoco.MjSpec) -> None:
    """Free-floating suction gripper; its frame origin is the cup face (TCP), z = approach axis."""
    g = spec.worldbody.add_body(name="gripper", pos=[0, 0, 3.0], gravcomp=1.0)
    g.add_freejoint(name="gripper_free")
    g.mass = 1.0
    g.inertia = [0.004, 0.004, 0.004]
    g.ipos = [0.0, 0.0, 0.0]  # centre of mass at the TCP: the impedance wrench is applied there
    g.iquat = [1.0, 0.0, 0.0, 0.0]
    g.explicitinertial = True
    common = dict(contype=1, conaffinity=2, group=GRIPPER_GROUP, condim=3, friction=[1.0, 0.01, 0.001])
    g.add_geom(name="cup", type=mujoco.mjtGeom.mjGEOM_CYLINDER, size=[0.009, 0.006, 0], pos=[0, 0, -0.006],
               rgba=[0.15, 0.15, 0.15, 1], **common)
    g.add_geom(name="stem", type=mujoco.mjtGeom.mjGEOM_CYLINDER, size=[0.015, 0.05, 0], pos=[0, 0, -0.062],
               rgba=[0.7, 0.7, 0.72, 1], **common)
    g.add_site(name="tcp", pos=[0, 0, 0], size=[0.003, 0, 0])


class World:
    """One object + floating suction gripper + camera; physics and rendering on the CPU.

    `seed` drives every random choice of the scene (camera, lights, floor, object yaw), so a (object, seed) pair
    always gives the same first observation.
    """

    def __init__(self, obj: ObjectSpec, seed: int = 0, config: WorldConfig | None = None,
                 intrinsics: Intrinsics = D415, suction_max_force: float = 50.0):
        self.obj = obj
        self.seed = int(seed)
        self.config = config or WorldConfig()
        self.K = intrinsics
        self.rng = np.random.default_rng([0x5EED, self.seed])
        self.suction_max_force = suction_max_force
        spec = mujoco.MjSpec()
        spec.option.timestep = self.config.timestep
        spec.option.integrator = mujoco.mjtIntegrator.mjINT_IMPLICITFAST
        spec.visual.global_.offwidth = max(640, intrinsics.width)
        spec.visual.global_.offheight = max(480, intrinsics.height)
        spec.stat.extent = 1.0
        spec.visual.quality.shadowsize = 1024  # the default 4096 costs ~0.15 s per CPU render
        spec.visual.quality.offsamples = 0  # MSAA costs ~10 % of a CPU render; the model sees downscaled images
        self._add_floor_and_lights(spec)
        yaw = math.radians(self.rng.uniform(*self.config.yaw_deg)) if self.config.randomize else 0.0
        self.object_quat = _quat_from_axis_angle(np.array([0.0, 0.0, 1.0]), yaw)
        self.part_body_name = attach_object(spec, obj, (0, 0, 0), self.object_quat)
        _add_gripper(spec)
        self.joint_name = OBJ_PREFIX + obj.meta.joint_name
        if spec.joint(self.joint_name) is None:
            raise ObjectLoadError(f"object {obj.meta.object_id!r}: joint {obj.meta.joint_name!r} not found")
        spec.add_equality(name="suction", type=mujoco.mjtEq.mjEQ_CONNECT, objtype=mujoco.mjtObj.mjOBJ_BODY,
                          name1="gripper", name2=self.part_body_name, active=False,
                          solref=[0.004, 1.0], solimp=[0.95, 0.99, 0.001, 0.5, 2])
        spec.worldbody.add_camera(name="cam", pos=[2, 0, 1], fovy=intrinsics.fovy_deg)
        try:
            self.model = spec.compile()
        except Exception as e:  # noqa: BLE001
            raise ObjectLoadError(f"object {obj.meta.object_id!r}: world does not compile: {e}") from e
        self.spec = spec
        m = self.model
        self.data = mujoco.MjData(m)
        self.gripper_id = m.body("gripper").id
        self.part_id = m.body(self.part_body_name).id
        self.joint_id = m.joint(self.joint_name).id
        self.joint_qpos = int(m.jnt_qposadr[self.joint_id])
        self.joint_dof = int(m.jnt_dofadr[self.joint_id])
        self.joint_type = "hinge" if m.jnt_type[self.joint_id] == mujoco.mjtJoint.mjJNT_HINGE else "slide"
        self.joint_range = tuple(float(x) for x in m.jnt_range[self.joint_id])
        self.eq_id = m.equality("suction").id
        self.cup_geom = m.geom("cup").id
        self.cam_id = m.camera("cam").id
        self.gripper_qpos = int(m.jnt_qposadr[m.joint("gripper_free").id])
        self.gripper_dof = int(m.jnt_dofadr[m.joint("gripper_free").id])
        root = m.body(OBJ_PREFIX + "object").id
        self.object_bodies = np.array([b for b in range(m.nbody) if self._descends(b, root)])
        self.part_bodies = np.array([b for b in range(m.nbody) if self._descends(b, self.part_id)])
        self.object_geoms = np.flatnonzero(np.isin(m.geom_bodyid, self.object_bodies))
        self.part_geoms = np.flatnonzero(np.isin(m.geom_bodyid, self.part_bodies))
        if len(self.part_geoms) == 0:
            raise ObjectLoadError(f"object {obj.meta.object_id!r}: movable body {obj.meta.movable_body!r} "
                                  "has no geoms")
        mujoco.mj_forward(m, self.data)
        self.center, self.radius = self._bounding_sphere()
        self.set_camera(*self._sample_camera())
        mujoco.mj_forward(m, self.data)
        self._renderer: mujoco.Renderer | None = None
        self._scene_opt = mujoco.MjvOption()
        self._scene_opt.geomgroup[GRIPPER_GROUP] = 0
        self.park_gripper()

    # ---------------------------------------------------------------- scene construction
    def _descends(self, b: int, root: int) -> bool:
        while b != root and b != 0:
            b = int(self.model.body_parentid[b])
        return b == root

    def _add_floor_and_lights(self, spec: mujoco.MjSpec) -> None:
        r = self.rng
        rnd = self.config.randomize
        c1 = r.uniform(0.2, 0.8, 3) if rnd else np.array([0.5, 0.5, 0.5])
        spec.add_texture(name="floor_tex", type=mujoco.mjtTexture.mjTEXTURE_2D,
                         builtin=mujoco.mjtBuiltin.mjBUILTIN_CHECKER, rgb1=c1, rgb2=c1 * 0.8, width=64, height=64)
        mat = spec.add_material(name="floor_mat", texrepeat=[8, 8], reflectance=0.0)
        mat.textures[mujoco.mjtTextureRole.mjTEXROLE_RGB] = "floor_tex"
        spec.worldbody.add_geom(name="floor", type=mujoco.mjtGeom.mjGEOM_PLANE, size=[10, 10, 0.1],
                                material="floor_mat", contype=2, conaffinity=1)
        amb = r.uniform(0.15, 0.45) if rnd else 0.3
        spec.visual.headlight.ambient = [amb] * 3
        spec.visual.headlight.diffuse = [r.uniform(0.2, 0.5) if rnd else 0.4] * 3
        spec.visual.headlight.specular = [0.1] * 3
        n = int(r.integers(1, 3)) if rnd else 1
        for i in range(n):
            az = r.uniform(-math.pi, math.pi) if rnd else 0.5
            el = r.uniform(0.6, 1.4) if rnd else 1.0
            d = np.array([math.cos(el) * math.cos(az), math.cos(el) * math.sin(az), math.sin(el)])
            inten = r.uniform(0.3, 0.8) if rnd else 0.5
            tint = r.uniform(0.85, 1.0, 3) if rnd else np.ones(3)
            spec.worldbody.add_light(name=f"light{i}", pos=4 * d, dir=-d, diffuse=inten * tint, specular=[0.2] * 3,
                                     castshadow=bool(i == 0 and r.random() < 0.5) if rnd else False,
                                     type=mujoco.mjtLightType.mjLIGHT_DIRECTIONAL)

    def _bounding_sphere(self) -> tuple[np.ndarray, float]:
        m, d = self.model, self.data
        gs = self.object_geoms
        lo = np.full(3, np.inf)
        hi = np.full(3, -np.inf)
        for g in gs:
            c = d.geom_xpos[g]
            r = m.geom_rbound[g]
            if r <= 0:  # planes
                continue
            aabb = m.geom_aabb[g]  # local centre (3) + half sizes (3)
            R = d.geom_xmat[g].reshape(3, 3)
            centre = c + R @ aabb[:3]
            half = np.abs(R) @ aabb[3:]
            lo = np.minimum(lo, centre - half)
            hi = np.maximum(hi, centre + half)
        centre = (lo + hi) / 2
        return centre, float(np.linalg.norm(hi - lo) / 2)

    def _sample_camera(self) -> tuple[np.ndarray, np.ndarray]:
        cfg, r = self.config, self.rng
        if cfg.randomize:
            az = math.radians(r.uniform(*cfg.azimuth_deg))
            el = math.radians(r.uniform(*cfg.elevation_deg))
            fill = r.uniform(*cfg.fill)
            target = self.center + r.uniform(-0.1, 0.1, 3) * self.radius
        else:
            az, el, fill, target = math.radians(20), math.radians(35), 0.6, self.center.copy()
        yaw = 2 * math.atan2(self.object_quat[3], self.object_quat[0])
        half_fov = math.radians(self.K.fovy_deg) / 2
        dist = self.radius / math.sin(half_fov * fill)
        a = az + yaw
        eye = target + dist * np.array([math.cos(el) * math.cos(a), math.cos(el) * math.sin(a), math.sin(el)])
        return eye, target

    def rerandomize(self, seed: int) -> None:
        """New camera pose and lighting from `seed` without recompiling (many scenes per compiled object)."""
        self.rng = np.random.default_rng([0x5CE7E, int(seed)])
        m, r = self.model, self.rng
        if self.config.randomize:
            m.vis.headlight.ambient[:] = r.uniform(0.15, 0.45)
            m.vis.headlight.diffuse[:] = r.uniform(0.2, 0.5)
            for i in range(m.nlight):
                az, el = r.uniform(-math.pi, math.pi), r.uniform(0.6, 1.4)
                d = np.array([math.cos(el) * math.cos(az), math.cos(el) * math.sin(az), math.sin(el)])
                m.light_pos[i] = 4 * d
                m.light_dir[i] = -d
                m.light_diffuse[i] = r.uniform(0.3, 0.8) * r.uniform(0.85, 1.0, 3)
        self.reset()
        self.set_camera(*self._sample_camera())

    def set_camera(self, eye: np.ndarray, target: np.ndarray) -> None:
        T = look_at(eye, target)
        self.model.cam_pos[self.cam_id] = T[:3, 3]
        self.model.cam_quat[self.cam_id] = optical_to_mujoco_quat(T[:3, :3])
        self._cam_to_world = T
        if hasattr(self, "data"):
            mujoco.mj_forward(self.model, self.data)  # cam_xpos/xmat are what the renderer uses

    @property
    def cam_to_world(self) -> np.ndarray:
        return self._cam_to_world.copy()

    # ---------------------------------------------------------------- state
    def joint_position(self) -> float:
        return float(self.data.qpos[self.joint_qpos])

    def set_joint_position(self, q: float) -> None:
        self.data.qpos[self.joint_qpos] = q
        self.data.qvel[self.joint_dof] = 0.0
        mujoco.mj_forward(self.model, self.data)

    def park_gripper(self) -> None:
        """Put the gripper far above the object, out of view and out of contact."""
        self.data.eq_active[self.eq_id] = 0
        self.set_gripper_pose(self.center + np.array([0.0, 0.0, 3.0 + 3 * self.radius]), np.eye(3))

    def set_gripper_pose(self, pos: np.ndarray, R: np.ndarray) -> None:
        """Teleport the gripper (only meaningful while not attached)."""
        q = np.zeros(4)
        mujoco.mju_mat2Quat(q, np.ascontiguousarray(R, dtype=float).reshape(9))
        a = self.gripper_qpos
        self.data.qpos[a:a + 3] = pos
        self.data.qpos[a + 3:a + 7] = q
        self.data.qvel[self.gripper_dof:self.gripper_dof + 6] = 0.0
        mujoco.mj_forward(self.model, self.data)

    def reset(self) -> None:
        """Object closed, gripper parked, suction off, time zero (camera and lights unchanged)."""
        mujoco.mj_resetData(self.model, self.data)
        mujoco.mj_forward(self.model, self.data)
        self.park_gripper()

    def joint_axis_world(self) -> tuple[np.ndarray, np.ndarray]:
        """(anchor point, unit axis) of the joint of interest in world coordinates, at the current state."""
        return self.data.xanchor[self.joint_id].copy(), self.data.xaxis[self.joint_id].copy()

    # ---------------------------------------------------------------- rendering
    @property
    def renderer(self) -> mujoco.Renderer:
        if self._renderer is None:
            _ensure_offscreen_gl()
            self._renderer = mujoco.Renderer(self.model, self.K.height, self.K.width)
        return self._renderer

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None

    def render_rgb(self, show_gripper: bool = False) -> np.ndarray:
        r = self.renderer
        opt = mujoco.MjvOption() if show_gripper else self._scene_opt
        r.update_scene(self.data, camera=self.cam_id, scene_option=opt)
        return r.render().copy()

    def observe(self, affordance_step: float | None = None) -> Observation:
        """Render the current state from the world camera (gripper hidden) with all derived maps."""
        r = self.renderer
        m = self.model
        r.update_scene(self.data, camera=self.cam_id, scene_option=self._scene_opt)
        rgb = r.render().copy()
        seg, depth = self._render_seg_depth(r)
        far = m.vis.map.zfar * m.stat.extent
        is_geom = seg[..., 1] == int(mujoco.mjtObj.mjOBJ_GEOM)  # int(): enum compare is per-pixel Python
        gid = np.where(is_geom, seg[..., 0], -1)
        valid = (gid >= 0) & (depth < far * 0.999)
        depth = np.where(valid, depth, 0.0).astype(np.float32)
        part_lut = np.zeros(m.ngeom + 1, bool)
        part_lut[self.part_geoms] = True
        obj_lut = np.zeros(m.ngeom + 1, bool)
        obj_lut[self.object_geoms] = True
        mask = part_lut[gid] & valid
        object_mask = obj_lut[gid] & valid
        T = self._cam_to_world
        aff = np.zeros(mask.shape, np.float32)
        if mask.any():
            vs, us = np.nonzero(mask)
            z = depth[vs, us]
            pc = np.stack([(us - self.K.cx) * z / self.K.fx, (vs - self.K.cy) * z / self.K.fy, z], -1)
            aff[vs, us] = self.affordance_at(_to_world(pc.astype(np.float32), T), affordance_step)
            span = float(aff.max() - aff.min())  # Eq. 1: A = D / |max D - min D|
            aff = np.clip(aff / span, 0.0, 1.0) if span > 0 else mask.astype(np.float32)
        return Observation(rgb, depth, mask, object_mask, aff, self.K, T.copy())

    def _render_seg_depth(self, r: mujoco.Renderer) -> tuple[np.ndarray, np.ndarray]:
        """Segmentation (objid, objtype) and metric z-depth from ONE segmentation pass (mujoco.Renderer needs two).

        Mirrors mujoco 4.0.0's Renderer.render for both modes, reading the colour (ids) and depth buffers of
        the same frame; a third of the rendering time of an observation.
        """
        m = self.model
        scene, con, rect = r._scene, r._mjr_context, r._rect
        flags = scene.flags.copy()
        try:
            scene.flags[mujoco.mjtRndFlag.mjRND_SEGMENT] = True
            scene.flags[mujoco.mjtRndFlag.mjRND_IDCOLOR] = True
            if r._gl_context:
                r._gl_context.make_current()
            h, w = self.K.height, self.K.width
            ids = np.empty((h, w, 3), np.uint8)
            zbuf = np.empty((h, w), np.float32)
            mujoco.mjr_render(rect, scene, con)
            mujoco.mjr_readPixels(ids, zbuf, rect, con)
        finally:
            np.copyto(scene.flags, flags)
        near = np.float32(m.vis.map.znear * m.stat.extent)
        far = np.float32(m.vis.map.zfar * m.stat.extent)
        c = np.float32(-0.5) * (-(far + near) / (far - near)) - np.float32(0.5)
        d = np.float32(-0.5) * (-(np.float32(2) * far * near) / (far - near))
        depth = (d / (zbuf.astype(np.float64) + c)).astype(np.float32)
        ids32 = ids.astype(np.int32)
        segimage = ids32[..., 0] + ids32[..., 1] * 256 + ids32[..., 2] * 65536
        lut = np.full((scene.ngeom + 2, 2), -1, np.int32)
        for g in scene.geoms[:scene.ngeom]:
            if g.segid != -1:
                lut[g.segid + 1] = (g.objid, g.objtype)
        seg = lut[np.clip(segimage, 0, scene.ngeom + 1)]
        if r._gl_context:
            seg, depth = np.flipud(seg), np.flipud(depth)
        return np.ascontiguousarray(seg), np.ascontiguousarray(depth)

    def affordance_at(self, points_world: np.ndarray, step: float | None = None) -> np.ndarray:
        """Eq. 1 numerator: distance D each (N, 3) point on the part travels for a small joint step.

        Revolute: a point at distance r from the axis travels 2 r sin(step / 2); prismatic: every point travels
        `step`. The map is A = D / |max D - min D| over the image, where pixels off the part have D = 0, so
        A = D / max D (prismatic: 1 on the part).
        """
        anchor, axis = self.joint_axis_world()
        if self.joint_type == "hinge":
            step = 0.01 if step is None else step
            rel = points_world.astype(np.float64) - anchor
            radial = rel - np.outer(rel @ axis, axis)
            return (2.0 * math.sin(step / 2.0) * np.linalg.norm(radial, axis=1)).astype(np.float32)
        step = 0.001 if step is None else step
        return np.full(len(points_world), step, np.float32)

    def surface_at(self, obs: Observation, u: int, v: int) -> tuple[np.ndarray, np.ndarray, int]:
        """(point, outward unit normal, geom id) in world coordinates where pixel (u, v)'s ray hits, by ray cast.

        Exact geometry normal (not the depth-image estimate); raises if the ray hits nothing.
        """
        K = self.K
        d_cam = np.array([(u - K.cx) / K.fx, (v - K.cy) / K.fy, 1.0])
        T = obs.cam_to_world
        d = T[:3, :3] @ d_cam
        d /= np.linalg.norm(d)
        gid = np.array([-1], np.int32)
        nrm = np.zeros(3)
        groups = np.ones(6, np.uint8)
        groups[GRIPPER_GROUP] = 0
        dist = mujoco.mj_ray(self.model, self.data, T[:3, 3].astype(float), d, groups, 1, -1, gid, nrm)
        if dist < 0:
            raise NoPartVisibleError(f"object {self.obj.meta.object_id!r}: pixel ({u}, {v}) sees nothing")
        return T[:3, 3] + dist * d, nrm / max(np.linalg.norm(nrm), 1e-12), int(gid[0])
