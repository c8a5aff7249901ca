"""End effectors: a suction cup driven by a configurable hook, its franky-sim twin, and the Franka Hand.

franky has no suction API: on a real cell the cup is a valve on a digital output or a ROS service. So the
real suction cup here calls whatever it is given (a Python callable, or a command line run with a timeout),
and optionally reads a pressure switch the same way; with no switch it trusts the last command.
"""

from __future__ import annotations

import shlex
import subprocess
from collections.abc import Callable, Sequence

from .arm import ArmError, EndEffector

Hook = Callable[[], object] | str | Sequence[str]


def _run_hook(hook: Hook, what: str, timeout: float) -> bool:
    """Callable: truthy return (or None) = success. Command: exit status 0 = success."""
    if callable(hook):
        try:
            out = hook()
        except Exception as e:  # a user hook: report whatever it raised as an arm error
            raise ArmError(f"suction {what} hook raised {type(e).__name__}: {e}") from e
        return True if out is None else bool(out)
    cmd = shlex.split(hook) if isinstance(hook, str) else list(hook)
    try:
        res = subprocess.run(cmd, timeout=timeout, capture_output=True, text=True)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise ArmError(f"suction {what} command {cmd!r} failed: {e}") from e
    return res.returncode == 0


class CommandSuction(EndEffector):
    """Suction cup on a digital output / ROS service, reached through configurable hooks."""

    def __init__(self, engage: Hook, release: Hook, sense: Hook | None = None, timeout: float = 2.0) -> None:
        self._engage, self._release, self._sense, self._timeout = engage, release, sense, timeout
        self._on = False

    def attach(self) -> bool:
        self._on = _run_hook(self._engage, "engage", self._timeout)
        return self.is_attached()

    def release(self) -> None:
        self._on = False
        _run_hook(self._release, "release", self._timeout)

    def is_attached(self) -> bool:
        if self._sense is None:
            return self._on
        return self._on and _run_hook(self._sense, "sense", self._timeout)


class FrankySimSuction(EndEffector):
    """The franky-sim scene's suction cup (a weld switched through the scene side channel)."""

    def __init__(self, hostname: str, port: int | None = None) -> None:
        from .franky_sim_scene import SCENE_PORT, SceneClient, SceneError

        self._SceneError = SceneError
        self.client = SceneClient(hostname, port or SCENE_PORT)

    def _call(self, cmd: str, **kw) -> dict:
        try:
            return self.client.call(cmd, **kw)
        except (OSError, self._SceneError) as e:
            raise ArmError(f"franky-sim suction: {cmd} failed: {e}") from e

    def attach(self) -> bool:
        return bool(self._call("suction_on")["attached"])

    def release(self) -> None:
        self._call("suction_off")

    def is_attached(self) -> bool:
        return bool(self._call("state")["suction"])


class FrankaHand(EndEffector):
    """The Franka Hand grasping a handle through franky.Gripper (the alternative to suction)."""

    def __init__(self, robot_ip: str, *, width: float = 0.0, speed: float = 0.05, force: float = 40.0,
                 epsilon_outer: float = 0.08) -> None:
        import franky

        self._franky = franky
        self.gripper = franky.Gripper(robot_ip)
        self.width, self.speed, self.force, self.eps_outer = width, speed, force, epsilon_outer

    def attach(self) -> bool:
        try:
            return bool(self.gripper.grasp(self.width, self.speed, self.force, epsilon_inner=0.005,
                                           epsilon_outer=self.eps_outer))
        except self._franky.GripperException as e:
            raise ArmError(f"Franka Hand grasp failed: {e}") from e

    def release(self) -> None:
        try:
            self.gripper.open(self.speed)
        except self._franky.GripperException as e:
            raise ArmError(f"Franka Hand open failed: {e}") from e

    def is_attached(self) -> bool:
        return bool(self.gripper.state.is_grasped)
