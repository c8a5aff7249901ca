"""Active impedance adaptation (AIA), the paper's closed-loop pull, and the straight-pull baseline ("w/o AIA").

Both policies run over any `Arm` that already holds the part (see `approach_and_attach`). Every probe and
step is recorded in an `EpisodeRecord` (direction, displacement, chosen index, pose), which is what the
outcome report and the RViz markers are built from. Every way an episode can end is an `Outcome`; the
policies never raise for a physical failure: they stop the arm and return the record.
"""

from __future__ import annotations

import abc
import enum
import time
from dataclasses import asdict, dataclass, field

import numpy as np

from .arm import Arm, ArmError, ContactLostError, EEPose, InvalidTargetError, ProbeResult, WorkspaceError
from .config import AIAConfig


class Outcome(str, enum.Enum):
    SUCCESS = "success"  # moved target_distance
    MAX_STEPS = "max_steps"  # ran out of iterations while still moving
    STALLED = "stalled"  # the part does not move (locked joint, end stop)
    CONTACT_LOST = "contact_lost"  # suction released / grasp slipped
    WORKSPACE = "workspace"  # the next target would leave the workspace box
    INVALID_DIRECTION = "invalid_direction"  # NaN, infinite or zero pull direction
    NOT_ATTACHED = "not_attached"  # the end effector did not seal on the part
    ARM_ERROR = "arm_error"  # the backend refused or aborted a motion (reflex, network)


@dataclass
class PoseRecord:
    position: list[float]
    rotation: list[list[float]]

    @classmethod
    def of(cls, pose: EEPose) -> "PoseRecord":
        return cls(pose.position.tolist(), pose.rotation.tolist())


@dataclass
class MoveRecord:
    """One probe or step: what was asked and what the end effector really did."""

    kind: str  # "probe" | "step"
    direction: list[float]
    displacement: list[float]
    moved: float
    end_pose: PoseRecord
    attached: bool
    wall_time: float

    @classmethod
    def of(cls, kind: str, r: ProbeResult, wall: float) -> "MoveRecord":
        return cls(kind, np.asarray(r.direction).tolist(), np.asarray(r.displacement).tolist(), r.moved,
                   PoseRecord.of(r.end), bool(r.attached), wall)


@dataclass
class Iteration:
    index: int
    direction: list[float]  # d before this iteration
    probes: list[MoveRecord] = field(default_factory=list)
    chosen: int = 0  # argmax_j |delta_j|
    best_probe: float | None = None  # displacement (m) of the chosen probe along its direction
    step: MoveRecord | None = None
    wall_time: float = 0.0


@dataclass
class EpisodeRecord:
    policy: str
    config: dict
    start_pose: PoseRecord
    initial_direction: list[float]
    iterations: list[Iteration] = field(default_factory=list)
    outcome: Outcome = Outcome.MAX_STEPS
    message: str = ""
    path_length: float = 0.0  # summed step displacements (m)
    net_displacement: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])
    wall_time: float = 0.0

    @property
    def success(self) -> bool:
        return self.outcome is Outcome.SUCCESS

    def to_dict(self) -> dict:
        d = asdict(self)
        d["outcome"] = self.outcome.value
        d["success"] = self.success
        return d

    def arrows(self) -> list[dict]:
        """Every probe and step as an arrow (start, end, kind, iteration, chosen): what RViz markers draw."""
        out = []
        for it in self.iterations:
            moves = [(m, "probe", j == it.chosen) for j, m in enumerate(it.probes)]
            if it.step is not None:
                moves.append((it.step, "step", True))
            for m, kind, chosen in moves:
                end = np.asarray(m.end_pose.position)
                out.append({"start": (end - np.asarray(m.displacement)).tolist(), "end": end.tolist(),
                            "kind": kind, "iteration": it.index, "chosen": chosen})
        return out

    def summary(self) -> str:
        return (f"{self.policy}: {self.outcome.value} after {len(self.iterations)} iterations, path "
                f"{self.path_length:.3f} m, {self.wall_time:.1f} s wall. {self.message}")


def unit(direction, name: str = "direction") -> np.ndarray:
    """Return a unit vector, or raise InvalidTargetError for NaN/inf/zero input."""
    v = np.asarray(direction, dtype=float).reshape(-1)
    if v.shape != (3,) or not np.all(np.isfinite(v)):
        raise InvalidTargetError(f"{name} must be 3 finite numbers, got {direction!r}")
    n = float(np.linalg.norm(v))
    if n < 1e-9:
        raise InvalidTargetError(f"{name} has zero length: {direction!r}")
    return v / n


def perturbed_directions(d: np.ndarray, n: int, eps1: float, rng: np.random.Generator) -> np.ndarray:
    """d_0 = d and n-1 directions normalise(d + z_j), |z_j| = eps1, z_j evenly spread around d (random phase).

    Even spread instead of i.i.d. samples: with few probes, random z_j often cluster on one side and the
    tangent of an arc is missed; the random phase keeps the set unbiased.
    """
    out = [d]
    if n > 1 and eps1 > 0:
        a = np.eye(3)[int(np.argmin(np.abs(d)))]
        u = np.cross(d, a)
        u /= np.linalg.norm(u)
        v = np.cross(d, u)
        phase = rng.uniform(0, 2 * np.pi)
        for j in range(n - 1):
            phi = phase + 2 * np.pi * j / (n - 1)
            dj = d + eps1 * (np.cos(phi) * u + np.sin(phi) * v)
            out.append(dj / np.linalg.norm(dj))
    return np.array(out)


class _PullPolicy(abc.ABC):
    name = "base"

    def __init__(self, config: AIAConfig | None = None) -> None:
        self.config = config or AIAConfig()
        self.rng = np.random.default_rng(self.config.seed)

    # -- hooks -------------------------------------------------------------------------------------------
    @abc.abstractmethod
    def _choose(self, arm: Arm, d: np.ndarray, it: Iteration, rec: EpisodeRecord) -> np.ndarray | None:
        """Direction of the next step (None: contact lost while probing); may record probes in `it`."""

    # -- shared loop ---------------------------------------------------------------------------------------
    def run(self, arm: Arm, direction) -> EpisodeRecord:
        """Pull the held part starting along `direction` (base frame) until an `Outcome` is reached."""
        cfg = self.config
        t0 = time.perf_counter()
        start = arm.current_pose()
        rec = EpisodeRecord(self.name, cfg.model_dump(), PoseRecord.of(start),
                            np.asarray(direction, dtype=float).reshape(-1).tolist())
        try:
            d = unit(direction, "pull direction")
        except InvalidTargetError as e:
            return self._finish(arm, rec, Outcome.INVALID_DIRECTION, str(e), t0, start)
        if not arm.end_effector.is_attached():
            return self._finish(arm, rec, Outcome.NOT_ATTACHED, "end effector does not hold the part", t0, start)
        stalled = 0
        try:
            for k in range(cfg.max_steps):
                ti = time.perf_counter()
                it = Iteration(k, d.tolist())
                rec.iterations.append(it)
                best = self._choose(arm, d, it, rec)
                if best is None:  # contact lost during probing
                    return self._finish(arm, rec, Outcome.CONTACT_LOST, "suction lost while probing", t0, start)
                probe_moved = it.best_probe
                here = arm.current_pose().position
                target = here + best * cfg.step_length
                if not cfg.workspace.contains(target):
                    return self._finish(arm, rec, Outcome.WORKSPACE,
                                        f"step target {np.round(target, 3).tolist()} outside workspace", t0, start)
                ts = time.perf_counter()
                r = arm.move_along(best, cfg.step_length, compliant=True)
                it.step = MoveRecord.of("step", r, time.perf_counter() - ts)
                rec.path_length += r.moved
                it.wall_time = time.perf_counter() - ti
                if not r.attached:
                    return self._finish(arm, rec, Outcome.CONTACT_LOST, "suction lost during a step", t0, start)
                d = best
                # Stalled only if neither the probes nor the (stronger) step moved the part: a part with a
                # closing spring can out-pull a small probe force and still follow the step.
                step_moved = float(np.dot(r.displacement, best))
                moved = step_moved if probe_moved is None else max(probe_moved, step_moved)
                stalled = stalled + 1 if moved < cfg.stall_distance else 0
                if stalled >= cfg.stall_patience:
                    return self._finish(arm, rec, Outcome.STALLED,
                                        f"part moved < {cfg.stall_distance} m for {stalled} iterations "
                                        "(locked joint or end stop)", t0, start)
                if rec.path_length >= cfg.target_distance:
                    return self._finish(arm, rec, Outcome.SUCCESS, "target distance reached", t0, start)
        except ContactLostError as e:
            return self._finish(arm, rec, Outcome.CONTACT_LOST, str(e), t0, start)
        except WorkspaceError as e:
            return self._finish(arm, rec, Outcome.WORKSPACE, str(e), t0, start)
        except InvalidTargetError as e:
            return self._finish(arm, rec, Outcome.INVALID_DIRECTION, str(e), t0, start)
        except ArmError as e:
            return self._finish(arm, rec, Outcome.ARM_ERROR, str(e), t0, start)
        return self._finish(arm, rec, Outcome.MAX_STEPS, f"{cfg.max_steps} steps without reaching the target",
                            t0, start)

    def _finish(self, arm: Arm, rec: EpisodeRecord, outcome: Outcome, msg: str, t0: float,
                start: EEPose) -> EpisodeRecord:
        try:
            arm.stop()
        except ArmError as e:  # still report the original outcome; note the stop problem
            msg += f" (stop: {e})"
        if outcome is Outcome.CONTACT_LOST:
            try:  # never pull on with a half-sealed cup: close the valve too
                arm.end_effector.release()
            except ArmError:
                pass
        rec.outcome, rec.message = outcome, msg
        try:
            rec.net_displacement = (arm.current_pose().position - start.position).tolist()
        except ArmError:
            pass
        rec.wall_time = time.perf_counter() - t0
        return rec


class AIAPolicy(_PullPolicy):
    """Probe N perturbed directions with force eps2, step along the one that moved most, repeat."""

    name = "aia"

    def _choose(self, arm: Arm, d: np.ndarray, it: Iteration, rec: EpisodeRecord) -> np.ndarray | None:
        cfg = self.config
        dirs = perturbed_directions(d, cfg.num_probes, cfg.eps1, self.rng)
        moved = []
        for dj in dirs:
            tp = time.perf_counter()
            start = arm.current_pose()
            r = arm.probe(dj, force=cfg.probe_force, duration=cfg.probe_duration)
            it.probes.append(MoveRecord.of("probe", r, time.perf_counter() - tp))
            if not r.attached:
                return None
            # Component along the probe: a probe that only sags sideways must not win.
            moved.append(float(np.dot(r.displacement, dj)))
            if cfg.return_after_probe:
                back = start.position - arm.current_pose().position
                dist = float(np.linalg.norm(back))
                if dist > 1e-4:
                    rb = arm.move_along(back / dist, dist, compliant=True)
                    if not rb.attached:
                        return None
        it.chosen = int(np.argmax(moved))
        it.best_probe = moved[it.chosen]
        return dirs[it.chosen]


class StraightPull(_PullPolicy):
    """The paper's "w/o AIA" ablation: keep pulling along the initial direction."""

    name = "straight"

    def _choose(self, arm: Arm, d: np.ndarray, it: Iteration, rec: EpisodeRecord) -> np.ndarray | None:
        return unit(rec.initial_direction)


def make_policy(name: str, config: AIAConfig | None = None) -> _PullPolicy:
    """'aia' or 'straight'."""
    policies = {"aia": AIAPolicy, "straight": StraightPull}
    if name not in policies:
        raise ValueError(f"unknown pull policy {name!r}; choose one of {sorted(policies)}")
    return policies[name](config)


def approach_and_attach(arm: Arm, contact: EEPose, *, standoff: float = 0.08, press_force: float = 5.0,
                        press_time: float = 0.2, contact_gap: float = 0.0, workspace=None) -> tuple[bool, str]:
    """Go `standoff` m before the contact along the approach axis, move in to `contact_gap` m short of it, press
    lightly, engage.

    On the FR3 (FrankyConfig.approach_kwargs) position control stops short of the surface: the contact point
    comes from depth (a few mm of error on a real camera), and a stiff position controller driven onto or into a
    surface either stalls short of its tolerance or trips a reflex. The light compliant press (`press_force` N along the approach axis, a target
    press_force/stiffness ahead) closes the gap, seats a suction cup and hands the arm over from position to
    impedance control, so the seal is not loaded by a position controller still converging onto the surface.
    With `press_force` 0 nothing closes a gap, so `contact_gap` must be 0 too.

    Returns (attached, message). Raises nothing for a physical failure; a bad pose gives (False, reason).
    """
    if press_force <= 0 and contact_gap > 0:
        raise ValueError(f"contact_gap={contact_gap} m needs press_force > 0 to close it")
    z = contact.rotation[:, 2]
    pre = EEPose(contact.position - standoff * z, contact.rotation)
    touch = EEPose(contact.position - contact_gap * z, contact.rotation)
    try:
        for p in (pre, touch):
            if workspace is not None and not workspace.contains(p.position):
                raise WorkspaceError(f"approach target {np.round(p.position, 3).tolist()} outside workspace")
            arm.move_to(p)
        if press_force > 0:
            arm.probe(z, force=press_force, duration=press_time)
        ok = arm.end_effector.attach()
    except ArmError as e:
        arm.stop()
        return False, str(e)
    return ok, "attached" if ok else "end effector did not seal on the part"
