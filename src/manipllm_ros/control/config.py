"""Configuration of the AIA policy and of the franky arm backend (pydantic v2, loadable from YAML).

Defaults were chosen by measuring (benchmarks/control_aia.md); each description says the number behind it.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator


class WorkspaceBox(BaseModel):
    """Axis-aligned box (robot base frame, metres) that no commanded end-effector target may leave."""

    model_config = ConfigDict(extra="forbid")

    lower: tuple[float, float, float] = Field(
        (0.15, -0.6, 0.05), description="Lower corner. FR3 reach in front of the base, above the table."
    )
    upper: tuple[float, float, float] = Field((0.85, 0.6, 0.9), description="Upper corner (FR3 reach ~0.85 m).")

    @model_validator(mode="after")
    def _ordered(self) -> "WorkspaceBox":
        if any(lo >= hi for lo, hi in zip(self.lower, self.upper)):
            raise ValueError(f"WorkspaceBox: every lower bound must be below its upper bound, got {self}")
        return self

    def contains(self, p) -> bool:
        return all(lo <= float(x) <= hi for x, lo, hi in zip(p, self.lower, self.upper))


class AIAConfig(BaseModel):
    """Active impedance adaptation: probe N perturbed directions with a small force, step along the best."""

    model_config = ConfigDict(extra="forbid")

    num_probes: int = Field(
        5, ge=1, le=16,
        description="N directions probed per iteration, d_0 = current direction plus N-1 perturbed ones. "
        "5 measured best (long-distance success 0.80 vs 0.77 for N=3 and N=7, 30 revolute episodes, "
        "benchmarks/control_aia.md) and each probe costs probe_duration on the real arm.",
    )
    eps1: float = Field(
        0.5, ge=0.0, le=2.0,
        description="Perturbation size |z_j| (d_j = normalise(d + z_j)); 0.5 = about 27 deg off d. Measured "
        "best: success 0.80 vs 0.73 for 0.25 and 1.0 (N=5); large enough to follow an arc's turning tangent, "
        "small enough not to push sideways into the hinge.",
    )
    probe_force: float = Field(
        15.0, gt=0.0,
        description="eps2, force (N) of each probe. Realised as stiffness x offset under impedance control. "
        "15 N overcomes the arm's own joint friction (~6 N at the TCP in franky-sim) plus the hinge "
        "friction of household doors/drawers (2-8 N), yet is harmless when the direction is wrong.",
    )
    probe_duration: float = Field(
        0.3, gt=0.0, le=2.0,
        description="Seconds each probe force is applied before the displacement is read; the FR3 under "
        "400 N/m impedance is within 10% of its settled displacement after 0.3 s (measured in franky-sim).",
    )
    return_after_probe: bool = Field(
        True,
        description="Relax back to the pre-probe target after each probe, so every probe starts from the "
        "same pose and the displacements compare fairly.",
    )
    step_length: float = Field(0.03, gt=0.0, le=0.1, description="Metres moved along d_opt per iteration.")
    max_steps: int = Field(25, ge=1, description="Iterations before giving up (outcome max_steps).")
    target_distance: float = Field(
        0.2, gt=0.0,
        description="End-effector path length (m) after which the episode counts as done (outcome success).",
    )
    stall_distance: float = Field(
        0.003, gt=0.0,
        description="If the best probe (or the step, for the straight pull) moves less than this (m) ...",
    )
    stall_patience: int = Field(
        2, ge=1, description="... this many iterations in a row, the part is taken as locked (outcome stalled)."
    )
    max_force: float = Field(
        40.0, gt=0.0,
        description="Upper bound (N) on any force the policy asks for; probe_force must not exceed it. The "
        "backends also clip the impedance error so the commanded force stays below it.",
    )
    workspace: WorkspaceBox = Field(default_factory=WorkspaceBox)
    seed: int = Field(0, description="Seed of the perturbation sampler (per policy instance).")

    @model_validator(mode="after")
    def _force_bound(self) -> "AIAConfig":
        if self.probe_force > self.max_force:
            raise ValueError(f"AIAConfig.probe_force={self.probe_force} exceeds max_force={self.max_force}")
        return self


class FrankyConfig(BaseModel):
    """How to talk to an FR3/Panda (or franky-sim) through franky."""

    model_config = ConfigDict(extra="forbid")

    robot_ip: str = Field("172.16.0.2", description="FCI address of the robot (franky-sim: its 127.x.y.z).")
    relative_dynamics_factor: float = Field(
        0.15, gt=0.0, le=1.0,
        description="Scales max velocity/acceleration/jerk of position motions; 0.15 is gentle near a part.",
    )
    realtime_ignore: bool = Field(True, description="Run without a PREEMPT_RT kernel (franky-sim, dev PCs).")
    collision_torque_thresholds: tuple[float, ...] = Field(
        (30.0, 30.0, 28.0, 28.0, 24.0, 22.0, 20.0),
        description="Per-joint torque reflex thresholds (Nm); above these libfranka stops the arm.",
    )
    collision_force_thresholds: tuple[float, ...] = Field(
        (40.0, 40.0, 40.0, 30.0, 30.0, 30.0),
        description="Cartesian force/torque reflex thresholds (N, Nm), above the policy's max_force.",
    )
    translational_stiffness: float = Field(
        400.0, gt=0.0, le=3000.0,
        description="Cartesian impedance stiffness (N/m) during probes and steps: a 15 N probe = 3.75 cm "
        "offset. Low enough that the joint friction of the arm (franky-sim: ~6 N equivalent at the TCP, "
        "measured) eats only a fraction of a probe.",
    )
    rotational_stiffness: float = Field(
        15.0, gt=0.0, le=300.0,
        description="Low (Nm/rad) so the wrist turns with a door instead of fighting the suction seal.",
    )
    max_force: float = Field(40.0, gt=0.0, description="Clip of the impedance error x stiffness (N).")
    reaction_force: float | None = Field(
        50.0, gt=0.0,
        description="franky force reaction on the impedance session: a graceful TorqueStopMotion when the "
        "estimated external force exceeds this (N). A safety net on the real robot only (franky-sim never "
        "fills O_F_ext_hat_K); None disables it.",
    )
    step_force: float = Field(
        20.0, gt=0.0,
        description="Force (N) with which a compliant step leads the arm (target ahead by step_force/stiffness). "
        "Above the ~6 N joint friction measured at the TCP, below max_force.",
    )
    max_speed: float = Field(
        0.1, gt=0.0, le=0.5,
        description="Speed (m/s) of compliant steps and the reference for free moves (the policy's speed limit).",
    )
    settle_time: float = Field(0.15, ge=0.0, description="Wait (s) after a step before reading the pose.")
    position_tolerance: float = Field(
        0.003, gt=0.0, description="move_to waits until the measured pose is this close (m) to the target."
    )
    move_timeout: float = Field(10.0, gt=0.0, description="Seconds a free-space move may take in total.")
    contact_gap: float = Field(
        0.005, ge=0.0, le=0.01,
        description="The approach's position move stops this far (m) short of the contact point and the compliant "
        "press closes the gap: depth error is absorbed and a stiff position controller is never driven into a "
        "surface.",
    )
    press_force: float = Field(
        10.0, gt=0.0,
        description="Force (N) of the approach's compliant press (a target press_force/stiffness ahead: 25 mm at "
        "400 N/m). Above the ~6 N joint friction at the TCP so it really closes contact_gap (measured in franky-sim: "
        "5 N left the cup 6 mm short, 10 N reaches the surface).",
    )
    press_time: float = Field(
        0.3, gt=0.0, le=2.0,
        description="Seconds of that press (0.2 s left the cup up to 2 mm short in franky-sim, 0.3 s reaches it).",
    )
    workspace: WorkspaceBox = Field(default_factory=WorkspaceBox)

    def approach_kwargs(self) -> dict[str, float]:
        """The approach settings of approach_and_attach / run_manipulation for this arm."""
        return {"contact_gap": self.contact_gap, "press_force": self.press_force, "press_time": self.press_time}

    @model_validator(mode="after")
    def _lengths(self) -> "FrankyConfig":
        if self.step_force > self.max_force:
            raise ValueError(f"FrankyConfig.step_force={self.step_force} exceeds max_force={self.max_force}")
        if len(self.collision_torque_thresholds) != 7:
            raise ValueError("FrankyConfig.collision_torque_thresholds needs 7 values (one per joint)")
        if len(self.collision_force_thresholds) != 6:
            raise ValueError("FrankyConfig.collision_force_thresholds needs 6 values (x y z rx ry rz)")
        return self


class ControlConfig(BaseModel):
    """The `control:` section of the manipllm YAML file."""

    model_config = ConfigDict(extra="forbid")

    aia: AIAConfig = Field(default_factory=AIAConfig)
    franky: FrankyConfig = Field(default_factory=FrankyConfig)


def load_control_config(path: str | Path) -> ControlConfig:
    """Read a YAML file holding either a top-level `control:` section or the section itself."""
    data = yaml.safe_load(Path(path).read_text()) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping at the top level")
    return ControlConfig.model_validate(data.get("control", data))
