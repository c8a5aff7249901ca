"""The /predict_pose logic without ROS: validate an RGB-D request, ask the model, lift the answer to a 6D pose.

The node (`nodes/pose_service_node.py`) only converts messages. Every failure (bad image, empty instruction,
depth hole, unparseable model answer, busy model) comes back as a `PoseResult` with `error` set; nothing here
raises for bad input, so one bad request can never take the service down.
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import threading
import time
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from manipllm_ros import geometry as G
from manipllm_ros.config import FramesConfig, PoseServiceConfig
from manipllm_ros.contact import needs_grounding, resolve_contact


class InputError(ValueError):
    """A request that cannot be served as given; the message says which field and why."""


@dataclass
class RGBDFrame:
    """An RGB image with aligned depth (metres, 0/NaN = hole) and the colour intrinsics."""

    rgb: np.ndarray  # HxWx3 uint8
    depth: np.ndarray  # HxW float32 metres
    K: np.ndarray  # 3x3
    stamp: float = 0.0  # seconds (ROS time of the image)
    frame_id: str = "camera_color_optical_frame"

    def validate(self) -> None:
        rgb, depth = self.rgb, self.depth
        if not isinstance(rgb, np.ndarray) or rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise InputError(f"rgb must be an HxWx3 uint8 image, got {getattr(rgb, 'shape', None)} "
                             f"{getattr(rgb, 'dtype', None)}")
        if rgb.shape[0] < 8 or rgb.shape[1] < 8:
            raise InputError(f"rgb image is too small ({rgb.shape[1]}x{rgb.shape[0]})")
        if not isinstance(depth, np.ndarray) or depth.ndim != 2:
            raise InputError(f"depth must be an HxW image, got shape {getattr(depth, 'shape', None)}")
        if depth.shape != rgb.shape[:2]:
            raise InputError(f"depth ({depth.shape[1]}x{depth.shape[0]}) and rgb ({rgb.shape[1]}x{rgb.shape[0]}) "
                             "differ in size: depth must be aligned to colour")
        K = np.asarray(self.K, dtype=float)
        if K.shape != (3, 3) or not np.all(np.isfinite(K)) or K[0, 0] <= 0 or K[1, 1] <= 0:
            raise InputError(f"camera intrinsics are invalid (fx, fy must be > 0), got K={K.tolist()}")


class Predictor(Protocol):
    """What the service needs from the model (manipllm_ros.model.policy.PosePredictor)."""

    def predict(self, rgb: np.ndarray, instruction: str, chain_of_thought: bool = True,
                ground_contact: bool = False, depth: np.ndarray | None = None, K: np.ndarray | None = None): ...


@dataclass
class PoseResult:
    success: bool
    error: str = ""
    prediction_id: int = 0
    adapter_version: int = 0
    u: int = 0
    v: int = 0
    point: np.ndarray = field(default_factory=lambda: np.zeros(3))
    up: np.ndarray = field(default_factory=lambda: np.zeros(3))
    forward: np.ndarray = field(default_factory=lambda: np.zeros(3))
    quat_cam: np.ndarray = field(default_factory=lambda: np.array([0.0, 0.0, 0.0, 1.0]))
    contact_base: tuple[np.ndarray, np.ndarray] | None = None  # position, quaternion xyzw
    approach_base: tuple[np.ndarray, np.ndarray] | None = None
    approach_distance: float = 0.0
    category: str = ""
    reasoning: str = ""
    raw_answer: str = ""
    latency_ms: dict[str, float] = field(default_factory=dict)
    up_source: str = ""  # "model", "depth", or "model (depth: why not)" under pose_service.up = depth
    pixel_source: str = ""  # "pose" or "grounding": whose answer the contact pixel is
    contact_note: str = ""  # how agreement chose, where a snap moved the pixel from

    def summary(self) -> str:
        """One log line with the whole pose, so a failed episode can be traced back to what was predicted."""
        if not self.success:
            return f"request failed: {self.error}"

        def r3(a) -> list[float]:
            return np.round(np.asarray(a, float), 3).tolist()

        base = f", contact {r3(self.contact_base[0])} in base" if self.contact_base is not None else ""
        src = self.pixel_source or "pose"
        return (f"prediction {self.prediction_id}: pixel ({self.u}, {self.v}) "
                f"(from {src}{'; ' + self.contact_note if self.contact_note else ''}), "
                f"point {r3(self.point)}, up {r3(self.up)} (from {self.up_source or 'model'}), "
                f"forward {r3(self.forward)} (camera){base}, category '{self.category}', "
                f"{self.latency_ms.get('total_ms', 0):.0f} ms")


@dataclass
class _Remembered:
    frame: RGBDFrame
    instruction: str
    pixel: tuple[float, float]
    adapter_version: int


class PoseService:
    """One model, many callers: serialises model access by the configured busy policy."""

    def __init__(self, predictor: Predictor, cfg: PoseServiceConfig, frames: FramesConfig) -> None:
        if cfg.views > 1 and getattr(predictor, "object_view", None) is None:
            raise ValueError(f"pose_service.views {cfg.views} jitters the object window, but this checkpoint looks at "
                             "the whole image (no object_view in its manipllm_model.json): set views to 1")
        self.predictor = predictor
        self.cfg = cfg
        self.frames = frames
        self.T_base_cam = frames.T_base_cam()
        self.adapter_version = 0
        self._model_lock = threading.Lock()
        self._ids = itertools.count(1)
        self._memory: collections.OrderedDict[int, _Remembered] = collections.OrderedDict()
        self._memory_lock = threading.Lock()

    # -- prediction -----------------------------------------------------------------------------------------
    def predict(self, instruction: str, frame: RGBDFrame | None, chain_of_thought: bool) -> PoseResult:
        t0 = time.perf_counter()
        lat: dict[str, float] = {}
        try:
            if not instruction or not instruction.strip():
                raise InputError("instruction is empty: say what to do, e.g. 'open the door of the microwave'")
            if frame is None:
                raise InputError("no recent image: the request carried none and no camera frame arrived within "
                                 f"{self.cfg.frame_timeout_s:.1f} s")
            frame.validate()
        except InputError as exc:
            return self._fail(str(exc), t0, lat)

        t_wait = time.perf_counter()
        if self.cfg.busy_policy == "refuse":
            got = self._model_lock.acquire(blocking=False)
        else:
            got = self._model_lock.acquire(timeout=self.cfg.queue_timeout_s)
        if not got:
            return self._fail("busy: the model is serving another request (busy_policy="
                              f"{self.cfg.busy_policy})", t0, lat)
        lat["queue_ms"] = (time.perf_counter() - t_wait) * 1e3
        t_model = time.perf_counter()
        try:
            version = self.adapter_version
            pred = self.predictor.predict(frame.rgb, instruction.strip(), chain_of_thought=chain_of_thought,
                                          ground_contact=needs_grounding(self.cfg.contact), depth=frame.depth,
                                          K=frame.K, views=self.cfg.views)
        except Exception as exc:  # PoseParseError and any model failure are answers, not crashes
            lat["model_ms"] = (time.perf_counter() - t_model) * 1e3
            return self._fail(str(exc) or type(exc).__name__, t0, lat)
        finally:
            self._model_lock.release()
        lat["model_ms"] = (time.perf_counter() - t_model) * 1e3
        for key, value in (getattr(pred, "timings", None) or {}).items():
            lat[f"{key}_ms"] = float(value)

        t_geo = time.perf_counter()
        u, v = float(pred.pixel[0]), float(pred.pixel[1])
        try:
            c = resolve_contact(pred, frame.depth, frame.K, self.cfg.contact, self.cfg.up,
                                snap_px=self.cfg.snap_radius_px, snap_deg=self.cfg.snap_max_angle_deg,
                                protrusion_px=self.cfg.protrusion_radius_px,
                                protrusion_deg=self.cfg.protrusion_facing_deg, handle_px=self.cfg.handle_radius_px,
                                skip_outline=self.cfg.protrusion_skip_outline,
                                stay_on_own=self.cfg.protrusion_stay_on_own)
            u, v = c.u, c.v
            point = G.pixel_to_point(u, v, frame.depth, frame.K, window=self.cfg.depth_window // 2)
            R_cam = G.rotation_from_up_forward(c.up, c.forward)
        except G.GeometryError as exc:
            res = self._fail(f"prediction at pixel ({u:.0f}, {v:.0f}) cannot be lifted "
                             f"to a pose: {exc}", t0, lat)
            res.raw_answer = getattr(pred, "answer", "")
            return res
        p_base, R_base = G.transform_pose(self.T_base_cam, point, R_cam)
        a_pos, _ = G.approach_pose(p_base, R_base, self.cfg.approach_distance)
        lat["geometry_ms"] = (time.perf_counter() - t_geo) * 1e3

        pid = next(self._ids)
        self._remember(pid, _Remembered(frame, instruction.strip(), (u, v), version))
        lat["total_ms"] = (time.perf_counter() - t0) * 1e3
        return PoseResult(
            success=True, prediction_id=pid, adapter_version=version,
            u=int(round(u)), v=int(round(v)), point=point, up=R_cam[:, 2], forward=R_cam[:, 0],
            quat_cam=G.quaternion_from_matrix(R_cam),
            contact_base=(p_base, G.quaternion_from_matrix(R_base)),
            approach_base=(a_pos, G.quaternion_from_matrix(R_base)),
            approach_distance=self.cfg.approach_distance,
            category=pred.category or "", reasoning=pred.reasoning or "", raw_answer=pred.answer,
            latency_ms=lat, up_source=c.up_from, pixel_source=c.pixel_from, contact_note=c.note,
        )  # fmt: skip

    def _fail(self, error: str, t0: float, lat: dict[str, float]) -> PoseResult:
        lat["total_ms"] = (time.perf_counter() - t0) * 1e3
        return PoseResult(success=False, error=error, adapter_version=self.adapter_version, latency_ms=lat)

    @contextlib.contextmanager
    def model_lock(self):
        """Exclusive use of the model (test-time adaptation, adapter swaps) between two predictions."""
        with self._model_lock:
            yield

    # -- memory for outcome reports -----------------------------------------------------------------------
    def _remember(self, pid: int, item: _Remembered) -> None:
        with self._memory_lock:
            self._memory[pid] = item
            while len(self._memory) > self.cfg.remember_predictions:
                self._memory.popitem(last=False)

    def recall(self, prediction_id: int) -> _Remembered | None:
        with self._memory_lock:
            return self._memory.get(prediction_id)
