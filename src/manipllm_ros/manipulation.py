"""One manipulation episode without ROS: approach → attach → AIA (or straight pull) → release.

The franka node is a shell over `run_manipulation`. Feedback and cancellation reach the policy through
`MonitoredArm`, a pass-through `Arm` that reports every probe and step and turns a cancel request into an
`ArmError`, which the policies already answer by stopping the arm and ending the episode.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from manipllm_ros.control.aia import EpisodeRecord, approach_and_attach, make_policy
from manipllm_ros.control.arm import Arm, ArmError, EEPose, ProbeResult
from manipllm_ros.control.config import AIAConfig


class Cancelled(ArmError):
    """The client cancelled the episode; the arm has been stopped."""


MoveCallback = Callable[[str, ProbeResult], None]


class MonitoredArm(Arm):
    """Forwards to `arm`; calls `on_move(kind, result)` after each probe/step and checks `cancelled()` before."""

    def __init__(self, arm: Arm, on_move: MoveCallback | None = None,
                 cancelled: Callable[[], bool] | None = None) -> None:
        self.arm = arm
        self.end_effector = arm.end_effector
        self._on_move = on_move or (lambda kind, r: None)
        self._cancelled = cancelled or (lambda: False)

    def _check(self) -> None:
        if self._cancelled():
            self.arm.stop()
            raise Cancelled("episode cancelled by the client")

    def connect(self) -> None:
        self.arm.connect()

    def disconnect(self) -> None:
        self.arm.disconnect()

    def current_pose(self) -> EEPose:
        return self.arm.current_pose()

    def move_to(self, pose: EEPose, *, max_speed: float | None = None) -> EEPose:
        self._check()
        return self.arm.move_to(pose, max_speed=max_speed)

    def move_along(self, direction: np.ndarray, distance: float, *, compliant: bool = True) -> ProbeResult:
        self._check()
        result = self.arm.move_along(direction, distance, compliant=compliant)
        self._on_move("step", result)
        return result

    def probe(self, direction: np.ndarray, *, force: float, duration: float) -> ProbeResult:
        self._check()
        result = self.arm.probe(direction, force=force, duration=duration)
        self._on_move("probe", result)
        return result

    def stop(self) -> None:
        self.arm.stop()

    def recover(self) -> None:
        self.arm.recover()


@dataclass
class ManipulationResult:
    success: bool
    failure_reason: str
    record: EpisodeRecord | None
    ee_path: list[np.ndarray] = field(default_factory=list)
    ee_displacement: np.ndarray = field(default_factory=lambda: np.zeros(3))
    duration_s: float = 0.0

    @property
    def ee_distance(self) -> float:
        return float(np.linalg.norm(self.ee_displacement))


def run_manipulation(arm: Arm, contact: EEPose, *, policy: str, aia: AIAConfig, approach_distance: float = 0.08,
                     push: bool = False, contact_gap: float = 0.0, press_force: float = 5.0,
                     press_time: float = 0.2, on_move: MoveCallback | None = None,
                     on_phase: Callable[[str], None] | None = None,
                     cancelled: Callable[[], bool] | None = None) -> ManipulationResult:
    """Never raises for a physical failure: every way the episode ends is a `ManipulationResult`.

    The part is pulled out of the surface (along -up) or, with `push`, pressed into it (along up: buttons,
    levers).
    """
    t0 = time.monotonic()
    phase = on_phase or (lambda p: None)
    marm = MonitoredArm(arm, on_move, cancelled)
    path: list[np.ndarray] = []

    def _done(ok: bool, reason: str, rec: EpisodeRecord | None, start: np.ndarray | None) -> ManipulationResult:
        phase("release")
        try:
            arm.end_effector.release()
        except ArmError as exc:
            reason = reason or f"release failed: {exc}"
        try:
            end = arm.current_pose().position
        except ArmError:
            end = start
        disp = (end - start) if start is not None and end is not None else np.zeros(3)
        phase("done")
        return ManipulationResult(ok, "" if ok else reason, rec, path, disp, time.monotonic() - t0)

    if not np.all(np.isfinite(contact.position)) or not np.all(np.isfinite(contact.rotation)):
        return ManipulationResult(False, "contact pose is not finite", None, duration_s=time.monotonic() - t0)
    phase("approach")
    try:
        ok, msg = approach_and_attach(marm, contact, standoff=approach_distance, contact_gap=contact_gap,
                                      press_force=press_force, press_time=press_time, workspace=aia.workspace)
    except Cancelled as exc:
        return _done(False, str(exc), None, None)
    if not ok:
        arm.stop()
        return _done(False, f"could not attach: {msg}", None, None)
    phase("contact")
    start = arm.current_pose().position
    path.append(start.copy())

    def _track(kind: str, r: ProbeResult) -> None:
        if kind == "step":
            path.append(np.asarray(r.end.position, dtype=float).copy())
        if on_move is not None:
            on_move(kind, r)

    marm._on_move = _track
    up = contact.rotation[:, 2]
    rec = make_policy(policy, aia).run(marm, up if push else -up)
    if rec.success:
        return _done(True, "", rec, start)
    return _done(False, f"{rec.outcome.value}: {rec.message}".strip(": "), rec, start)


class EpisodeJournal:
    """A file that says an episode is in progress, so that a restarted node reports the lost one as a failure."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).expanduser()

    def begin(self, prediction_id: int) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps({"prediction_id": int(prediction_id), "started": time.time()}))

    def end(self) -> None:
        self.path.unlink(missing_ok=True)

    def pending(self) -> int | None:
        """The prediction id of an episode that never ended, if any (and forget it)."""
        if not self.path.is_file():
            return None
        try:
            pid = int(json.loads(self.path.read_text())["prediction_id"])
        except (ValueError, KeyError, json.JSONDecodeError):
            pid = 0
        self.end()
        return pid
