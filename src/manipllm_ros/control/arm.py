"""The one interface the manipulation policy uses to move an arm, whatever is behind it.

Backends: franky on a real FR3/Panda or on franky-sim (`control/franky_arm.py`), and the fast MuJoCo
flying gripper (`sim/`). All poses are in the robot base frame, metres; orientations are 3x3 rotation
matrices whose columns are the gripper axes (x = forward, y = up x forward, z = up / approach axis).
Every call returns or raises in bounded time; failures are reported as `ArmError` subclasses with a
message a person can act on, never as a silent wrong motion.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field

import numpy as np


class ArmError(RuntimeError):
    """A motion could not be carried out; the arm has been stopped."""


class WorkspaceError(ArmError):
    """A target lies outside the configured workspace box; nothing was commanded."""


class InvalidTargetError(ArmError):
    """A target or direction is NaN, infinite or zero-length; nothing was commanded."""


class ContactLostError(ArmError):
    """The end effector lost the part (suction released under load, grasp slipped)."""


@dataclass(frozen=True)
class EEPose:
    """End-effector pose in the robot base frame."""

    position: np.ndarray  # (3,) metres
    rotation: np.ndarray  # (3, 3) columns = gripper x (forward), y, z (up / approach)

    def __post_init__(self) -> None:
        object.__setattr__(self, "position", np.asarray(self.position, dtype=float).reshape(3))
        object.__setattr__(self, "rotation", np.asarray(self.rotation, dtype=float).reshape(3, 3))


@dataclass
class ProbeResult:
    """What a compliant push/pull along one direction did."""

    direction: np.ndarray  # (3,) unit vector, base frame
    displacement: np.ndarray  # (3,) measured end-effector displacement, base frame (m)
    start: EEPose
    end: EEPose
    attached: bool  # whether the end effector still holds the part afterwards
    extra: dict = field(default_factory=dict)  # backend-specific measurements (e.g. external force)

    @property
    def moved(self) -> float:
        return float(np.linalg.norm(self.displacement))


class EndEffector(abc.ABC):
    """Suction cup or parallel gripper: what `attach`/`release` mean on this arm."""

    @abc.abstractmethod
    def attach(self) -> bool:
        """Engage (suction on / close on the handle). Returns whether the part is now held."""

    @abc.abstractmethod
    def release(self) -> None:
        """Disengage, always safe to call."""

    @abc.abstractmethod
    def is_attached(self) -> bool:
        """Whether the part is held right now."""


class Arm(abc.ABC):
    """What the policy needs from an arm. Use as a context manager: connect on enter, stop on exit."""

    end_effector: EndEffector

    def __enter__(self) -> "Arm":
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.stop()
        finally:
            self.disconnect()

    @abc.abstractmethod
    def connect(self) -> None: ...

    @abc.abstractmethod
    def disconnect(self) -> None: ...

    @abc.abstractmethod
    def current_pose(self) -> EEPose:
        """The end-effector pose now."""

    @abc.abstractmethod
    def move_to(self, pose: EEPose, *, max_speed: float | None = None) -> EEPose:
        """Go to a pose in free space (e.g. the approach pose). Returns the pose reached."""

    @abc.abstractmethod
    def move_along(self, direction: np.ndarray, distance: float, *, compliant: bool = True) -> ProbeResult:
        """Move `distance` metres along a unit direction, keeping the orientation.

        With `compliant=True` the motion runs under Cartesian impedance control, so a constrained part
        (a door on its hinge) bends the path instead of tripping a reflex; the result reports what
        actually moved.
        """

    @abc.abstractmethod
    def probe(self, direction: np.ndarray, *, force: float, duration: float) -> ProbeResult:
        """Apply a bounded force (N) along a unit direction for `duration` s under impedance control.

        Backends without force control realise this as a compliant offset (stiffness x offset = force).
        The reported displacement is what the end effector really moved; the arm holds its new pose.
        """

    @abc.abstractmethod
    def stop(self) -> None:
        """Stop all motion now and hold position; safe to call at any time."""

    @abc.abstractmethod
    def recover(self) -> None:
        """Clear reflex/error states so that motions can be commanded again."""
