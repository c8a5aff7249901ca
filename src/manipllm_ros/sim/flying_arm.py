"""Fast flying suction gripper in MuJoCo behind the `Arm` interface (data collection, large evaluations).

The gripper is a free body driven by a 6-D Cartesian spring-damper (operational-space impedance) whose forces
are applied as an external wrench; its own weight is compensated (gravcomp), the held part's is not. Suction
is a ball-joint (connect) equality between the cup centre and the movable part that engages only when the cup
is within `attach_distance` of the part; it breaks when its constraint force exceeds `suction_max_force`
(default 50 N, a ~40 mm cup at ~0.4 bar) or when the part has turned more than `max_seal_angle_deg` (45 deg)
under the cup (the bellows' compliance). Everything runs faster than real time (~20-50x on one core).

Usage::

    from manipllm_ros.sim.objects import generate_object
    from manipllm_ros.sim.flying_arm import FlyingArm

    with FlyingArm.from_object(generate_object("microwave", seed=3), seed=0) as arm:
        obs = arm.world.observe()                     # rgb, depth, mask, normals, affordance, intrinsics
        p, n = arm.contact_from_pixel(obs, u, v)      # surface point + outward normal under pixel (u, v)
        arm.approach(p, up=-n)                        # stand off, then move in along up until contact
        arm.end_effector.attach()                     # True if the cup touches the part
        res = arm.move_along(n, 0.15, compliant=True) # pull; res.attached tells whether suction held
        print(arm.joint_position())
"""

from __future__ import annotations

import math

import mujoco
import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from ..control.arm import (
    Arm,
    ArmError,
    EEPose,
    EndEffector,
    InvalidTargetError,
    ProbeResult,
    WorkspaceError,
)
from .objects import ObjectSpec
from .world import World, WorldConfig


class FlyingArmConfig(BaseModel):
    """Gains and limits of the flying gripper."""

    model_config = ConfigDict(extra="forbid")

    stiffness: float = Field(600.0, description="Translational stiffness (N/m) in compliant mode; FR3 "
                             "impedance defaults are a few hundred to 3000 N/m.")
    rot_stiffness: float = Field(30.0, description="Rotational stiffness (N m/rad).")
    stiff_factor: float = Field(5.0, description="Stiffness multiplier when compliant=False.")
    damping_ratio: float = Field(1.0, description="Damping as a fraction of critical for the gripper mass + "
                                 "`effective_mass`.")
    effective_mass: float = Field(2.0, description="Mass (kg) added to the gripper's when computing damping, "
                                  "so a held part does not make the loop ring.")
    max_force: float = Field(120.0, description="Saturation of the commanded impedance force (N).")
    speed: float = Field(0.25, description="Default Cartesian speed of the moving target (m/s).")
    settle_time: float = Field(0.15, description="Time (s) to let the loop settle after a motion.")
    suction_max_force: float = Field(50.0, description="Suction breaks above this constraint force (N).")
    max_seal_angle_deg: float = Field(45.0, description="The part may turn under the cup (bellows) up to this "
                                      "angle from the attach pose; beyond it the seal is lost.")
    attach_distance: float = Field(0.004, description="The cup must be this close (m) to the part to attach.")
    workspace_margin: float = Field(1.0, description="Workspace = object bounding sphere + this margin (m).")


_EQ = int(mujoco.mjtConstraint.mjCNSTR_EQUALITY)


def _rot_err(R_target: np.ndarray, R: np.ndarray) -> np.ndarray:
    """Axis-angle vector (world frame) rotating R onto R_target."""
    E = R_target @ R.T
    q = np.zeros(4)
    mujoco.mju_mat2Quat(q, np.ascontiguousarray(E).reshape(9))
    if q[0] < 0:
        q = -q
    s = np.linalg.norm(q[1:])
    if s < 1e-12:
        return np.zeros(3)
    angle = 2.0 * math.atan2(s, q[0])
    return q[1:] / s * angle


def _unit(v: np.ndarray, what: str) -> np.ndarray:
    v = np.asarray(v, float).reshape(-1)
    if v.shape != (3,) or not np.all(np.isfinite(v)) or np.linalg.norm(v) < 1e-9:
        raise InvalidTargetError(f"{what} must be a finite non-zero 3-vector, got {v}")
    return v / np.linalg.norm(v)


def rotation_from_up_forward(up: np.ndarray, forward: np.ndarray) -> np.ndarray:
    """Gripper rotation (columns x = forward, y = up x forward, z = up), forward orthogonalised against up."""
    z = _unit(up, "up")
    f = np.asarray(forward, float) - np.dot(forward, z) * z
    if np.linalg.norm(f) < 1e-6:
        f = np.cross(z, [1.0, 0.0, 0.0]) if abs(z[0]) < 0.9 else np.cross(z, [0.0, 1.0, 0.0])
    x = f / np.linalg.norm(f)
    return np.column_stack([x, np.cross(z, x), z])


class SuctionCup(EndEffector):
    """Suction cup: engages only on contact, breaks above a force or seal angle, releases on command."""

    def __init__(self, arm: "FlyingArm"):
        self._arm = arm
        self.broke = False  # True after the last hold failed under load or the seal tilted too far
        self._axis_in_part = np.array([0.0, 0.0, 1.0])

    def distance_to_part(self) -> float:
        w = self._arm.world
        dmax = 0.05
        best = dmax
        for g in w.part_geoms:
            d = mujoco.mj_geomDistance(w.model, w.data, w.cup_geom, int(g), dmax, None)
            best = min(best, d)
        return float(best)

    def attach(self) -> bool:
        w = self._arm.world
        if self.is_attached():
            return True
        if self.distance_to_part() > self._arm.config.attach_distance:
            return False
        m, d = w.model, w.data
        # Ball-joint seal at the cup centre (no snap): anchor = gripper origin in the gripper frame (0) and in
        # the part frame (checked: zero constraint violation). The part may turn under the cup (bellows)
        # until the seal angle limit; the cup axis is remembered in the part frame to check that.
        pg, Rg = d.xpos[w.gripper_id], d.xmat[w.gripper_id].reshape(3, 3)
        pp, Rp = d.xpos[w.part_id], d.xmat[w.part_id].reshape(3, 3)
        eq = m.eq_data[w.eq_id]
        eq[:] = 0.0
        eq[3:6] = Rp.T @ (pg - pp)
        self._axis_in_part = Rp.T @ Rg[:, 2]
        d.eq_active[w.eq_id] = 1
        # The sealed cup no longer pushes on the part: otherwise contact and seal fight and the "held" force
        # would be an internal squeeze rather than the load.
        m.geom_contype[w.cup_geom] = 0
        m.geom_conaffinity[w.cup_geom] = 0
        self.broke = False
        mujoco.mj_forward(m, d)
        return True

    def release(self) -> None:
        w = self._arm.world
        w.data.eq_active[w.eq_id] = 0
        w.model.geom_contype[w.cup_geom] = 1
        w.model.geom_conaffinity[w.cup_geom] = 2

    def is_attached(self) -> bool:
        return bool(self._arm.world.data.eq_active[self._arm.world.eq_id])

    def seal_angle(self) -> float:
        """Angle (rad) between the cup axis and the part surface direction it was attached to."""
        w = self._arm.world
        d = w.data
        a = d.xmat[w.part_id].reshape(3, 3) @ self._axis_in_part
        z = d.xmat[w.gripper_id].reshape(3, 3)[:, 2]
        return math.acos(max(-1.0, min(1.0, float(a @ z))))

    def force(self) -> float:
        """Magnitude of the seal's constraint force now (N).

        The suction constraint is the model's only equality constraint and MuJoCo orders equality rows first, so
        its force is efc_force[0:3] whenever it is active (O(1), called every physics step).
        """
        d = self._arm.world.data
        if d.nefc < 3 or d.efc_type[0] != _EQ or d.efc_id[0] != self._arm.world.eq_id:
            return 0.0
        f = d.efc_force
        return math.sqrt(f[0] * f[0] + f[1] * f[1] + f[2] * f[2])


class FlyingArm(Arm):
    """A floating suction gripper in a `World`; base frame = world frame."""

    def __init__(self, world: World, config: FlyingArmConfig | None = None):
        self.world = world
        self.config = config or FlyingArmConfig()
        self.end_effector = SuctionCup(self)
        self._connected = False
        self._target_q = np.array([1.0, 0.0, 0.0, 0.0])
        self._max_seal = math.radians(self.config.max_seal_angle_deg)
        self._err_local = np.zeros(3)
        m = world.model
        self._mass = float(m.body_mass[world.gripper_id]) + self.config.effective_mass
        self._inertia = float(np.max(m.body_inertia[world.gripper_id])) + 0.02
        self._target_p = world.data.xpos[world.gripper_id].copy()
        self._target_R = world.data.xmat[world.gripper_id].reshape(3, 3).copy()
        self._ff = np.zeros(3)  # feed-forward force (N), used by probe()
        self._free_axis: np.ndarray | None = None  # direction with no spring (probe)
        self._stiff = 1.0
        self.max_suction_force_seen = 0.0

    @property
    def _target_R(self) -> np.ndarray:
        return self.__target_R

    @_target_R.setter
    def _target_R(self, R: np.ndarray) -> None:
        self.__target_R = np.asarray(R, float)
        mujoco.mju_mat2Quat(self._target_q, np.ascontiguousarray(self.__target_R).reshape(9))

    @classmethod
    def from_object(cls, obj: ObjectSpec, seed: int = 0, world_config: WorldConfig | None = None,
                    config: FlyingArmConfig | None = None) -> "FlyingArm":
        """Build the world (object + gripper + randomised camera/lights from `seed`) and the arm."""
        return cls(World(obj, seed, world_config), config)

    # ------------------------------------------------------------------ Arm interface
    def connect(self) -> None:
        self._connected = True

    def disconnect(self) -> None:
        self._connected = False

    def current_pose(self) -> EEPose:
        d, g = self.world.data, self.world.gripper_id
        return EEPose(d.xpos[g].copy(), d.xmat[g].reshape(3, 3).copy())

    def joint_position(self) -> float:
        """The object's joint of interest (rad or m; 0 = closed)."""
        return self.world.joint_position()

    def observe(self):
        """The world camera's observation (gripper hidden, as in the paper's images) of the current state."""
        return self.world.observe()

    @property
    def sim_time(self) -> float:
        return float(self.world.data.time)

    def _check_target(self, p: np.ndarray) -> None:
        p = np.asarray(p, float)
        if p.shape != (3,) or not np.all(np.isfinite(p)):
            raise InvalidTargetError(f"target position must be a finite 3-vector, got {p}")
        lim = self.world.radius + self.config.workspace_margin
        if np.linalg.norm(p - self.world.center) > lim:
            raise WorkspaceError(f"target {np.round(p, 3)} is outside the workspace (sphere of radius "
                                 f"{lim:.2f} m around the object {self.world.obj.meta.object_id!r})")

    def move_to(self, pose: EEPose, *, max_speed: float | None = None) -> EEPose:
        self._check_target(pose.position)
        R = np.asarray(pose.rotation, float)
        if not np.all(np.isfinite(R)) or abs(np.linalg.det(R) - 1.0) > 1e-3:
            raise InvalidTargetError("target rotation must be a proper rotation matrix")
        self._track_line(pose.position, R, max_speed or self.config.speed)
        return self.current_pose()

    def move_along(self, direction: np.ndarray, distance: float, *, compliant: bool = True) -> ProbeResult:
        d = _unit(direction, "direction")
        if not math.isfinite(distance):
            raise InvalidTargetError(f"distance must be finite, got {distance}")
        start = self.current_pose()
        q0 = self.joint_position()
        goal = self._target_p + d * distance
        self._check_target(goal)
        self._stiff = 1.0 if compliant else self.config.stiff_factor
        try:
            self._track_line(goal, self._target_R, self.config.speed)
        finally:
            self._stiff = 1.0
        end = self.current_pose()
        return ProbeResult(d, end.position - start.position, start, end, self.end_effector.is_attached(),
                           {"joint_delta": self.joint_position() - q0, "suction_broke": self.end_effector.broke})

    def probe(self, direction: np.ndarray, *, force: float, duration: float) -> ProbeResult:
        d = _unit(direction, "direction")
        if not (math.isfinite(force) and math.isfinite(duration)) or duration < 0:
            raise InvalidTargetError(f"force and duration must be finite (duration >= 0), got {force}, {duration}")
        force = float(np.clip(force, -self.config.max_force, self.config.max_force))
        start = self.current_pose()
        q0 = self.joint_position()
        self._target_p = start.position.copy()
        self._ff = force * d
        self._free_axis = d
        try:
            self.step_for(duration)
        finally:
            self._ff = np.zeros(3)
            self._free_axis = None
        end = self.current_pose()
        self._target_p = end.position.copy()  # hold the new pose
        return ProbeResult(d, end.position - start.position, start, end, self.end_effector.is_attached(),
                           {"joint_delta": self.joint_position() - q0, "force": force})

    def stop(self) -> None:
        w = self.world
        self._target_p = w.data.xpos[w.gripper_id].copy()
        self._target_R = w.data.xmat[w.gripper_id].reshape(3, 3).copy()
        self._ff = np.zeros(3)
        self._free_axis = None

    def recover(self) -> None:
        self.stop()
        self.end_effector.broke = False

    # ------------------------------------------------------------------ simulation
    def teleport(self, position: np.ndarray, rotation: np.ndarray) -> None:
        """Place the gripper instantly (free space only; releases suction). Saves time in data collection."""
        self._check_target(np.asarray(position, float))
        self.end_effector.release()
        self.world.set_gripper_pose(np.asarray(position, float), np.asarray(rotation, float))
        self._target_p = np.asarray(position, float).copy()
        self._target_R = np.asarray(rotation, float).copy()

    def _control(self) -> None:
        """One impedance update: wrench = K (x* - x) - D v (+ feed-forward), applied at the TCP (= COM)."""
        w, c = self.world, self.config
        d = w.data
        g = w.gripper_id
        dof = w.gripper_dof
        k = c.stiffness * self._stiff
        kd = 2.0 * c.damping_ratio * math.sqrt(k * self._mass)
        e = self._target_p - d.xpos[g]
        if self._free_axis is not None:
            e = e - np.dot(e, self._free_axis) * self._free_axis
        F = k * e - kd * d.qvel[dof:dof + 3] + self._ff
        n = math.sqrt(F[0] * F[0] + F[1] * F[1] + F[2] * F[2])
        if n > c.max_force:
            F *= c.max_force / n
        kr = c.rot_stiffness * self._stiff
        krd = 2.0 * c.damping_ratio * math.sqrt(kr * self._inertia)
        # orientation error in the gripper frame (mju_subQuat), torque in the gripper frame, then to world
        mujoco.mju_subQuat(self._err_local, self._target_q, d.xquat[g])
        tau_local = kr * self._err_local - krd * d.qvel[dof + 3:dof + 6]
        d.xfrc_applied[g, :3] = F
        d.xfrc_applied[g, 3:] = d.xmat[g].reshape(3, 3) @ tau_local

    def step(self, n: int = 1) -> None:
        """Advance physics n steps under the impedance loop, enforcing the suction force limit."""
        w, ee = self.world, self.end_effector
        for _ in range(n):
            self._control()
            mujoco.mj_step(w.model, w.data)
            if ee.is_attached():
                f = ee.force()
                self.max_suction_force_seen = max(self.max_suction_force_seen, f)
                if f > self.config.suction_max_force or ee.seal_angle() > self._max_seal:
                    ee.release()
                    ee.broke = True

    def step_for(self, seconds: float) -> None:
        self.step(max(1, int(round(seconds / self.world.model.opt.timestep))))

    def _track_line(self, goal_p: np.ndarray, goal_R: np.ndarray, speed: float) -> None:
        """Move the impedance target to goal at `speed` (m/s), rotating alongside, then settle."""
        dt = self.world.model.opt.timestep
        p0 = self._target_p.copy()
        R0 = self._target_R.copy()
        dist = float(np.linalg.norm(goal_p - p0))
        ang = float(np.linalg.norm(_rot_err(goal_R, R0)))
        T = max(dist / max(speed, 1e-6), ang / 2.0, dt)
        n = max(1, int(math.ceil(T / dt)))
        q0 = np.zeros(4)
        q1 = np.zeros(4)
        mujoco.mju_mat2Quat(q0, np.ascontiguousarray(R0).reshape(9))
        mujoco.mju_mat2Quat(q1, np.ascontiguousarray(goal_R, dtype=float).reshape(9))
        if np.dot(q0, q1) < 0:
            q1 = -q1
        for i in range(1, n + 1):
            s = i / n
            self._target_p = p0 + s * (goal_p - p0)
            q = (1 - s) * q0 + s * q1  # nlerp: fine for the small steps used here
            q /= np.linalg.norm(q)
            Rm = np.zeros(9)
            mujoco.mju_quat2Mat(Rm, q)
            self._target_R = Rm.reshape(3, 3)
            self.step(1)
        self._target_p = np.asarray(goal_p, float).copy()
        self._target_R = np.asarray(goal_R, float).copy()
        self._settle()

    def _settle(self) -> None:
        """Step until the gripper is within 1 mm / 1 cm/s of its target, at most `settle_time` x 4."""
        w = self.world
        self.step_for(self.config.settle_time / 3)
        t_end = w.data.time + 4 * self.config.settle_time
        while w.data.time < t_end:
            err = np.linalg.norm(self._target_p - w.data.xpos[w.gripper_id])
            vel = np.linalg.norm(w.data.qvel[w.gripper_dof:w.gripper_dof + 3])
            if err < 1e-3 and vel < 1e-2:
                break
            self.step(10)

    # ------------------------------------------------------------------ helpers for data collection / policies
    def contact_from_pixel(self, obs, u: int, v: int) -> tuple[np.ndarray, np.ndarray]:
        """World point and outward unit normal of the surface seen at pixel (u, v)."""
        p, n, _ = self.world.surface_at(obs, u, v)
        return p, n

    def approach(self, point: np.ndarray, up: np.ndarray, forward: np.ndarray | None = None,
                 standoff: float = 0.05, press: float = 0.01) -> bool:
        """Teleport to `standoff` before the point along -up, move in along up until contact; True if touching.

        The gripper's z (up) axis points into the surface; it moves to `press` beyond the surface so the cup
        is pressed on (the spring limits the force to stiffness x press).
        """
        up = _unit(up, "up")
        fwd = np.array([1.0, 0.0, 0.0]) if forward is None else np.asarray(forward, float)
        R = rotation_from_up_forward(up, fwd)
        point = np.asarray(point, float)
        self.teleport(point - up * standoff, R)
        self._track_line(point + up * press, R, self.config.speed)
        return self.end_effector.distance_to_part() <= self.config.attach_distance


__all__ = ["FlyingArm", "FlyingArmConfig", "SuctionCup", "rotation_from_up_forward", "ArmError"]
