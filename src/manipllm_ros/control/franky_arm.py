"""`Arm` on a real FR3/Panda (or franky-sim over loopback) through franky.

Free-space moves are franky `CartesianMotion`s scaled by a relative dynamics factor. Everything in contact
(probes and steps) runs in one long-lived `CartesianImpedanceTracker` session: the arm stays compliant
between moves, the impedance error is clipped so the commanded force never exceeds `max_force`, and the
rotational stiffness is low so the wrist turns with a door. Displacements are measured from the joint
positions through the robot model, never from the external-force estimate (franky-sim leaves O_F_ext_hat_K
at zero; the real robot's estimate is only recorded in `ProbeResult.extra`).
"""

from __future__ import annotations

import os
import threading
import time

import numpy as np

from .arm import Arm, ArmError, EEPose, EndEffector, InvalidTargetError, ProbeResult, WorkspaceError
from .config import FrankyConfig


class _NoEndEffector(EndEffector):
    """Placeholder until a real end effector is given: never holds anything."""

    def attach(self) -> bool:
        return False

    def release(self) -> None:
        return None

    def is_attached(self) -> bool:
        return False


def _unit(direction) -> np.ndarray:
    v = np.asarray(direction, dtype=float).reshape(-1)
    if v.shape != (3,) or not np.all(np.isfinite(v)) or np.linalg.norm(v) < 1e-9:
        raise InvalidTargetError(f"direction must be 3 finite numbers with non-zero length, got {direction!r}")
    return v / np.linalg.norm(v)


class _ThreadScheduling:
    """libfranka raises the thread that connects to a robot to SCHED_FIFO 99 where it may (root, or rtprio
    granted), as its control loop needs on a real robot, and leaves it there. This gives the thread its own
    scheduling back when the last arm it connected disconnects, so a process that used an arm (an evaluation,
    the control CLI, the test runner) does not go on, and start children, at real-time priority."""

    _local = threading.local()

    def __init__(self) -> None:
        self.thread = threading.get_ident()
        held = self._local
        if getattr(held, "count", 0) == 0 and hasattr(os, "sched_getscheduler"):
            held.saved = (os.sched_getscheduler(0), os.sched_getparam(0).sched_priority)  # pid 0 = this thread
        held.count = getattr(held, "count", 0) + 1

    def release(self) -> None:
        if threading.get_ident() != self.thread:  # the scheduling is the connecting thread's to give back
            return
        held = self._local
        held.count -= 1
        saved = getattr(held, "saved", None)
        if held.count == 0 and saved is not None and os.sched_getscheduler(0) != saved[0]:
            try:
                os.sched_setscheduler(0, saved[0], os.sched_param(saved[1]))
            except OSError:
                pass


class FrankyArm(Arm):
    """franky backend of `Arm`. `connect()` opens the FCI connection; use as a context manager."""

    def __init__(self, config: FrankyConfig | None = None, end_effector: EndEffector | None = None) -> None:
        import franky

        self.cfg = config or FrankyConfig()
        self.end_effector = end_effector or _NoEndEffector()
        self._f = franky
        self._errors: tuple[type[BaseException], ...] = (
            franky.ControlException, franky.CommandException, franky.NetworkException, franky.ProtocolException,
            franky.InvalidOperationException, franky.RealtimeException, franky.ModelException,
            franky.IncompatibleVersionException, franky.Exception, RuntimeError,
        )
        self.robot = None
        self._trk = None
        self._sched: _ThreadScheduling | None = None

    # -- connection ---------------------------------------------------------------------------------------
    def connect(self) -> None:
        f, c = self._f, self.cfg
        if self._sched is None:
            self._sched = _ThreadScheduling()
        try:
            self.robot = f.Robot(
                c.robot_ip, relative_dynamics_factor=c.relative_dynamics_factor,
                realtime_config=f.RealtimeConfig.Ignore if c.realtime_ignore else f.RealtimeConfig.Enforce,
            )
            self.robot.recover_from_errors()
            self.robot.set_collision_behavior(list(c.collision_torque_thresholds), list(c.collision_force_thresholds))
        except self._errors as e:
            self.disconnect()
            raise ArmError(f"cannot connect to the robot at {c.robot_ip}: {e}") from e

    def disconnect(self) -> None:
        self._trk = None
        self.robot = None
        if self._sched is not None:
            self._sched.release()
            self._sched = None

    def _need(self):
        if self.robot is None:
            raise ArmError("FrankyArm is not connected (call connect() or use it as a context manager)")
        return self.robot

    # -- state --------------------------------------------------------------------------------------------
    def current_pose(self) -> EEPose:
        """Measured TCP pose: forward kinematics of the measured joints (state.O_T_EE may lag when idle)."""
        r = self._need()
        try:
            st = r.state
            T = np.asarray(r.model.pose(self._f.Frame.EndEffector, st).matrix)
        except self._errors as e:
            raise ArmError(f"cannot read the robot state: {e}") from e
        return EEPose(T[:3, 3], T[:3, :3])

    def _affine(self, position, rotation):
        T = np.eye(4)
        T[:3, :3], T[:3, 3] = rotation, position
        return self._f.Affine(T)

    def _check_target(self, p: np.ndarray) -> None:
        if not np.all(np.isfinite(p)):
            raise InvalidTargetError(f"target position is not finite: {p!r}")
        if not self.cfg.workspace.contains(p):
            raise WorkspaceError(f"target {np.round(p, 3).tolist()} outside workspace box "
                                 f"{self.cfg.workspace.lower}..{self.cfg.workspace.upper}; nothing commanded")

    def _fault(self, e: BaseException, what: str) -> ArmError:
        """Turn a franky exception into an ArmError after stopping and clearing the reflex."""
        self._trk = None
        try:
            self.robot.recover_from_errors()
        except self._errors:
            pass
        return ArmError(f"{what} aborted by the robot: {e}")

    # -- free space ---------------------------------------------------------------------------------------
    def move_to(self, pose: EEPose, *, max_speed: float | None = None) -> EEPose:
        r = self._need()
        self._check_target(pose.position)
        self._end_tracker()
        factor = self.cfg.relative_dynamics_factor
        if max_speed is not None:
            factor = float(np.clip(factor * max_speed / self.cfg.max_speed, 0.01, 1.0))
        for attempt in (1, 2):
            try:
                r.move(self._f.CartesianMotion(self._affine(pose.position, pose.rotation),
                                               relative_dynamics_factor=factor))
                break
            except self._errors as e:
                # The planner can refuse to start from a state that is still settling (seen once in CI under
                # load in franky-sim: "Motion planner failed with error code -111"). Nothing has moved then, so
                # one re-plan from rest is safe; a reflex or any other error is never retried.
                if attempt == 1 and "Motion planner failed" in str(e):
                    self._fault(e, "move_to")
                    time.sleep(0.2)
                    continue
                raise self._fault(e, "move_to") from e
        # The motion generator can finish before the joints have converged: wait for the measured pose.
        deadline = time.monotonic() + self.cfg.move_timeout
        while True:
            now = self.current_pose()
            if np.linalg.norm(now.position - pose.position) < self.cfg.position_tolerance:
                return now
            if time.monotonic() > deadline:
                raise ArmError(f"move_to did not converge: at {np.round(now.position, 4).tolist()}, target "
                               f"{np.round(pose.position, 4).tolist()}")
            time.sleep(0.02)

    # -- compliant session ------------------------------------------------------------------------------
    def _tracker(self):
        r = self._need()
        if self._trk is not None and not r.is_in_control:
            trk, self._trk = self._trk, None
            try:
                r.join_motion(0.5)
            except self._errors as e:
                raise self._fault(e, "impedance control") from e
            del trk
        if self._trk is None:
            c = self.cfg
            start = self.current_pose()
            try:
                self._trk = self._f.CartesianImpedanceTracker(
                    r, translational_stiffness=c.translational_stiffness,
                    rotational_stiffness=c.rotational_stiffness,
                    translational_error_clip=np.full(3, c.max_force / c.translational_stiffness),
                    rotational_error_clip=np.full(3, 0.3),
                )
                self._trk.set_target(self._affine(start.position, start.rotation))
                if c.reaction_force is not None:
                    # Real robot only in effect (franky-sim reports zero external force): stop gracefully
                    # if the estimated contact force exceeds the bound. The policy never relies on it.
                    M = self._f.Measure
                    cond = (M.FORCE_X * M.FORCE_X + M.FORCE_Y * M.FORCE_Y + M.FORCE_Z * M.FORCE_Z) > (
                        c.reaction_force ** 2)
                    self._trk.motion.add_reaction(self._f.TorqueReaction(cond, self._f.TorqueStopMotion()))
            except self._errors as e:
                raise self._fault(e, "starting impedance control") from e
        return self._trk

    def _wait(self, seconds: float, what: str) -> None:
        """Sleep while watching for reflexes; a lost controller becomes an ArmError."""
        end = time.monotonic() + seconds
        while True:
            if not self.robot.is_in_control:
                try:
                    self.robot.join_motion(0.5)
                    err: BaseException = RuntimeError("controller stopped")
                except self._errors as e:
                    err = e
                raise self._fault(err, what)
            left = end - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(0.01, left))

    def _result(self, d, start: EEPose, end: EEPose) -> ProbeResult:
        extra = {}
        try:
            extra["O_F_ext_hat_K"] = np.asarray(self.robot.state.O_F_ext_hat_K).tolist()
        except self._errors:
            pass
        return ProbeResult(d, end.position - start.position, start, end, self.end_effector.is_attached(), extra)

    def probe(self, direction: np.ndarray, *, force: float, duration: float) -> ProbeResult:
        d = _unit(direction)
        if not (np.isfinite(force) and 0 < force <= self.cfg.max_force):
            raise InvalidTargetError(f"probe force {force} N outside (0, {self.cfg.max_force}]")
        start = self.current_pose()
        offset = force / self.cfg.translational_stiffness
        self._check_target(start.position + d * offset)
        trk = self._tracker()
        trk.set_target(self._affine(start.position + d * offset, start.rotation))
        self._wait(duration, "probe")
        end = self.current_pose()
        trk.set_target(self._affine(end.position, end.rotation))  # hold the new pose, force off
        return self._result(d, start, end)

    def move_along(self, direction: np.ndarray, distance: float, *, compliant: bool = True) -> ProbeResult:
        d = _unit(direction)
        if not (np.isfinite(distance) and distance >= 0):
            raise InvalidTargetError(f"distance must be finite and >= 0, got {distance}")
        start = self.current_pose()
        goal = start.position + d * distance
        self._check_target(goal)
        if not compliant:
            end = self.move_to(EEPose(goal, start.rotation))
            return self._result(d, start, end)
        # Compliant: a target that runs ahead of the measured pose by `lead` (bounded force), advancing at
        # max_speed, until the part has let the end effector cover `distance` along d or time is up. Joint
        # friction and the part's resistance would otherwise leave a plain position target far short.
        trk = self._tracker()
        c = self.cfg
        lead = c.step_force / c.translational_stiffness
        t_max = distance / c.max_speed * 2.0 + c.settle_time + 0.3
        t0 = time.monotonic()
        while True:
            now = self.current_pose()
            done = float(np.dot(now.position - start.position, d))
            elapsed = time.monotonic() - t0
            if done >= distance or elapsed > t_max:
                break
            ramp = min(elapsed * c.max_speed, distance)  # where a rigid arm would be by now
            aim = min(max(ramp - done, 0.0) + lead, distance - done + lead)
            trk.set_target(self._affine(now.position + d * aim, start.rotation))
            self._wait(0.01, "move_along")
        trk.set_target(self._affine(now.position, now.rotation))
        self._wait(c.settle_time, "move_along")
        end = self.current_pose()
        trk.set_target(self._affine(end.position, end.rotation))  # relax: what the part allowed is the new pose
        return self._result(d, start, end)

    # -- stop / recover -----------------------------------------------------------------------------------
    def _end_tracker(self) -> None:
        trk, self._trk = self._trk, None
        if trk is None:
            return
        try:
            trk.stop()
        except self._errors as e:
            raise self._fault(e, "stop") from e

    def stop(self) -> None:
        if self.robot is None:
            return
        self._end_tracker()
        try:
            self.robot.stop()
            self.robot.join_motion(1.0)
        except self._errors:
            # Stopping an idle robot, or one already stopped by a reflex: clear it so it can move again.
            try:
                self.robot.recover_from_errors()
            except self._errors as e:
                raise ArmError(f"stop: robot did not recover: {e}") from e

    def recover(self) -> None:
        r = self._need()
        self._trk = None
        try:
            r.recover_from_errors()
        except self._errors as e:
            raise ArmError(f"recover_from_errors failed: {e}") from e

